import Foundation
import NetbootHost
import XCTest

/// `GET /metrics` of the server binary, over real TCP with curl: Prometheus' own `promtool` accepts
/// it, and each family moves when its event happens.
final class MetricsLiveTests: XCTestCase {
    func fetch(_ url: String) throws -> (status: Int, body: String) {
        let dir = try makeTemporaryDirectory(self, "get")
        let status = try shellString("curl -sS -o \(dir)/body -w '%{http_code}' '\(url)'")
        return (Int(status) ?? 0, (try? String(contentsOfFile: dir + "/body", encoding: .utf8)) ?? "")
    }

    /// Scrapes the server and checks the text with `promtool check metrics` (HELP on every family,
    /// counters ending in `_total`, valid syntax).
    func scrape(_ server: ServerProcess, file: StaticString = #filePath, line: UInt = #line) throws -> MetricsScrape {
        let dir = try makeTemporaryDirectory(self, "scrape")
        let headers = try shellString("curl -sS -D \(dir)/headers -o \(dir)/metrics -w '%{http_code}' \(server.base)/metrics")
        XCTAssertEqual(headers, "200", file: file, line: line)
        let contentType = try shellString("tr -d '\\r' < \(dir)/headers | awk 'tolower($1)==\"content-type:\" {$1=\"\"; print}'")
        XCTAssertEqual(contentType, "text/plain; version=0.0.4; charset=utf-8", file: file, line: line)
        let check = try shell("promtool check metrics < \(dir)/metrics", allowFailure: true)
        let text = try String(contentsOfFile: dir + "/metrics", encoding: .utf8)
        XCTAssertEqual(check.status, 0, "promtool: \(String(decoding: check.output, as: UTF8.self)) \(check.error)\n\(text)", file: file, line: line)
        let scrape = try MetricsScrape(text)
        for family in scrape.families {
            XCTAssertNotNil(MetricCatalogue.byName[family], "\(family) is in the catalogue (and the README)", file: file, line: line)
            XCTAssertNotNil(scrape.help[family], "\(family) has help", file: file, line: line)
        }
        return scrape
    }

