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

    func testArchivesAreReadOnlyAndNamedByAllFourParts() async throws {
        let dir = try makeTemporaryDirectory(self)
        let cache = try CPIOCache(directory: dir, capacity: 1000, jobs: 2, logger: logger)
        let size = try await cache.acquire(key(0), producer: producer(bytes: 100))
        XCTAssertEqual(size, 100)
        await cache.release(key(0))
        let name = "\(paths[0].name)@nns-cpio-v\(InitrdLayout.formatVersion)@zstd-10"
        XCTAssertEqual(try files(dir), [name])
        let attributes = try FileManager.default.attributesOfItem(atPath: dir + "/" + name)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o444)
        XCTAssertEqual(CacheKey(fileName: name), key(0))
        XCTAssertNil(CacheKey(fileName: name + ".zst"))
        XCTAssertNil(CacheKey(fileName: paths[0].name + ".cpio.zstd"))
    }

    func testLeastRecentlyUsedEvictionByBytes() async throws {
        let dir = try makeTemporaryDirectory(self)
        let cache = try CPIOCache(directory: dir, capacity: 300, jobs: 2, logger: logger)
        for i in 0..<3 {
            _ = try await cache.acquire(key(i), producer: producer(bytes: 100))
            await cache.release(key(i))
        }
        let pinned = await cache.pinIfReady(key(0))  // 0 becomes the most recent
        XCTAssertNotNil(pinned)
        await cache.release(key(0))
        _ = try await cache.acquire(key(3), producer: producer(bytes: 100))
        await cache.release(key(3))
        XCTAssertEqual(try files(dir), Set([0, 2, 3].map { key($0).fileName }))
        let total = await cache.totalBytes
        XCTAssertEqual(total, 300)
    }

    func testPinnedArchivesSurviveOverTheLimitAndAreTrimmedAfterwards() async throws {
        let dir = try makeTemporaryDirectory(self)
        let cache = try CPIOCache(directory: dir, capacity: 250, jobs: 2, logger: logger)
        for i in 0..<5 { _ = try await cache.acquire(key(i), producer: producer(bytes: 100)) }
        XCTAssertEqual(try files(dir).count, 5, "a closure larger than the cap still assembles")
        await cache.release((0..<5).map(key))
        XCTAssertEqual(try files(dir), Set([3, 4].map { key($0).fileName }))
    }

    func testRestartRebuildsTheIndexRemovesTemporariesAndLeavesForeignFiles() async throws {
        let dir = try makeTemporaryDirectory(self)
        do {
            let cache = try CPIOCache(directory: dir, capacity: 1000, jobs: 2, logger: logger)
            for i in 0..<2 {
                _ = try await cache.acquire(key(i), producer: producer(bytes: 100 + i))
                await cache.release(key(i))
            }
        }
        // What a killed packer leaves, and what another tool keeps in the same directory.
        try Data(repeating: 1, count: 10).write(to: URL(fileURLWithPath: dir + "/.nns-tmp-\(key(2).fileName).abc"))
        try Data(repeating: 1, count: 10).write(to: URL(fileURLWithPath: dir + "/\(paths[3].name).cpio.zstd"))
        try Data(repeating: 1, count: 10).write(to: URL(fileURLWithPath: dir + "/\(paths[4].name)@nns-cpio-v999@zstd-10"))
        let counter = PackCounter()
        let cache = try CPIOCache(directory: dir, capacity: 1000, jobs: 2, logger: logger)
        let count = await cache.entryCount, total = await cache.totalBytes
        XCTAssertEqual(count, 2)
        XCTAssertEqual(total, 201)
        XCTAssertEqual(try files(dir), [key(0).fileName, key(1).fileName, "\(paths[3].name).cpio.zstd", "\(paths[4].name)@nns-cpio-v999@zstd-10"])
        let size = try await cache.acquire(key(1), producer: producer(bytes: 5, counter: counter))
        XCTAssertEqual(size, 101)
        XCTAssertEqual(counter.value, 0, "adopted, not packed again")
        await cache.release(key(1))
    }

    func testAFailedProducerLeavesNoFile() async throws {
        let dir = try makeTemporaryDirectory(self)
        let cache = try CPIOCache(directory: dir, capacity: 1000, jobs: 2, logger: logger)
        struct Boom: Error {}
        do {
            _ = try await cache.acquire(key(0)) { sink in
                try [UInt8](repeating: 1, count: 50).withUnsafeBytes { try sink.write($0) }
                throw Boom()
            }
            XCTFail("expected an error")
        } catch is Boom {}
        XCTAssertEqual(try files(dir), [])
        let size = try await cache.acquire(key(0), producer: producer(bytes: 3))
        XCTAssertEqual(size, 3, "a later request packs it again")
        await cache.release(key(0))
    }

    func testFiftyConcurrentRequestsPackOnce() async throws {
        let dir = try makeTemporaryDirectory(self)
        let cache = try CPIOCache(directory: dir, capacity: 10_000, jobs: 2, logger: logger)
        let counter = PackCounter()
        let make = producer(bytes: 1000, counter: counter, delay: 0.3)
        let k = key(0)
        let sizes = try await withThrowingTaskGroup(of: UInt64.self) { group in
            for _ in 0..<50 { group.addTask { try await cache.acquire(k, producer: make) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertEqual(sizes, Array(repeating: 1000, count: 50))
        XCTAssertEqual(counter.value, 1)
        for _ in 0..<50 { await cache.release(k) }
    }

    func testConcurrentPackingsAreBoundedByJobs() async throws {
        let dir = try makeTemporaryDirectory(self)
        let cache = try CPIOCache(directory: dir, capacity: 10_000, jobs: 2, logger: logger)
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
        let cache = try CPIOCache(directory: dir, capacity: 10_000, jobs: 2, logger: logger)
        let counter = PackCounter()
        let make = producer(bytes: 77, counter: counter, delay: 0.5)
        let k = key(0)
        let first = Task { try await cache.acquire(k, producer: make) }
        let second = Task { try await cache.acquire(k, producer: make) }
        try await Task.sleep(for: .milliseconds(100))
        first.cancel()
        do {
            _ = try await first.value
            XCTFail("the cancelled requester should see a cancellation")
        } catch is CancellationError {}
        let size = try await second.value
        XCTAssertEqual(size, 77)
        XCTAssertEqual(counter.value, 1)
        XCTAssertTrue(FileManager.default.fileExists(atPath: cache.filePath(k)))
        await cache.release(k)

        // Even with every requester gone, the packing finishes into the cache.
        let k2 = key(1)
        let lone = Task { try await cache.acquire(k2, producer: make) }
        try await Task.sleep(for: .milliseconds(100))
        lone.cancel()
        _ = try? await lone.value
        try await Task.sleep(for: .milliseconds(800))
        XCTAssertEqual(counter.value, 2)
        let ready = await cache.pinIfReady(k2)
        XCTAssertNotNil(ready)
        await cache.release(k2)
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
