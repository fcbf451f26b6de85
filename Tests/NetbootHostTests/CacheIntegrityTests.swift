import Foundation
import Logging
import NetbootHost
import XCTest

/// The cache against damaged files, a vanished directory, a full disk and a read-only mount.
final class CacheIntegrityTests: XCTestCase {
    let logger = Logger(label: "test")
    let paths: [StorePath] = (0..<6).map { try! StorePath(name: String(repeating: "\($0)", count: 32) + "-i\($0)") }

    func key(_ i: Int) -> CacheKey { CacheKey(path: paths[i], codec: "zstd", level: 10) }

    /// Writes `bytes` bytes derived from `seed` (so a damaged copy differs), counting calls.
    func producer(bytes: Int, seed: UInt8 = 1, counter: PackCounter? = nil) -> CPIOCache.Producer {
        { sink in
            counter?.increment()
            let data = (0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
            try data.withUnsafeBytes { try sink.write($0) }
        }
    }

    func contents(_ path: String) throws -> [UInt8] { try Self.contents(path) }
    static func contents(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    func testAfterARestartTruncatedFlippedAndDeletedArchivesAreNeverPinned() async throws {
        let dir = try makeTemporaryDirectory(self)
        var originals: [[UInt8]] = []
        do {
            let cache = running(try CPIOCache(directory: dir, capacity: 1 << 20, jobs: 2, logger: logger))
            for i in 0..<4 {
                let archive = try await cache.acquire(key(i), producer: producer(bytes: 5000, seed: UInt8(i)))
                originals.append(try contents(archive.path))
                await cache.release(key(i))
            }
        }
        try truncateFile(try archiveFile(of: paths[0], in: dir), to: 4000)
        try flipBit(in: try archiveFile(of: paths[1], in: dir))
        try FileManager.default.removeItem(atPath: try archiveFile(of: paths[2], in: dir))

        let counter = PackCounter()
        let cache = running(try CPIOCache(directory: dir, capacity: 1 << 20, jobs: 2, logger: logger))
        let adopted = await cache.entryCount
        XCTAssertEqual(adopted, 2, "the truncated archive is removed at start, the deleted one is gone")
        XCTAssertThrowsError(try archiveFile(of: paths[0], in: dir), "removed, not adopted")

        // The flipped one has the right size: it is read against its CRC-32 before anything pins it.
        let pinned = await cache.pin([key(1), key(3)])
        XCTAssertNil(pinned[0], "a bit-flipped archive is never pinned")
        XCTAssertThrowsError(try archiveFile(of: paths[1], in: dir), "and its file is removed")
        XCTAssertEqual(try pinned[1].map { try contents($0.path) }, originals[3])
        let verified = await cache.verifiedCount, dropped = await cache.droppedCount
        XCTAssertEqual(verified, 1)
        XCTAssertEqual(dropped, 1)
        await cache.release(key(3))

        for i in 0..<3 {
            let archive = try await cache.acquire(key(i), producer: producer(bytes: 5000, seed: UInt8(i), counter: counter))
            XCTAssertEqual(try contents(archive.path), originals[i], "archive \(i) packed again, byte-identical")
            await cache.release(key(i))
        }
        XCTAssertEqual(counter.value, 3)
        let count = await cache.entryCount, bytes = await cache.totalBytes
        XCTAssertEqual(count, 4)
        XCTAssertEqual(bytes, 20000)
    }

    func testAFlippedArchiveAskedForWithAcquireIsPackedAgainBeforeItIsReturned() async throws {
        let dir = try makeTemporaryDirectory(self)
        let original: [UInt8]
        do {
            let cache = running(try CPIOCache(directory: dir, capacity: 1 << 20, jobs: 2, logger: logger))
            original = try contents(try await cache.acquire(key(0), producer: producer(bytes: 3000)).path)
            await cache.release(key(0))
        }
        try flipBit(in: try archiveFile(of: paths[0], in: dir))
        let cache = running(try CPIOCache(directory: dir, capacity: 1 << 20, jobs: 2, logger: logger))
        let counter = PackCounter()
        let k = key(0), make = producer(bytes: 3000, counter: counter)
        // Many at once: one verification, one packing, every requester gets the good bytes.
        let files = try await withThrowingTaskGroup(of: [UInt8].self) { group in
            for _ in 0..<8 {
                group.addTask {
                    let archive = try await cache.acquire(k, producer: make)
                    return try Self.contents(archive.path)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertEqual(files, Array(repeating: original, count: 8))
        XCTAssertEqual(counter.value, 1)
        for _ in 0..<8 { await cache.release(key(0)) }
    }

    func testWhatThisProcessWroteIsNotReadAgainAndAnAdoptedArchiveIsReadOnce() async throws {
        let dir = try makeTemporaryDirectory(self)
        do {
            let cache = running(try CPIOCache(directory: dir, capacity: 1 << 20, jobs: 2, logger: logger))
            _ = try await cache.acquire(key(0), producer: producer(bytes: 1000))
            await cache.release(key(0))
            for _ in 0..<3 {
                let pinned = await cache.pin(key(0))
                XCTAssertNotNil(pinned)
                await cache.release(key(0))
            }
            let verified = await cache.verifiedBytes
            XCTAssertEqual(verified, 0, "warm pins in the packing process read nothing")
        }
        let cache = running(try CPIOCache(directory: dir, capacity: 1 << 20, jobs: 2, logger: logger))
        for _ in 0..<3 {
            let pinned = await cache.pin(key(0))
            XCTAssertNotNil(pinned)
            await cache.release(key(0))
        }
        let verified = await cache.verifiedBytes
        XCTAssertEqual(verified, 1000, "one read after the restart, none after it")
    }

    func testAnArchiveDeletedWhileRunningLeavesTheIndexAndIsPackedAgain() async throws {
        let dir = try makeTemporaryDirectory(self)
        let cache = running(try CPIOCache(directory: dir, capacity: 1 << 20, jobs: 2, logger: logger))
        let first = try await cache.acquire(key(0), producer: producer(bytes: 700))
        await cache.release(key(0))
        try FileManager.default.removeItem(atPath: first.path)
        let count = await cache.entryCount, bytes = await cache.totalBytes
        XCTAssertEqual(count, 0, "/status counts what is there")
        XCTAssertEqual(bytes, 0)
        let counter = PackCounter()
        let again = try await cache.acquire(key(0), producer: producer(bytes: 700, counter: counter))
        XCTAssertEqual(counter.value, 1)
        XCTAssertTrue(again.isOnDisk)
        await cache.release(key(0))
    }

    func testDiscardDropsAPinnedArchiveWhoseFileChangedAndKeepsOneThatIsFine() async throws {
        let dir = try makeTemporaryDirectory(self)
        let cache = running(try CPIOCache(directory: dir, capacity: 1 << 20, jobs: 2, logger: logger))
        let bad = try await cache.acquire(key(0), producer: producer(bytes: 700))
        let good = try await cache.acquire(key(1), producer: producer(bytes: 700))
        let other = await cache.pin(key(0))  // a second initrd holds the damaged one too
        XCTAssertNotNil(other)
        try truncateFile(bad.path, to: 10)
        XCTAssertFalse(bad.isOnDisk)
        await cache.discard([bad, good])
        let count = await cache.entryCount
        XCTAssertEqual(count, 1)
        XCTAssertTrue(good.isOnDisk, "an archive that is fine stays")
        XCTAssertFalse(FileManager.default.fileExists(atPath: bad.path), "the damaged file is removed")
        let repacked = try await cache.acquire(key(0), producer: producer(bytes: 700))
        XCTAssertTrue(repacked.isOnDisk)
        await cache.release(key(0))  // the second initrd's old pin: the new entry stays pinned by ours
        let stillThere = await cache.pin(key(0))
        XCTAssertNotNil(stillThere)
        await cache.release([key(0), key(0)])
    }

    func testARemovedDirectoryIsRecreatedAndForgotten() async throws {
        let parent = try makeTemporaryDirectory(self)
        let dir = parent + "/cpio-cache"
        let cache = running(try CPIOCache(directory: dir, capacity: 1 << 20, jobs: 2, logger: logger))
        for i in 0..<3 {
            _ = try await cache.acquire(key(i), producer: producer(bytes: 100))
            await cache.release(key(i))
        }
        try FileManager.default.removeItem(atPath: dir)
        let count = await cache.entryCount
        XCTAssertEqual(count, 0)
        var isDirectory: ObjCBool = false
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory) && isDirectory.boolValue, "recreated")
        // Removed again, and a packing is the first to notice.
        try FileManager.default.removeItem(atPath: dir)
        let archive = try await cache.acquire(key(4), producer: producer(bytes: 100))
        XCTAssertTrue(archive.isOnDisk)
        await cache.release(key(4))
    }

    func testAReadOnlyCacheDirectoryIsRefusedAtStart() throws {
        let dir = try mountTmpfs(self, size: "1m", readOnly: true)
        XCTAssertThrowsError(try CPIOCache(directory: dir, capacity: 1 << 20, jobs: 1, logger: logger)) { error in
            guard case CacheError.notWritable(let directory, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(directory, dir)
            XCTAssertEqual(reason, "Read-only file system")
        }
        XCTAssertThrowsError(try CPIOCache(directory: dir + "/sub", capacity: 1 << 20, jobs: 1, logger: logger)) { error in
            guard case CacheError.notWritable = error else { return XCTFail("\(error)") }
        }
    }

    func testAFullDiskEvictsLeastRecentlyUsedArchivesAndRetriesOnce() async throws {
        let dir = try mountTmpfs(self, size: "1m")
        let cache = running(try CPIOCache(directory: dir, capacity: 1 << 30, jobs: 2, logger: logger))
        for i in 0..<3 {
            _ = try await cache.acquire(key(i), producer: producer(bytes: 300_000))
            await cache.release(key(i))
        }
        let recent = await cache.pin(key(0))  // 0 is the most recently used now
        XCTAssertNotNil(recent)
        await cache.release(key(0))
        let counter = PackCounter()
        let archive = try await cache.acquire(key(3), estimatedSize: 400_000, producer: producer(bytes: 400_000, counter: counter))
        XCTAssertEqual(counter.value, 2, "failed once, retried once")
        XCTAssertTrue(archive.isOnDisk)
        await cache.release(key(3))
        XCTAssertEqual(temporaries(in: dir), [])
        XCTAssertThrowsError(try archiveFile(of: paths[1], in: dir), "the least recently used went first")
        XCTAssertNoThrow(try archiveFile(of: paths[0], in: dir))
        let bytes = await cache.totalBytes
        let onDisk = try FileManager.default.contentsOfDirectory(atPath: dir).reduce(UInt64(0)) {
            $0 + UInt64(FileSystem.regularFileSize(dir + "/" + $1) ?? 0)
        }
        XCTAssertEqual(bytes, onDisk)
    }

    func testAFullDiskThatEvictionCannotHelpFailsOutOfSpaceAndStartsNothingQueued() async throws {
        let dir = try mountTmpfs(self, size: "1m")
        let cache = running(try CPIOCache(directory: dir, capacity: 1 << 30, jobs: 1, logger: logger))
        let kept = try await cache.acquire(key(0), producer: producer(bytes: 200_000))  // pinned: in use
        let keptBytes = try contents(kept.path)
        let counter = PackCounter()
        let slowBig = producer(bytes: 3_000_000, counter: counter)
        let big: CPIOCache.Producer = { sink in
            Thread.sleep(forTimeInterval: 0.3)  // long enough for the second request to queue
            try slowBig(&sink)
        }
        let small = producer(bytes: 1000, counter: counter)
        let k1 = key(1), k2 = key(2)
        let a = Task { try await cache.acquire(k1, estimatedSize: 3_000_000, producer: big) }
        try await Task.sleep(for: .milliseconds(20))
        let b = Task { try await cache.acquire(k2, producer: small) }  // queued behind it (jobs 1)
        for (name, task) in [("big", a), ("queued", b)] {
            guard case .failure(CacheError.outOfSpace) = await task.result else { return XCTFail("\(name): \(await task.result)") }
        }
        XCTAssertEqual(counter.value, 1, "no retry (evicting could not make 3 MB) and the queued packing never started")
        XCTAssertEqual(temporaries(in: dir), [])
        XCTAssertEqual(try contents(kept.path), keptBytes, "what was there is still served")
        await cache.release(key(0))
        let count = await cache.entryCount
        XCTAssertEqual(count, 1)
        let after = try await cache.acquire(key(2), producer: small)
        XCTAssertTrue(after.isOnDisk, "with room again, packing works")
        await cache.release(key(2))
    }
}
