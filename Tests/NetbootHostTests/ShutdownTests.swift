import Foundation
import NetbootHost
import XCTest

/// SIGTERM against the real server binary: a client that stops reading is closed after
/// `--shutdown-grace`; a packing or a build in flight is cancelled at once, leaving no temporary
/// archive and no process behind; the server exits 0 every time.
/// (A slow download that finishes within the grace: `LiveServerTests.testSIGTERMLetsAResponseInFlightFinish`.)
final class ShutdownTests: XCTestCase {
    /// Waits for the server to exit; returns the seconds it took, or nil if it still runs after `limit`.
    func waitForExit(_ server: ServerProcess, within limit: Double) -> Double? {
        let start = Date()
        while server.process.isRunning && Date().timeIntervalSince(start) < limit { Thread.sleep(forTimeInterval: 0.02) }
        guard !server.process.isRunning else {
            // Not in time: ended here, so the assertions after this read a dead process.
            kill(server.process.processIdentifier, SIGKILL)
            server.process.waitUntilExit()
            return nil
        }
        server.process.waitUntilExit()
        return Date().timeIntervalSince(start)
    }

    func testAClientThatStopsReadingIsClosedAfterTheGraceAndTheServerExits0() throws {
        // Far more than loopback socket buffers hold, so the response is still in flight when the
        // client stops reading.
        let root = try CacheLiveTests.bigSystem(megabytes: 24)
        let server = try ServerProcess(self, arguments: ["--compression", "none", "--shutdown-grace", "2"])
        XCTAssertEqual(try shellString("curl -sS -o /dev/null -w '%{http_code}' \(server.base)/boot/\(root.name)/initrd"), "200")
        let stalled = try RawConnection(port: server.port, receiveTimeout: 30, receiveBuffer: 4096)
        XCTAssertTrue(stalled.send("GET /boot/\(root.name)/initrd HTTP/1.1\r\nHost: x\r\n\r\n"))
        let head = stalled.readAvailable(waiting: 5)
        XCTAssertTrue(String(decoding: head, as: UTF8.self).hasPrefix("HTTP/1.1 200"), RawResponse.show(head))
        // The client reads nothing more; the server is told to stop.
        Thread.sleep(forTimeInterval: 0.5)
        kill(server.process.processIdentifier, SIGTERM)
        let took = waitForExit(server, within: 2 + 6)
        XCTAssertNotNil(took, "the server still runs 8 s after SIGTERM with --shutdown-grace 2:\n\(server.log)")
        XCTAssertGreaterThanOrEqual(took ?? 0, 1.5, "the response in flight got its grace")
        XCTAssertEqual(server.process.terminationReason, .exit)
        XCTAssertEqual(server.process.terminationStatus, 0, server.log)
        XCTAssertTrue(server.log.contains("shutdown grace over"), server.log)
    }

    func testSIGTERMDuringASlowPackingExitsPromptlyWithNoTemporaryLeft() async throws {
        // zstd at its highest level packs incompressible bytes slowly, writing as it goes.
        let root = try CacheLiveTests.bigSystem(megabytes: 48)
        let state = try makeTemporaryDirectory(self, "state")
        let cacheDir = state + "/cpio-cache"
        let server = try ServerProcess(self, arguments: ["--state-dir", state, "--compression", "zstd", "--compression-level", "19", "--jobs", "1"])
        let request = Task { try await shellOffThread("curl -sS -o /dev/null -w '%{http_code}' \(server.base)/boot/\(root.name)/initrd") }
        let deadline = Date().addingTimeInterval(60)
        var packing = false
        while Date() < deadline {
            if temporaries(in: cacheDir).contains(where: { $0.contains("cache-blob") }) {
                packing = true
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        XCTAssertTrue(packing, "the blob is being packed")
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: cacheDir).contains { !$0.hasPrefix(".nns-tmp-") && $0.contains("cache-blob") },
                       "still packing when SIGTERM arrives")
        kill(server.process.processIdentifier, SIGTERM)
        let took = waitForExit(server, within: 5)
        XCTAssertNotNil(took, "a packing in flight holds the server after SIGTERM:\n\(server.log)")
        XCTAssertEqual(server.process.terminationStatus, 0, server.log)
        XCTAssertEqual(temporaries(in: cacheDir), [], "the cancelled packing removed its temporary")
        let answer = try await request.value
        XCTAssertEqual(String(decoding: answer.output, as: UTF8.self), "503", "the waiting request is told to come back")
        XCTAssertTrue(server.log.contains("packing cancelled"), server.log)
    }

    func testSIGTERMDuringABuildEndsItsProcesses() async throws {
        let state = try makeTemporaryDirectory(self, "state")
        let name = "slow-\(UUID().uuidString.prefix(8))"
        let marker = "\(Int.random(in: 100_000...999_999))"
        // The builder sleeps a number of seconds unique to this test, so its process can be found.
        let dir = state + "/configurations/" + name
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try """
        let busybox = builtins.path { path = "\(busyboxDirectory)"; name = "busybox"; };
        in derivation {
          name = "config-\(name)";
          system = builtins.currentSystem;
          builder = "${busybox}/bin/busybox";
          args = [ "sleep" "\(marker)" ];
        }
        """.write(toFile: dir + "/default.nix", atomically: true, encoding: .utf8)
        let server = try ServerProcess(self, arguments: ["--state-dir", state, "--build-timeout", "1"])
        let first = try shellString("curl -sS -o /dev/null -w '%{http_code}' \(server.base)/dispatch/configuration/\(name)")
        XCTAssertEqual(first, "503", "still building after --build-timeout")
        XCTAssertTrue(try processes(matching: "sleep \(marker)") > 0, "the builder runs")
        kill(server.process.processIdentifier, SIGTERM)
        let took = waitForExit(server, within: 8)
        XCTAssertNotNil(took, "a build in flight holds the server after SIGTERM:\n\(server.log)")
        XCTAssertEqual(server.process.terminationStatus, 0, server.log)
        let gone = Date().addingTimeInterval(5)
        while try processes(matching: "sleep \(marker)") > 0 && Date() < gone { try await Task.sleep(for: .milliseconds(100)) }
        XCTAssertEqual(try processes(matching: "sleep \(marker)"), 0, "the build's processes were ended")
    }

    /// How many processes have `text` in their command line.
    func processes(matching text: String) throws -> Int {
        Int(try shellString("ps -eo args | grep -F -- '\(text)' | grep -v grep | wc -l")) ?? 0
    }
}