    /// Scrapes until `condition` holds (for up to 10 s): a response's metrics are recorded once its
    /// body is sent, which a client may see a moment before.
    func scrape(
        _ server: ServerProcess, until condition: (MetricsScrape) -> Bool, file: StaticString = #filePath, line: UInt = #line
    ) throws -> MetricsScrape {
        let deadline = Date().addingTimeInterval(10)
        var now = try scrape(server, file: file, line: line)
        while !condition(now) && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.05)
            now = try scrape(server, file: file, line: line)
        }
        return now
    }

    func testPromtoolAcceptsTheMetricsAndEachFamilyMovesWithItsEvent() throws {
        let system = PackFixtures.shared.system
        let closure = try shellString("nix-store -qR \(system.absolutePath)").split(separator: "\n").count
        let state = try makeTemporaryDirectory(self, "state")
        let tag = UUID().uuidString.prefix(8)
        let counter = state + "/counter"
        try writeConfiguration(stateDir: state, name: "ok-\(tag)", version: "v-\(tag)", counter: counter)
        try writeConfiguration(stateDir: state, name: "broken-\(tag)", version: "x", fail: true, counter: counter)
        try writeConfiguration(stateDir: state, name: "slow-\(tag)", version: "s-\(tag)", sleep: 60, counter: counter)
        try FileManager.default.createDirectory(atPath: state + "/machines", withIntermediateDirectories: true)
        try #"{"match": {"mac": "52:54:00:aa:00:01"}, "boot": "closure/\#(system.name)"}"#
            .write(toFile: state + "/machines/node-a.json", atomically: true, encoding: .utf8)
        let server = try ServerProcess(self, arguments: ["--state-dir", state, "--build-timeout", "5", "--compression", "zstd"])
        let base = server.base

        let start = try scrape(server)
        XCTAssertEqual(start.value("nns_cache_archives"), 0)
        XCTAssertEqual(start.value("nns_packings_running"), 0)
        XCTAssertGreaterThan(start.value("nns_cache_capacity_bytes"), 0)
        XCTAssertNotNil(start.samples[MetricsScrape.key("nns_cache_hits_total", [])], "counters without labels start at 0")

        // An unknown path: counted under no route's template, never under its path.
        XCTAssertEqual(try fetch("\(base)/no/such/\(tag)").status, 404)
        let unmatched = ["route": "unmatched", "method": "GET", "status": "404"]
        var now = try scrape(server) { $0.value("nns_http_requests_total", unmatched) > 0 }
        XCTAssertEqual(now.value("nns_http_requests_total", unmatched), 1)
        XCTAssertGreaterThanOrEqual(now.value("nns_http_requests_total", ["route": "/metrics", "method": "GET", "status": "200"]), 1, "the first scrape")
        XCTAssertFalse(now.text.contains(String(tag)), "no path in a label")

        // A cold initrd: every path of the closure missed, was packed, and is cached.
        let initrd = try shellString("curl -sS -o /dev/null -w '%{http_code} %{size_download}' \(base)/boot/\(system.name)/initrd")
        XCTAssertTrue(initrd.hasPrefix("200 "), initrd)
        let initrdBytes = Double(initrd.split(separator: " ")[1]) ?? 0
        let route = ["route": "/boot/{name}/initrd"]
        now = try scrape(server) { $0.value("nns_http_request_duration_seconds_count", route) == 1 }
        XCTAssertEqual(now.value("nns_http_requests_total", route.merging(["method": "GET", "status": "200"]) { $1 }), 1)
        XCTAssertEqual(now.value("nns_http_response_bytes_total", route), initrdBytes)
        XCTAssertEqual(now.value("nns_http_request_duration_seconds_count", route), 1)
        XCTAssertEqual(now.value("nns_archives_packed_total", ["codec": "zstd"]), Double(closure))
        XCTAssertEqual(now.value("nns_packing_duration_seconds_count", ["codec": "zstd"]), Double(closure))
        XCTAssertGreaterThan(now.value("nns_packing_input_bytes_total", ["codec": "zstd"]), 0)
        let packedBytes = now.value("nns_packing_output_bytes_total", ["codec": "zstd"])
        XCTAssertGreaterThan(packedBytes, 0)
        XCTAssertLessThan(packedBytes, initrdBytes, "the archives are the initrd less its leader and loader")
        XCTAssertEqual(now.value("nns_cache_archives"), Double(closure))
        XCTAssertEqual(now.value("nns_cache_bytes"), packedBytes)
        XCTAssertEqual(now.value("nns_cache_misses_total"), Double(closure))
        XCTAssertEqual(now.value("nns_cache_hits_total"), 0)
        XCTAssertEqual(now.value("nns_packings_running"), 0)
        XCTAssertEqual(now.value("nns_packings_queued"), 0)

        // A warm one: all hits, nothing packed.
        XCTAssertEqual(try fetch("\(base)/boot/\(system.name)/initrd").status, 200)
        now = try scrape(server) { $0.value("nns_http_request_duration_seconds_count", route) == 2 }
        XCTAssertEqual(now.value("nns_cache_hits_total"), Double(closure))
        XCTAssertEqual(now.value("nns_cache_misses_total"), Double(closure))
        XCTAssertEqual(now.value("nns_archives_packed_total", ["codec": "zstd"]), Double(closure))
        XCTAssertEqual(now.value("nns_http_request_duration_seconds_count", route), 2)

        // Dispatches, one of each outcome.
        XCTAssertEqual(try fetch("\(base)/dispatch/closure/\(system.name)").status, 302)
        XCTAssertEqual(try fetch("\(base)/dispatch/nosuch-\(tag)/x").status, 404)
        XCTAssertEqual(try fetch("\(base)/dispatch/closure/not-a-store-path").status, 400)
        XCTAssertEqual(try fetch("\(base)/dispatch/configuration/ok-\(tag)").status, 302)
        XCTAssertEqual(try fetch("\(base)/dispatch/configuration/broken-\(tag)").status, 200)
        XCTAssertEqual(try fetch("\(base)/dispatch/configuration/slow-\(tag)").status, 503)
        let identity = "uuid=&serial=&hostname=&arch=x86_64&platform=pcbios"
        XCTAssertEqual(try fetch("\(base)/dispatch/machine?mac=52-54-00-aa-00-01&\(identity)").status, 302)
        XCTAssertEqual(try fetch("\(base)/dispatch/machine?mac=52-54-00-bb-00-02&\(identity)").status, 200)
        now = try scrape(server) { $0.series("nns_dispatches_total").values.reduce(0, +) >= 8 }
        let dispatches: [(String, String, Double)] = [
            ("closure", "redirect", 1), ("unknown", "refused", 1), ("closure", "refused", 1), ("configuration", "redirect", 1),
            ("configuration", "failed", 1), ("configuration", "retry_later", 1), ("machine", "redirect", 1), ("machine", "waiting", 1),
        ]
        for (source, outcome, count) in dispatches {
            XCTAssertEqual(now.value("nns_dispatches_total", ["source": source, "outcome": outcome]), count, "\(source) \(outcome)\n\(now.text)")
        }
        XCTAssertEqual(now.series("nns_dispatches_total").values.reduce(0, +), 8, "nothing else counted")
        XCTAssertFalse(now.text.contains("nosuch"), "an unknown source's name is no label")
        XCTAssertEqual(now.value("nns_machine_boots_total", ["source": "machine", "rule": "node-a"]), 1)
        XCTAssertEqual(now.value("nns_http_requests_total", ["route": "/dispatch/{source}/**", "method": "GET", "status": "302"]), 2)
        XCTAssertEqual(now.value("nns_http_requests_total", ["route": "/dispatch/machine", "method": "GET", "status": "302"]), 1)
        // Three evaluations succeeded (ok, broken, slow); one build succeeded, one failed, the slow one still runs.
        XCTAssertEqual(now.value("nns_evaluation_duration_seconds_count", ["source": "configuration", "outcome": "success"]), 3)
        XCTAssertEqual(now.value("nns_build_duration_seconds_count", ["source": "configuration", "outcome": "success"]), 1)
        XCTAssertEqual(now.value("nns_build_duration_seconds_count", ["source": "configuration", "outcome": "failure"]), 1)
        XCTAssertGreaterThan(now.value("nns_build_duration_seconds_sum", ["source": "configuration", "outcome": "success"]), 0)
    }

    func testEvictionsOfATinyCacheAreCounted() throws {
        let system = PackFixtures.shared.system
        let closure = try shellString("nix-store -qR \(system.absolutePath)").split(separator: "\n").count
        let server = try ServerProcess(self, arguments: ["--max-cpio-cache-bytes", "1"])
        XCTAssertEqual(try fetch("\(server.base)/boot/\(system.name)/initrd").status, 200)
        let packed = { (scrape: MetricsScrape) in scrape.value("nns_archives_packed_total", ["codec": "zstd"]) }
        let now = try scrape(server) { packed($0) >= Double(closure) && $0.value("nns_cache_evictions_total") == packed($0) }
        XCTAssertEqual(now.value("nns_cache_capacity_bytes"), 1)
        // The packing pass's archives are evicted as soon as it lets go of them (and the initrd packs
        // them again); the initrd's own once it is sent: every archive packed was evicted.
        XCTAssertGreaterThanOrEqual(packed(now), Double(closure))
        XCTAssertEqual(now.value("nns_cache_evictions_total"), packed(now), "every archive packed, once nothing used it")
        XCTAssertEqual(now.value("nns_cache_archives"), 0)
        XCTAssertEqual(now.value("nns_cache_bytes"), 0)
    }

    /// The README's example alerts, as an operator copies them.
    static let alertRules = """
        groups:
          - name: nix-netboot-serve
            rules:
              - alert: NetbootPackingFailures
                expr: increase(nns_packing_failures_total[15m]) > 0
                labels:
                  severity: warning
                annotations:
                  summary: "{{ $labels.instance }}: packings failed ({{ $labels.reason }}); machines get 5xx for their initrd"
              - alert: NetbootCacheVerificationFailures
                expr: increase(nns_cache_verification_failures_total[1h]) > 0
                labels:
                  severity: warning
                annotations:
                  summary: "{{ $labels.instance }}: cached archives failed their checksum (disk errors, or something writes the cache)"

        """

    func testTheREADMEAlertRulesAreValidForPromtool() throws {
        let dir = try makeTemporaryDirectory(self, "rules")
        try Self.alertRules.write(toFile: dir + "/rules.yml", atomically: true, encoding: .utf8)
        let check = try shell("promtool check rules \(dir)/rules.yml", allowFailure: true)
        XCTAssertEqual(check.status, 0, String(decoding: check.output, as: UTF8.self) + check.error)
        XCTAssertTrue(String(decoding: check.output, as: UTF8.self).contains("SUCCESS: 2 rules found"), String(decoding: check.output, as: UTF8.self))
        // Both name families that exist.
        XCTAssertNotNil(MetricCatalogue.byName["nns_packing_failures_total"])
        XCTAssertNotNil(MetricCatalogue.byName["nns_cache_verification_failures_total"])
    }
}
