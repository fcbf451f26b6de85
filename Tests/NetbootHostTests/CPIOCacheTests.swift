import CZlib
import Foundation
import Logging
import NetbootHost
import XCTest

/// The cache against a real directory.
final class CPIOCacheTests: XCTestCase {
    let logger = Logger(label: "test")
    let paths: [StorePath] = (0..<6).map { try! StorePath(name: String(repeating: "\($0)", count: 32) + "-p\($0)") }

    func key(_ i: Int) -> CacheKey { CacheKey(path: paths[i], codec: "zstd", level: 10) }

    func producer(bytes: Int, counter: PackCounter? = nil, delay: Double = 0) -> CPIOCache.Producer {
        { sink in
            counter?.increment()
            if delay > 0 { Thread.sleep(forTimeInterval: delay) }
            let data = [UInt8](repeating: 7, count: bytes)
            try data.withUnsafeBytes { try sink.write($0) }
        }
    }

    func files(_ dir: String) throws -> Set<String> { Set(try FileManager.default.contentsOfDirectory(atPath: dir)) }

    /// The names of the files in `dir`, with the checksum of our archives left out.
    func baseNames(_ dir: String) throws -> Set<String> {
        Set(try files(dir).map { CacheKey.parse(archiveFileName: $0)?.key.fileName ?? $0 })
    }

