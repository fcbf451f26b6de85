import Foundation
import NetbootHost
import XCTest

/// The status page in a real browser (headless Chromium, Debian's `chromium`) against the real
/// server binary: after a boot (an initrd downloaded through a trusted proxy) and while a slow pack
/// runs (xz on one core, a closure of 50 MB of random bytes), one page load shows the boot's row with
/// the forwarded client, the packing system's name and its progress bar. The screenshot is kept in
/// `$TMPDIR/nns-status-page/`, outside the repository.
final class StatusPageBrowserTests: XCTestCase {
    static let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Runs headless Chromium on `url` with `mode` (`--dump-dom`, `--screenshot=FILE`); its stdout.
    static func browse(_ url: String, _ mode: String, profile: String) async throws -> String {
        let binary = try XCTUnwrap(Self.chromium, "Chromium is missing: run scripts/setup-debian.sh (it installs Debian's chromium)")
        // As root Chromium needs --no-sandbox; each run gets its own profile directory.
        let command = "timeout 60 \(binary) --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run --hide-scrollbars"
            + " --user-data-dir=\(profile) --window-size=1200,1100 \(mode) '\(url)'"
        let result = try await shellOffThread(command)
        XCTAssertEqual(result.status, 0, "\(command): \(result.error)")
        return String(decoding: result.output, as: UTF8.self)
    }

    func testChromiumShowsTheBootAndThePackInProgress() async throws {
        let small = PackFixtures.shared.system
        let big = try CacheLiveTests.bigSystem(megabytes: 50)
        let server = try ServerProcess(self, arguments: ["--compression", "xz", "--jobs", "1", "--trusted-proxy", "127.0.0.1"])
        let dir = try makeTemporaryDirectory(self, "browser")
        let shots = FileManager.default.temporaryDirectory.appendingPathComponent("nns-status-page").path
        try FileManager.default.createDirectory(atPath: shots, withIntermediateDirectories: true)

        // A boot (the whole initrd downloaded), through a trusted proxy (loopback) naming the client.
        let boot = try shellString(
            "curl -sS -H 'X-Forwarded-For: 198.51.100.1, 203.0.113.7' -o \(dir)/small -w '%{http_code} %{size_download}' \(server.base)/boot/\(small.name)/initrd")
        XCTAssertTrue(boot.hasPrefix("200 "), boot)
        // Then a pack that lasts: 50 MB of random bytes through xz on one core (tens of seconds; the
        // server is stopped long before it ends).
        let download = Task { try await shellOffThread("curl -sS -o /dev/null \(server.base)/boot/\(big.name)/initrd") }
        defer { download.cancel() }
        let deadline = Date().addingTimeInterval(20)
        while !(try shellString("curl -sS \(server.base)/status").contains("packing \(big.name) ")) {
            guard Date() < deadline else { return XCTFail("no pass in /status:\n\(server.log)") }
            try await Task.sleep(for: .milliseconds(100))
        }

        async let screenshot = Self.browse(server.base + "/", "--screenshot=\(shots)/status-page.png", profile: dir + "/profile-shot")
        let page = try await Self.browse(server.base + "/", "--dump-dom", profile: dir + "/profile-dom")
        _ = try await screenshot
        XCTAssertTrue(page.contains("<h2>Packing now</h2>"), page)
        XCTAssertTrue(page.contains(#"<tr class="pass"><td><code>\#(big.name)</code></td><td><progress class="packing""#), page)
        XCTAssertTrue(page.contains(#"<tr class="boot">"#), page)
        XCTAssertTrue(page.contains("<td>203.0.113.7</td>"), "the client the trusted proxy named")
        XCTAssertTrue(page.contains("<code>\(small.name)</code>"))
        XCTAssertGreaterThan(FileSystem.regularFileSize("\(shots)/status-page.png") ?? 0, 10_000)
        print("status page screenshot: \(shots)/status-page.png")

        // The log: the pass's progress (after 2 s), a pass's summary, the forwarded client.
        while !server.log.contains("remaining-seconds=") {
            guard Date() < deadline else { return XCTFail("no progress line:\n\(server.log)") }
            try await Task.sleep(for: .milliseconds(200))
        }
        let log = server.log
        XCTAssertTrue(log.contains("system=\(big.name)"), log)
        XCTAssertTrue(log.contains("mb-per-second-per-core="), log)
        XCTAssertTrue(log.contains("client=203.0.113.7 via 127.0.0.1:"), "the access log names the forwarded client")
        let text = try shellString("curl -sS \(server.base)/status")
        XCTAssertTrue(text.contains(" client 203.0.113.7 rule - system \(small.name) bytes \(boot.dropFirst(4)) "), text)
        server.stop()
        _ = try? await download.value
    }
}
