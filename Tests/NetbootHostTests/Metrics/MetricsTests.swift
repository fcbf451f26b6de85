import Foundation
import Logging
import NetbootHost
import XCTest

/// The metrics' pure parts (label bounds, the catalogue's names) and the cache's events counted
/// against a real cache directory.
final class MetricsTests: XCTestCase {
    let logger = Logger(label: "test")
    let paths: [StorePath] = (0..<4).map { try! StorePath(name: String(repeating: "\($0)", count: 32) + "-m\($0)") }

    func key(_ i: Int) -> CacheKey { CacheKey(path: paths[i], codec: "zstd", level: 3) }

    func producer(bytes: Int) -> CPIOCache.Producer {
        { sink in try [UInt8](repeating: 7, count: bytes).withUnsafeBytes { try sink.write($0) } }
    }

    func read(_ metrics: ServerMetrics, _ cache: CPIOCache) async throws -> MetricsScrape {
        try MetricsScrape(String(decoding: await metrics.exposition(cache: cache), as: UTF8.self))
    }

    // MARK: - Label bounds

    func testLabelValuesPastTheLimitBecomeOtherAndAdmittedOnesStay() {
        var values = BoundedLabelValues(limit: 3)
        XCTAssertEqual(["a", "b", "c"].map { values.admit($0) }, ["a", "b", "c"])
        XCTAssertEqual(values.admit("d"), "other", "the fourth distinct value")
        XCTAssertEqual(values.admit("e"), "other")
        XCTAssertEqual(values.admit("b"), "b", "a value admitted before stays itself")
        XCTAssertEqual(values.admitted.count, 3)
        var fresh = BoundedLabelValues(limit: 3)
        XCTAssertEqual(fresh.admit("other"), "other", "a real value named other takes no room")
        XCTAssertEqual(fresh.admitted.count, 0)
        XCTAssertEqual(BoundedLabelValues(limit: 0).admitted.count, 0)
        var none = BoundedLabelValues(limit: 0)
        XCTAssertEqual(none.admit("a"), "other")
    }

    func testLongLabelValuesAreCutOnACharacterBoundary() {
        var values = BoundedLabelValues(limit: 10)
        let long = String(repeating: "é", count: 80)  // 160 bytes
        let kept = values.admit(long)
        XCTAssertLessThanOrEqual(kept.utf8.count, BoundedLabelValues.maximumLength)
        XCTAssertEqual(kept, String(repeating: "é", count: 50))
        XCTAssertEqual(values.admit(long + "x"), kept, "values that differ only past the cut are one series")
    }

    func testMachineRulesAreCappedInTheExposition() async throws {
        let metrics = ServerMetrics()
        for i in 0..<(ServerMetrics.ruleLimit + 10) { metrics.machineBooted(source: "machine", rule: "rule-\(i)") }
        metrics.machineBooted(source: "machine", rule: "rule-0")
        let cache = running(try CPIOCache(directory: try makeTemporaryDirectory(self), capacity: 1000, jobs: 1, logger: logger))
        let scrape = try await read(metrics, cache)
        XCTAssertEqual(scrape.series("nns_machine_boots_total").count, ServerMetrics.ruleLimit + 1)
        XCTAssertEqual(scrape.value("nns_machine_boots_total", ["source": "machine", "rule": "other"]), 10)
        XCTAssertEqual(scrape.value("nns_machine_boots_total", ["source": "machine", "rule": "rule-0"]), 2)
    }

    func testRequestsWithoutARouteAreUnmatchedAndOddMethodsAndStatusesFolded() async throws {
        let metrics = ServerMetrics()
        metrics.requestCompleted(route: nil, method: "GET", status: 404, bytes: 10, duration: .milliseconds(2))
        metrics.requestCompleted(route: "NotFound", method: "BREW", status: 404, bytes: 10, duration: .milliseconds(2))
        metrics.requestCompleted(route: "/boot/{name}/initrd", method: "GET", status: 1000, bytes: 5, duration: .seconds(3))
        let cache = running(try CPIOCache(directory: try makeTemporaryDirectory(self), capacity: 1000, jobs: 1, logger: logger))
        let scrape = try await read(metrics, cache)
        XCTAssertEqual(scrape.value("nns_http_requests_total", ["route": "unmatched", "method": "GET", "status": "404"]), 1)
        XCTAssertEqual(scrape.value("nns_http_requests_total", ["route": "unmatched", "method": "other", "status": "404"]), 1)
        XCTAssertEqual(scrape.value("nns_http_requests_total", ["route": "/boot/{name}/initrd", "method": "GET", "status": "other"]), 1)
        XCTAssertEqual(scrape.value("nns_http_response_bytes_total", ["route": "unmatched"]), 20)
        XCTAssertEqual(scrape.value("nns_http_request_duration_seconds_bucket", ["route": "/boot/{name}/initrd", "le": "2.5"]), 0)
        XCTAssertEqual(scrape.value("nns_http_request_duration_seconds_bucket", ["route": "/boot/{name}/initrd", "le": "10.0"]), 1)
        XCTAssertEqual(scrape.value("nns_http_request_duration_seconds_sum", ["route": "/boot/{name}/initrd"]), 3)
    }

    // MARK: - The catalogue

