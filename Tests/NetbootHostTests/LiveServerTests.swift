import Foundation
import NetbootHost
import XCTest

/// The server binary as operators run it, over real TCP with curl.
final class LiveServerTests: XCTestCase {
    func testA500PathClosureUnderA256FileLimit() throws {
        let root = try PackFixtures.many(500)
        let server = try ServerProcess(self, arguments: [], prefix: ["/usr/bin/prlimit", "--nofile=256:256"])
        let dir = try makeTemporaryDirectory(self)
        let limits = try shellString("grep 'Max open files' /proc/\(server.process.processIdentifier)/limits")
        XCTAssertTrue(limits.contains("256                  256"), limits)
        for round in 0..<2 {  // cold, then warm
            let status = try shellString("curl -sS -o \(dir)/initrd -w '%{http_code} %{size_download}' \(server.base)/boot/\(root.name)/initrd")
            let length = try shellString("curl -sSI \(server.base)/boot/\(root.name)/initrd | tr -d '\\r' | awk 'tolower($1)==\"content-length:\" {print $2}'")
            XCTAssertEqual(status, "200 \(length)", "round \(round)")
            let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/initrd")))
            let parsed = try KernelInitramfs.parse(bytes)
            let closure = try shellString("nix-store -qR \(root.absolutePath)").split(separator: "\n")
            XCTAssertEqual(closure.count, 500)
            for path in closure {
                let name = path.dropFirst("/nix/store/".count)
                XCTAssertNotNil(parsed.tree["nix/store/\(name)"], "\(name) in round \(round)")
                XCTAssertNotNil(parsed.tree["nix/.nix-netboot-serve-db/registration/\(name)"])
            }
        }
        XCTAssertTrue(server.log.contains("packed=500"), server.log)
    }

    func testSIGTERMLetsAResponseInFlightFinish() async throws {
        let root = try PackFixtures.many(500)
        let server = try ServerProcess(self, arguments: ["--compression", "none"])
        let dir = try makeTemporaryDirectory(self)
        let url = "\(server.base)/boot/\(root.name)/initrd"
        let length = try shellString("curl -sSI \(url) | tr -d '\\r' | awk 'tolower($1)==\"content-length:\" {print $2}'")
        XCTAssertGreaterThan(Int(length) ?? 0, 300_000)
        // A slow client: the download takes about three seconds; the server is told to stop after one.
        let download = Task { try await shellOffThread("curl -sS --limit-rate 100k -o \(dir)/initrd -w '%{http_code} %{size_download}' \(url)") }
        try await Task.sleep(for: .seconds(1))
        kill(server.process.processIdentifier, SIGTERM)
        let result = try await download.value
        XCTAssertEqual(result.status, 0, result.error)
        XCTAssertEqual(String(decoding: result.output, as: UTF8.self), "200 \(length)", "the whole initrd arrived")
        server.process.waitUntilExit()
        XCTAssertEqual(server.process.terminationStatus, 0, server.log)
    }

    func testSIGTERMEndsTheServerCleanly() throws {
        let server = try ServerProcess(self, arguments: [])
        try shell("curl -sSf -o /dev/null \(server.base)/")
        server.stop()
        XCTAssertEqual(server.process.terminationReason, .exit)
        XCTAssertEqual(server.process.terminationStatus, 0, server.log)
    }
}
