import Foundation
import NetbootHost
import XCTest

/// The status answers rendered from one report: the page (escaped, self-contained, refreshing), the
/// text (today's lines first and verbatim) and the JSON (the same data).
final class StatusPageTests: XCTestCase {
    static func report() -> StatusReport {
        var progress = PackingProgress(system: "abc-<b>sys</b>")
        progress.plan(paths: 4, bytes: 4_000_000)
        progress.finished(bytes: 1_000_000)
        let activity = ActivitySnapshot(
            time: 1_796_000_000,
            passes: [(progress, .seconds(10))],
            systems: [.init(name: "abc-\"quoted\"-sys", initrdBytes: 12_345_678, archives: 42, coldPack: .seconds(75), lastServed: 1_796_000_000, served: 3)],
            boots: [.init(time: 1_795_999_990, client: "203.0.113.7", rule: "rack&a", system: "abc-sys", bytes: 12_345_678, duration: .milliseconds(1500))],
            errors: [.init(time: 1_795_999_000, message: "GET /boot/<script>alert(1)</script>/initrd: 500 'boom'")])
        return StatusReport(
            codec: "zstd", level: 10, jobs: 2, archivesPacked: 7, archivesCached: 40, cacheBytes: 250_000_000, cacheLimitBytes: 1_000_000_000,
            archivesVerified: 5, archivesDropped: 1, packingsRunning: 2, packingsQueued: 3,
            sources: [.init(name: "closure", state: .on), .init(name: "hydra", state: .off), .init(name: "machine", state: .notConfigured, reason: "no <dir>")],
            sourceLines: ["machine-rule rack&a matches mac=<x>"], activity: activity)
    }

    func testThePageIsSelfContainedRefreshesAndEscapesEverythingFromClients() {
        let html = StatusPage.render(Self.report())
        XCTAssertTrue(html.hasPrefix("<!DOCTYPE html>"))
        XCTAssertTrue(html.contains(#"<meta http-equiv="refresh" content="5">"#))
        XCTAssertFalse(html.contains("<script"), "no script, and none injected")
        XCTAssertFalse(html.contains("<b>sys</b>"))
        XCTAssertFalse(html.contains("<dir>") || html.contains("<x>"))
        XCTAssertTrue(html.contains("abc-&lt;b&gt;sys&lt;/b&gt;"))
        XCTAssertTrue(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        XCTAssertTrue(html.contains("abc-&quot;quoted&quot;-sys"))
        XCTAssertTrue(html.contains("rack&amp;a"))
        XCTAssertTrue(html.contains("&#39;boom&#39;"))
        // No external assets: the only links are the server's own.
        XCTAssertFalse(html.contains("src="))
        XCTAssertFalse(html.contains("http://") || html.contains("https://") || html.contains("//cdn"))
        // The pass's bar and the cache's.
        XCTAssertTrue(html.contains(#"<progress class="packing" max="1000" value="250">"#), html)
        XCTAssertTrue(html.contains(#"<progress class="cache" max="1000" value="250">"#))
        XCTAssertTrue(html.contains("1 / 4"))
        XCTAssertTrue(html.contains("1.0 MB / 4.0 MB"))
        XCTAssertTrue(html.contains("<td>30.0 s</td>"), "the time left")
        XCTAssertTrue(html.contains("<td>1 min 15 s</td>"), "the cold pack time")
        XCTAssertTrue(html.contains(#"<tr class="boot"><td>2026-11-30 "#))
        XCTAssertTrue(html.contains("<td>203.0.113.7</td>"))
        XCTAssertTrue(html.contains("12.3 MB"))
    }

    func testTheEmptyPageSaysSo() {
        var report = Self.report()
        report.activity = ActivitySnapshot(time: 0)
        let html = StatusPage.render(report)
        XCTAssertTrue(html.contains("Nothing is being packed."))
        XCTAssertTrue(html.contains("No initrd downloaded yet."))
        XCTAssertFalse(html.contains("<progress class=\"packing\""))
    }

    func testTheTextKeepsTodaysLinesFirstAndVerbatimThenTheAdditions() {
        let lines = Self.report().text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        XCTAssertEqual(Array(lines.prefix(5)), [
            "codec zstd level 10", "archives-packed 7", "archives-cached 40", "cache-bytes 250000000", "machine-rule rack&a matches mac=<x>",
        ])
        XCTAssertEqual(lines.last, "", "ends with a newline")
        for expected in [
            "cache-limit-bytes 1000000000", "archives-verified 5", "archives-dropped 1", "jobs 2", "packings-running 2", "packings-queued 3",
            "packing abc-<b>sys</b> paths 1/4 bytes 1000000/4000000 elapsed-seconds 10.0 remaining-seconds 30.0",
            #"system abc-"quoted"-sys initrd-bytes 12345678 archives 42 cold-pack-seconds 75.0 last-served 2026-11-30T00:53:20Z"#,
            "boot 2026-11-30T00:53:10Z client 203.0.113.7 rule rack&a system abc-sys bytes 12345678 seconds 1.5",
            "source machine not-configured",
        ] {
            XCTAssertTrue(lines.contains(expected), "\(expected) in\n\(lines.joined(separator: "\n"))")
        }
    }

    func testTheJSONHoldsTheSameData() throws {
        let json = Self.report().json
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        XCTAssertEqual(object["codec"] as? String, "zstd")
        XCTAssertEqual(object["archives_cached"] as? Int, 40)
        XCTAssertEqual(object["cache_limit_bytes"] as? Int, 1_000_000_000)
        let pass = try XCTUnwrap((object["packing"] as? [[String: Any]])?.first)
        XCTAssertEqual(pass["system"] as? String, "abc-<b>sys</b>")
        XCTAssertEqual(pass["bytes_total"] as? Int, 4_000_000)
        XCTAssertEqual(pass["remaining_seconds"] as? Double, 30)
        let boot = try XCTUnwrap((object["boots"] as? [[String: Any]])?.first)
        XCTAssertEqual(boot["client"] as? String, "203.0.113.7")
        XCTAssertEqual(boot["rule"] as? String, "rack&a")
        XCTAssertEqual(boot["seconds"] as? Double, 1.5)
        XCTAssertEqual((object["systems"] as? [[String: Any]])?.first?["name"] as? String, #"abc-"quoted"-sys"#)
        XCTAssertEqual((object["errors"] as? [[String: Any]])?.count, 1)
        XCTAssertEqual((object["sources"] as? [[String: Any]])?.map { $0["state"] as? String }, ["on", "off", "not-configured"])
        XCTAssertEqual(JSONText.quoted("a\"b\\c\n\u{1}"), #""a\"b\\c\n\u0001""#)
    }
}
