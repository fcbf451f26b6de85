import Codecs
import Foundation
import Logging
import NetbootHost
import XCTest

/// A large store path packed on every core: cut into members at entry boundaries (a pure function
/// of its entries), a single large file in zstd's worker mode, the same bytes whatever the worker
/// count or `--jobs`, and an archive the kernel unpacks like one stream.
final class LargePathPackingTests: XCTestCase {
    let logger = Logger(label: "test")
    let registration = Array("registration of the large path\n".utf8)

    // MARK: Cut points

    func entry(_ name: String, _ kind: StorePathArchiver.Entry.Kind) -> StorePathArchiver.Entry {
        StorePathArchiver.Entry(diskPath: Array(("/x/" + name).utf8), archiveName: Array(("nix/store/p/" + name).utf8), mode: 0o444, kind: kind)
    }

    func testMembersAreCutBeforeTheEntryThatWouldPassTheTargetAndCoverEveryEntryOnce() {
        var entries = [entry("", .directory)]
        for i in 0..<40 { entries.append(entry("f\(i)", .regular(size: UInt64(100 + i * 13)))) }
        entries.insert(entry("big", .regular(size: 5000)), at: 10)
        entries.insert(entry("link", .symlink(target: Array("f1".utf8))), at: 20)
        let plan = ArchiveMemberPlan(entries: entries, registrationNameLength: 40, registrationSize: 77, targetBytes: 1000)

        XCTAssertGreaterThan(plan.members.count, 5)
        XCTAssertEqual(plan.members.first?.entries.lowerBound, 0)
        XCTAssertEqual(plan.members.last?.entries.upperBound, entries.count)
        for (previous, next) in zip(plan.members, plan.members.dropFirst()) {
            XCTAssertEqual(previous.entries.upperBound, next.entries.lowerBound, "members are contiguous")
            // The cut is there because the next entry would have taken the member past the target.
            XCTAssertGreaterThan(previous.size + entries[next.entries.lowerBound].archiveSize, 1000)
        }
        for member in plan.members.dropLast() {
            XCTAssertFalse(member.isLast)
            XCTAssertEqual(member.size, entries[member.entries].reduce(0) { $0 + $1.archiveSize })
            XCTAssertTrue(member.size <= 1000 || member.entries.count == 1, "only a single entry passes the target alone")
        }
        XCTAssertEqual(plan.members.filter(\.isLast).count, 1)
        XCTAssertEqual(plan.members.first { $0.entries.contains(10) }?.entries, 10..<11, "the large file is a member alone")
        XCTAssertEqual(plan.totalSize, StorePathArchiver.archiveSize(of: entries, plusFiles: [(40, 77)]))
        // A pure function of the entries.
        XCTAssertEqual(plan, ArchiveMemberPlan(entries: entries, registrationNameLength: 40, registrationSize: 77, targetBytes: 1000))
    }

    func testASmallPathIsOneMember() {
        let entries = [entry("", .directory), entry("a", .regular(size: 1 << 20)), entry("b", .regular(size: 2 << 20))]
        let plan = ArchiveMemberPlan(entries: entries, registrationNameLength: 40, registrationSize: 100)
        XCTAssertEqual(plan.members, [.init(entries: 0..<3, size: plan.totalSize, isLast: true)])
    }

    // MARK: zstd's worker mode

    func testZstdWorkerModeGivesTheSameFrameForOneTwoAndFourWorkers() throws {
        let input = Self.sampleData(count: Int(ZstdCompressor.workerModeThreshold) + (3 << 20), seed: 1)
        let codec = ZstdCompressor()
        var frames: [[UInt8]] = []
        for workers in [1, 2, 4] {
            let encoder = try codec.makeEncoder(level: 3, inputSize: UInt64(input.count), workers: workers)
            frames.append(try Self.compress(input, with: encoder))
        }
        XCTAssertEqual(frames[0], frames[1], "1 and 2 workers")
        XCTAssertEqual(frames[0], frames[2], "1 and 4 workers")
        let dir = try makeTemporaryDirectory(self)
        try writeFile(frames[0], to: dir + "/frame.zst")
        XCTAssertEqual([UInt8](try shell("zstd -dc \(dir)/frame.zst").output), input)
        // Below the threshold the codec stays single-threaded, whatever it is allowed.
        let small = Array(input.prefix(1 << 20))
        XCTAssertEqual(
            try Self.compress(small, with: try codec.makeEncoder(level: 3, inputSize: UInt64(small.count), workers: 1)),
            try Self.compress(small, with: try codec.makeEncoder(level: 3, inputSize: UInt64(small.count), workers: 4)))
    }