    func testArchivesAreReadOnlyAndNamedByAllFourPartsAndTheirChecksum() async throws {
        let dir = try makeTemporaryDirectory(self)
        let cache = running(try CPIOCache(directory: dir, capacity: 1000, jobs: 2, logger: logger))
        let contents = (0..<100).map { UInt8(truncatingIfNeeded: $0 &* 37) }
        let archive = try await cache.acquire(key(0)) { sink in try contents.withUnsafeBytes { try sink.write($0) } }
        XCTAssertEqual(archive.size, 100)
        await cache.release(key(0))
        // The CRC-32 in the name is zlib's, computed here independently of the cache.
        let crc = contents.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, uInt($0.count))) }
        let name = "\(paths[0].name)@nns-cpio-v\(InitrdLayout.formatVersion)@zstd-10@100-crc32-\(String(format: "%08x", crc))"
        XCTAssertEqual(try files(dir), [name])
        XCTAssertEqual(archive.path, dir + "/" + name)
        let attributes = try FileManager.default.attributesOfItem(atPath: dir + "/" + name)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o444)
        let parsed = try XCTUnwrap(CacheKey.parse(archiveFileName: name))
        XCTAssertEqual(parsed.key, key(0))
        XCTAssertEqual(parsed.checksum, ArchiveChecksum(size: 100, crc32: crc))
        XCTAssertEqual(try ArchiveChecksum.ofFile(at: archive.path), parsed.checksum)
        XCTAssertNil(CacheKey.parse(archiveFileName: key(0).fileName), "no checksum")
        XCTAssertNil(CacheKey.parse(archiveFileName: name + "0"))
        XCTAssertNil(CacheKey.parse(archiveFileName: key(0).fileName + "@100-crc32-0BADF00D"), "upper-case hex is not ours")
        XCTAssertNil(CacheKey(fileName: key(0).fileName + ".zst"))
        XCTAssertNil(CacheKey(fileName: paths[0].name + ".cpio.zstd"))
    }

    func testLeastRecentlyUsedEvictionByBytes() async throws {
        let dir = try makeTemporaryDirectory(self)
        let cache = running(try CPIOCache(directory: dir, capacity: 300, jobs: 2, logger: logger))
        for i in 0..<3 {
            _ = try await cache.acquire(key(i), producer: producer(bytes: 100))
            await cache.release(key(i))
        }
        let pinned = await cache.pin(key(0))  // 0 becomes the most recent
        XCTAssertNotNil(pinned)
        await cache.release(key(0))
        _ = try await cache.acquire(key(3), producer: producer(bytes: 100))
        await cache.release(key(3))
        XCTAssertEqual(try baseNames(dir), Set([0, 2, 3].map { key($0).fileName }))
        let total = await cache.totalBytes
        XCTAssertEqual(total, 300)
    }

    func testPinnedArchivesSurviveOverTheLimitAndAreTrimmedAfterwards() async throws {
        let dir = try makeTemporaryDirectory(self)
        let cache = running(try CPIOCache(directory: dir, capacity: 250, jobs: 2, logger: logger))
        for i in 0..<5 { _ = try await cache.acquire(key(i), producer: producer(bytes: 100)) }
        XCTAssertEqual(try files(dir).count, 5, "a closure larger than the cap still assembles")
        await cache.release((0..<5).map(key))
        XCTAssertEqual(try baseNames(dir), Set([3, 4].map { key($0).fileName }))
    }

    func testRestartRebuildsTheIndexRemovesTemporariesChecksumlessAndEarlierFormatArchivesAndLeavesForeignFiles() async throws {
        let dir = try makeTemporaryDirectory(self)
        do {
            let cache = running(try CPIOCache(directory: dir, capacity: 1000, jobs: 2, logger: logger))
            for i in 0..<2 {
                _ = try await cache.acquire(key(i), producer: producer(bytes: 100 + i))
                await cache.release(key(i))
            }
        }
        // What a killed packer leaves, and what another tool keeps in the same directory.
        try Data(repeating: 1, count: 10).write(to: URL(fileURLWithPath: dir + "/.nns-tmp-\(key(2).fileName).abc"))
        try Data(repeating: 1, count: 10).write(to: URL(fileURLWithPath: dir + "/\(paths[3].name).cpio.zstd"))
        try Data(repeating: 1, count: 10).write(to: URL(fileURLWithPath: dir + "/\(paths[4].name)@nns-cpio-v999@zstd-10"))
        // Archives of earlier formats (with and without a checksum) can never be served again: removed.
        try Data(repeating: 1, count: 10).write(to: URL(fileURLWithPath: dir + "/\(paths[3].name)@nns-cpio-v3@zstd-10@10-crc32-00000000"))
        try Data(repeating: 1, count: 10).write(to: URL(fileURLWithPath: dir + "/\(paths[4].name)@nns-cpio-v2@zstd-10"))
        // An archive of this format without a checksum (as written before checksums): not adopted.
        try Data(repeating: 1, count: 10).write(to: URL(fileURLWithPath: dir + "/" + key(5).fileName))
        let counter = PackCounter()
        let cache = running(try CPIOCache(directory: dir, capacity: 1000, jobs: 2, logger: logger))
        let count = await cache.entryCount, total = await cache.totalBytes
        XCTAssertEqual(count, 2)
        XCTAssertEqual(total, 201)
        XCTAssertEqual(try baseNames(dir), [key(0).fileName, key(1).fileName, "\(paths[3].name).cpio.zstd", "\(paths[4].name)@nns-cpio-v999@zstd-10"])
        let size = try await cache.acquire(key(1), producer: producer(bytes: 5, counter: counter)).size
        XCTAssertEqual(size, 101)
        XCTAssertEqual(counter.value, 0, "adopted, not packed again")
        await cache.release(key(1))
    }

    func testAFailedProducerLeavesNoFile() async throws {
        let dir = try makeTemporaryDirectory(self)
        let cache = running(try CPIOCache(directory: dir, capacity: 1000, jobs: 2, logger: logger))
        struct Boom: Error {}
        do {
            _ = try await cache.acquire(key(0)) { sink in
                try [UInt8](repeating: 1, count: 50).withUnsafeBytes { try sink.write($0) }
                throw Boom()
            }
            XCTFail("expected an error")
        } catch is Boom {}
        XCTAssertEqual(try files(dir), [])
        let size = try await cache.acquire(key(0), producer: producer(bytes: 3)).size
        XCTAssertEqual(size, 3, "a later request packs it again")
        await cache.release(key(0))
    }

    func testFiftyConcurrentRequestsPackOnce() async throws {
        let dir = try makeTemporaryDirectory(self)
        let cache = running(try CPIOCache(directory: dir, capacity: 10_000, jobs: 2, logger: logger))
        let counter = PackCounter()
        let make = producer(bytes: 1000, counter: counter, delay: 0.3)
        let k = key(0)
        let sizes = try await withThrowingTaskGroup(of: UInt64.self) { group in
            for _ in 0..<50 { group.addTask { try await cache.acquire(k, producer: make).size } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertEqual(sizes, Array(repeating: 1000, count: 50))
        XCTAssertEqual(counter.value, 1)
        for _ in 0..<50 { await cache.release(k) }
    }

    func testConcurrentPackingsAreBoundedByJobs() async throws {
        let dir = try makeTemporaryDirectory(self)
        let cache = running(try CPIOCache(directory: dir, capacity: 10_000, jobs: 2, logger: logger))
        let gauge = ConcurrencyGauge()
        let keys = (0..<6).map(key)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for k in keys {
                group.addTask {
                    _ = try await cache.acquire(k) { sink in
                        gauge.enter()
                        Thread.sleep(forTimeInterval: 0.1)
                        gauge.leave()
                        try [UInt8](repeating: 1, count: 10).withUnsafeBytes { try sink.write($0) }
                    }
                }
            }
            try await group.waitForAll()
        }
        XCTAssertEqual(gauge.maximum, 2)
        await cache.release(keys)
    }

    func testACancelledRequesterLeavesTheSharedPackingRunning() async throws {
        let dir = try makeTemporaryDirectory(self)
        let cache = running(try CPIOCache(directory: dir, capacity: 10_000, jobs: 2, logger: logger))
        let counter = PackCounter()
        let make = producer(bytes: 77, counter: counter, delay: 0.5)
        let k = key(0)
        let first = Task { try await cache.acquire(k, producer: make).size }
        let second = Task { try await cache.acquire(k, producer: make).size }
        try await Task.sleep(for: .milliseconds(100))
        first.cancel()
        do {
            _ = try await first.value
            XCTFail("the cancelled requester should see a cancellation")
        } catch is CancellationError {}
        let size = try await second.value
        XCTAssertEqual(size, 77)
        XCTAssertEqual(counter.value, 1)
        XCTAssertEqual(try baseNames(dir), [k.fileName])
        await cache.release(k)

        // Even with every requester gone, the packing finishes into the cache.
        let k2 = key(1)
        let lone = Task { try await cache.acquire(k2, producer: make) }
        try await Task.sleep(for: .milliseconds(100))
        lone.cancel()
        _ = try? await lone.value
        try await Task.sleep(for: .milliseconds(800))
        XCTAssertEqual(counter.value, 2)
        let ready = await cache.pin(k2)
        XCTAssertNotNil(ready)
        await cache.release(k2)
    }

    /// A producer that records its key when it starts and takes `delay` seconds.
    func recording(_ label: Int, into order: StartOrder, delay: Double = 0) -> CPIOCache.Producer {
        { sink in
            order.append(label)
            if delay > 0 { Thread.sleep(forTimeInterval: delay) }
            try [UInt8](repeating: 1, count: 10).withUnsafeBytes { try sink.write($0) }
        }
    }

    func testQueuedPackingsStartLargestFirst() async throws {
        let cache = running(try CPIOCache(directory: try makeTemporaryDirectory(self), capacity: 10_000, jobs: 1, logger: logger))
        let order = StartOrder()
        let k0 = key(0), p0 = recording(0, into: order, delay: 0.4)
        let first = Task { try await cache.acquire(k0, priority: 1, producer: p0) }
        try await Task.sleep(for: .milliseconds(100))
        var queued: [Task<CachedArchive, any Error>] = []
        for (index, priority) in [(1, UInt64(10)), (2, 500), (3, 100)] {
            let k = key(index), p = recording(index, into: order)
            queued.append(Task { try await cache.acquire(k, priority: priority, producer: p) })
            try await Task.sleep(for: .milliseconds(20))
        }
        _ = try await first.value
        for task in queued { _ = try await task.value }
        XCTAssertEqual(order.labels, [0, 2, 3, 1], "the largest queued packing starts first")
        await cache.release((0..<4).map(key))
    }

    func testAQueuedPackingNobodyWaitsForYieldsToOneSomebodyWaitsForAndStillPacks() async throws {
        let cache = running(try CPIOCache(directory: try makeTemporaryDirectory(self), capacity: 10_000, jobs: 1, logger: logger))
        let order = StartOrder()
        let (k0, k1, k2) = (key(0), key(1), key(2))
        let (p0, p1, p2) = (recording(0, into: order, delay: 0.4), recording(1, into: order), recording(2, into: order))
        let first = Task { try await cache.acquire(k0, producer: p0) }
        try await Task.sleep(for: .milliseconds(100))
        let abandoned = Task { try await cache.acquire(k1, priority: 1000, producer: p1) }
        try await Task.sleep(for: .milliseconds(20))
        let wanted = Task { try await cache.acquire(k2, priority: 1, producer: p2) }
        try await Task.sleep(for: .milliseconds(20))
        abandoned.cancel()
        do {
            _ = try await abandoned.value
            XCTFail("the cancelled requester sees a cancellation")
        } catch is CancellationError {}
        _ = try await first.value
        _ = try await wanted.value
        let deadline = Date().addingTimeInterval(5)
        while order.labels.count < 3 && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        XCTAssertEqual(order.labels, [0, 2, 1], "wanted work first; the abandoned one still packs, for the cache")
        var pinned: CachedArchive?
        while pinned == nil && Date() < deadline {
            pinned = await cache.pin(key(1))
            if pinned == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        XCTAssertNotNil(pinned)
        await cache.release([key(0), key(1), key(2)])
    }

    func testStoppingTheServiceCancelsARunningPackingRemovesItsTemporaryAndShutsThePoolDown() async throws {
        let dir = try makeTemporaryDirectory(self)
        let cache = try CPIOCache(directory: dir, capacity: 1 << 30, jobs: 1, logger: logger)
        let service = Task { try await cache.run() }
        // A producer that would write forever: only the cancellation stops it.
        let k0 = key(0)
        let endless = Task {
            try await cache.acquire(k0) { sink in
                let chunk = [UInt8](repeating: 3, count: 4096)
                while true {
                    try chunk.withUnsafeBytes { try sink.write($0) }
                    Thread.sleep(forTimeInterval: 0.001)
                }
            }
        }
        let deadline = Date().addingTimeInterval(10)
        while temporaries(in: dir).isEmpty && Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        XCTAssertEqual(temporaries(in: dir).count, 1, "the packing runs")
        let stopped = Date()
        service.cancel()
        try await service.value
        XCTAssertLessThan(Date().timeIntervalSince(stopped), 2, "the packing stopped at its next write")
        XCTAssertEqual(temporaries(in: dir), [], "its temporary is gone")
        do {
            _ = try await endless.value
            XCTFail("the requester of a cancelled packing gets an error")
        } catch {}
        do {
            _ = try await cache.acquire(key(1), producer: producer(bytes: 3))
            XCTFail("a stopped cache packs nothing")
        } catch CacheError.stopped {}
    }
}

/// Counts calls from any thread.
final class PackCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}

/// Records the most threads inside a section at once.
final class ConcurrencyGauge: @unchecked Sendable {
    private let lock = NSLock()
    private var current = 0
    private(set) var maximum = 0
    func enter() { lock.withLock { current += 1; maximum = max(maximum, current) } }
    func leave() { lock.withLock { current -= 1 } }
}

/// The order in which producers started, from any thread.
final class StartOrder: @unchecked Sendable {
    private let lock = NSLock()
    private var recorded: [Int] = []
    func append(_ label: Int) { lock.withLock { recorded.append(label) } }
    var labels: [Int] { lock.withLock { recorded } }
}