    func testEveryFamilyIsNamedAfterPrometheusConventionsAndHasHelp() {
        var names = Set<String>()
        for family in MetricCatalogue.all {
            XCTAssertTrue(names.insert(family.name).inserted, "\(family.name) twice")
            XCTAssertTrue(family.name.hasPrefix("nns_"), family.name)
            XCTAssertFalse(family.help.isEmpty, family.name)
            XCTAssertFalse(family.help.contains("\n"), family.name)
            switch family.kind {
            case .counter: XCTAssertTrue(family.name.hasSuffix("_total"), family.name)
            case .gauge: XCTAssertFalse(family.name.hasSuffix("_total"), family.name)
            case .histogram(let buckets):
                XCTAssertTrue(family.name.hasSuffix("_seconds"), family.name)
                XCTAssertEqual(buckets, buckets.sorted(), family.name)
            }
            if family.name.contains("bytes") { XCTAssertTrue(family.name.hasSuffix("_bytes") || family.name.hasSuffix("_bytes_total"), family.name) }
        }
    }

    // MARK: - The cache's events

    func testPackingsEvictionsAndFailuresAreCountedByTheCache() async throws {
        let metrics = ServerMetrics()
        let dir = try makeTemporaryDirectory(self)
        let cache = running(try CPIOCache(directory: dir, capacity: 250, jobs: 2, logger: logger, metrics: metrics))
        var scrape = try await read(metrics, cache)
        XCTAssertEqual(scrape.value("nns_cache_capacity_bytes"), 250)
        XCTAssertEqual(scrape.value("nns_cache_evictions_total"), 0, "present from the start")
        XCTAssertNotNil(scrape.samples[MetricsScrape.key("nns_cache_evictions_total", [])])
        for i in 0..<3 {
            _ = try await cache.acquire(key(i), estimatedSize: 1000, producer: producer(bytes: 100))
            await cache.release(key(i))
        }
        scrape = try await read(metrics, cache)
        XCTAssertEqual(scrape.value("nns_archives_packed_total", ["codec": "zstd"]), 3)
        XCTAssertEqual(scrape.value("nns_packing_output_bytes_total", ["codec": "zstd"]), 300)
        XCTAssertEqual(scrape.value("nns_packing_input_bytes_total", ["codec": "zstd"]), 3000)
        XCTAssertEqual(scrape.value("nns_packing_duration_seconds_count", ["codec": "zstd"]), 3)
        XCTAssertEqual(scrape.value("nns_cache_evictions_total"), 1, "the least recently used of three went")
        XCTAssertEqual(scrape.value("nns_cache_archives"), 2)
        XCTAssertEqual(scrape.value("nns_cache_bytes"), 200)

        struct Boom: Error {}
        await XCTAssertThrowsErrorAsync(try await cache.acquire(key(3)) { _ in throw Boom() })
        scrape = try await read(metrics, cache)
        XCTAssertEqual(scrape.value("nns_packing_failures_total", ["codec": "zstd", "reason": "error"]), 1)
        XCTAssertEqual(scrape.value("nns_archives_packed_total", ["codec": "zstd"]), 3)

        // A file removed under the server: found and dropped when the cache is next checked.
        try FileManager.default.removeItem(atPath: try archiveFile(of: paths[2], in: dir))
        _ = await cache.entryCount
        scrape = try await read(metrics, cache)
        XCTAssertEqual(scrape.value("nns_cache_vanished_total"), 1)
        XCTAssertEqual(scrape.value("nns_cache_archives"), 1)
    }

    func testAFullDiskIsCountedAsOutOfSpace() async throws {
        let metrics = ServerMetrics()
        let dir = try mountTmpfs(self, size: "1m")
        let cache = running(try CPIOCache(directory: dir, capacity: 1 << 30, jobs: 1, logger: logger, metrics: metrics))
        await XCTAssertThrowsErrorAsync(try await cache.acquire(key(0), estimatedSize: 3_000_000, producer: producer(bytes: 3_000_000)))
        let scrape = try await read(metrics, cache)
        XCTAssertEqual(scrape.value("nns_packing_failures_total", ["codec": "zstd", "reason": "out_of_space"]), 1)
        XCTAssertEqual(scrape.value("nns_packing_failures_total", ["codec": "zstd", "reason": "error"]), 0)
    }

    func testVerificationsOfAdoptedArchivesAreCountedWithTheirFailures() async throws {
        let dir = try makeTemporaryDirectory(self)
        do {
            let cache = running(try CPIOCache(directory: dir, capacity: 1000, jobs: 1, logger: logger))
            for i in 0..<2 {
                _ = try await cache.acquire(key(i), producer: producer(bytes: 100))
                await cache.release(key(i))
            }
        }
        try flipBit(in: try archiveFile(of: paths[1], in: dir))
        let metrics = ServerMetrics()
        let cache = running(try CPIOCache(directory: dir, capacity: 1000, jobs: 1, logger: logger, metrics: metrics))
        var scrape = try await read(metrics, cache)
        XCTAssertEqual(scrape.value("nns_cache_archives"), 2, "adopted at start-up")
        XCTAssertEqual(scrape.value("nns_cache_verification_failures_total"), 0)
        let pinned = await cache.pin([key(0), key(1)])
        XCTAssertNotNil(pinned[0])
        XCTAssertNil(pinned[1], "the changed archive failed its checksum")
        await cache.release(key(0))
        scrape = try await read(metrics, cache)
        XCTAssertEqual(scrape.value("nns_cache_verified_archives_total"), 1)
        XCTAssertEqual(scrape.value("nns_cache_verification_failures_total"), 1)
        XCTAssertEqual(scrape.value("nns_cache_archives"), 1)
    }
}

/// Fails unless `expression` throws.
func XCTAssertThrowsErrorAsync<T>(_ expression: @autoclosure () async throws -> T, file: StaticString = #filePath, line: UInt = #line) async {
    do {
        _ = try await expression()
        XCTFail("expected an error", file: file, line: line)
    } catch {}
}