    // MARK: A large path, end to end

    /// A stand-in store holding one path of 20 files of 1 MiB and one file above zstd's worker
    /// threshold: several members of small files and a member of its own for the large one.
    func makeLargePath() throws -> (storeDirectory: String, path: StorePath) {
        let store = try makeTemporaryDirectory(self, "store")
        let path = try StorePath(name: String(repeating: "l", count: 32) + "-large")
        let root = store + "/" + path.name
        try FileManager.default.createDirectory(atPath: root + "/share/data", withIntermediateDirectories: true)
        for i in 0..<20 {
            try writeFile(Self.sampleData(count: 1 << 20, seed: UInt64(i + 10)), to: root + "/share/data/part-\(i)")
        }
        try writeFile(Self.sampleData(count: Int(ZstdCompressor.workerModeThreshold) + (1 << 20), seed: 99), to: root + "/share/locale-archive")
        try FileManager.default.createSymbolicLink(atPath: root + "/share/link", withDestinationPath: "locale-archive")
        return (store, path)
    }

    func testALargePathIsSeveralMembersTheKernelUnpacksToTheSameTreeAndBytesAsOneStream() throws {
        let (store, path) = try makeLargePath()
        let packer = StorePathPacker(compressor: ZstdCompressor(), level: 3, storeDirectory: store, workers: 2)
        let plan = try packer.plan(path, registration: registration)
        XCTAssertGreaterThanOrEqual(plan.members.members.count, 3)
        XCTAssertTrue(plan.members.members.contains { $0.size >= ZstdCompressor.workerModeThreshold && $0.entries.count == 1 })

        let packed = try packer.pack(path, registration: registration, into: MemorySink()).bytes
        let parsed = try KernelInitramfs.parse(packed, existingDirectories: leaderDirectories)
        XCTAssertEqual(parsed.members.count, plan.members.members.count, "one zstd frame per member")
        XCTAssertTrue(parsed.members.allSatisfy { $0.compression == .zstd })
        XCTAssertEqual(describeKernelTree(parsed, prefix: "nix/store/\(path.name)"), try describeTree(store + "/" + path.name))
        XCTAssertEqual(Set(parsed.entries.map(\.ino)).count, parsed.entries.count, "inode numbers continue across members")
        XCTAssertEqual(parsed.tree[String(decoding: InitrdLayout.registrationName(path), as: UTF8.self)]?.data, registration)

        // Decompressed and joined, the members are the archive one uncompressed stream holds.
        let dir = try makeTemporaryDirectory(self)
        try writeFile(packed, to: dir + "/members.zst")
        let joined = [UInt8](try shell("zstd -dc \(dir)/members.zst").output)
        let uncompressed = try StorePathPacker(compressor: NoneCompressor(), level: 0, storeDirectory: store)
            .pack(path, registration: registration, into: MemorySink()).bytes
        var oneStream = NewcWriter(sink: MemorySink())
        try StorePathArchiver.write(try StorePathArchiver.walk(diskPath: store + "/" + path.name, archiveName: "nix/store/" + path.name), into: &oneStream)
        try oneStream.appendFile(InitrdLayout.registrationName(path), mode: 0o444, contents: registration)
        let reference = try oneStream.finish().bytes
        XCTAssertEqual(joined, reference)
        XCTAssertEqual(uncompressed, reference)
    }

    func testTheSameBytesWithOneOrTwoJobsAndAnyWorkerCountThroughTheCache() async throws {
        let (store, path) = try makeLargePath()
        var files: [[UInt8]] = []
        for (jobs, workers) in [(1, 1), (2, 2), (2, 4)] {
            let dir = try makeTemporaryDirectory(self, "cache")
            let cache = running(try CPIOCache(directory: dir, capacity: 1 << 30, jobs: jobs, logger: logger))
            let packer = StorePathPacker(compressor: ZstdCompressor(), level: 3, storeDirectory: store, workers: workers)
            let registration = self.registration
            let archive = try await cache.acquire(
                CacheKey(path: path, codec: "zstd", level: 3), planner: packer.planner(path, registration: registration))
            files.append([UInt8](try Data(contentsOf: URL(fileURLWithPath: archive.path))))
            XCTAssertEqual(try ArchiveChecksum.ofFile(at: archive.path), archive.checksum, "the joined checksum is the file's")
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).count, 1, "no part left behind")
            await cache.release(archive.key)
        }
        XCTAssertEqual(files[0], files[1])
        XCTAssertEqual(files[0], files[2])
        let direct = try StorePathPacker(compressor: ZstdCompressor(), level: 3, storeDirectory: store)
            .pack(path, registration: registration, into: MemorySink()).bytes
        XCTAssertEqual(files[0], direct, "the cache joins the members in order")
    }

    // MARK: The cache's parts

    func testPartsAreWrittenAtOnceOnTheCachesThreadsAndJoinedInOrder() async throws {
        let dir = try makeTemporaryDirectory(self)
        let cache = running(try CPIOCache(directory: dir, capacity: 1 << 20, jobs: 2, logger: logger))
        let gauge = ConcurrencyGauge()
        let key = CacheKey(path: try StorePath(name: String(repeating: "a", count: 32) + "-parts"), codec: "zstd", level: 10)
        let archive = try await cache.acquire(key) {
            (0..<4).map { index in
                { sink in
                    gauge.enter()
                    Thread.sleep(forTimeInterval: 0.2)
                    gauge.leave()
                    try [UInt8](repeating: UInt8(index), count: 1000 + index).withUnsafeBytes { try sink.write($0) }
                }
            }
        }
        XCTAssertEqual(gauge.maximum, 2, "two parts of one archive at once with two jobs")
        var expected: [UInt8] = []
        for index in 0..<4 { expected += [UInt8](repeating: UInt8(index), count: 1000 + index) }
        XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: archive.path))), expected)
        XCTAssertEqual(try ArchiveChecksum.ofFile(at: archive.path), archive.checksum)
        await cache.release(key)
    }

    func testAFailingPartStopsTheOthersAndLeavesNoFile() async throws {
        let dir = try makeTemporaryDirectory(self)
        let cache = running(try CPIOCache(directory: dir, capacity: 1 << 20, jobs: 2, logger: logger))
        let key = CacheKey(path: try StorePath(name: String(repeating: "b", count: 32) + "-parts"), codec: "zstd", level: 10)
        let written = PackCounter()
        do {
            _ = try await cache.acquire(key) {
                (0..<6).map { index in
                    { sink in
                        if index == 1 { throw CompressionError("part 1 fails") }
                        for _ in 0..<20 {
                            Thread.sleep(forTimeInterval: 0.01)
                            try [UInt8](repeating: 1, count: 100).withUnsafeBytes { try sink.write($0) }
                        }
                        written.increment()
                    }
                }
            }
            XCTFail("a failing part fails the archive")
        } catch let error as CompressionError {
            XCTAssertEqual(error.description, "part 1 fails")
        }
        XCTAssertLessThan(written.value, 6, "the other parts stop at their next write")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [], "no part or archive left")
        // The next request packs it.
        let archive = try await cache.acquire(key) { [{ sink in try [UInt8](repeating: 2, count: 10).withUnsafeBytes { try sink.write($0) } }] }
        XCTAssertEqual(archive.size, 10)
        await cache.release(key)
    }

    // MARK: Helpers

    /// Compressible, varied bytes from a seed (a small linear congruential generator).
    static func sampleData(count: Int, seed: UInt64) -> [UInt8] {
        var state = seed &* 6364136223846793005 &+ 1442695040888963407
        var bytes = [UInt8](repeating: 0, count: count)
        var index = 0
        while index < count {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let run = Int(state >> 58) + 1  // 1…64 bytes of one value: compressible, not trivially
            let value = UInt8(truncatingIfNeeded: state >> 40) & 0x3F
            for _ in 0..<run where index < count {
                bytes[index] = value
                index += 1
            }
        }
        return bytes
    }

    static func compress(_ input: [UInt8], with encoder: any CompressionEncoder) throws -> [UInt8] {
        var output: [UInt8] = []
        try input.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let end = min(offset + (1 << 20), raw.count)
                try encoder.compress(UnsafeRawBufferPointer(rebasing: raw[offset..<end])) { output += $0 }
                offset = end
            }
        }
        try encoder.finish { output += $0 }
        return output
    }
}
