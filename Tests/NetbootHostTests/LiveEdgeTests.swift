import Foundation
import HTTPTypes
import NetbootHost
import XCTest

/// The HTTP edge of the real binary over TCP: what only a live server has (framing, deadlines,
/// the connection cap, signals). The route table end to end is ``RouteOutcomeTests``.
final class LiveEdgeTests: XCTestCase {
    func request(_ method: String, _ path: String, headers: String = "") -> [UInt8] {
        Array("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\(headers)\r\n".utf8)
    }

    func exchange(_ server: ServerProcess, _ method: String, _ path: String) throws -> RawResponse {
        let (bytes, closed) = try rawExchange(port: server.port, request(method, path))
        XCTAssertTrue(closed, "\(method) \(path): the server closes after Connection: close")
        let response = try RawResponse(parsing: bytes, head: method == "HEAD")
        XCTAssertEqual(response.trailing, [], "\(method) \(path): nothing after the response")
        return response
    }

    /// Checks a one-line answer of ours: its status, the body its length announces, one line.
    func checkAnswer(_ bytes: [UInt8], _ status: Int, _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            let response = try RawResponse(parsing: bytes)
            XCTAssertEqual(response.status, status, "\(label): \(response.text)", file: file, line: line)
            XCTAssertEqual(response.header("Content-Length"), "\(response.body.count)", label, file: file, line: line)
            XCTAssertEqual(response.trailing, [], label, file: file, line: line)
            EdgeExpectations.checkErrorLine(response.text, label, file: file, line: line)
        } catch {
            XCTFail("\(label): \(error)", file: file, line: line)
        }
    }

    func testATenKilobyteNameIsAOneLine400() throws {
        let server = try ServerProcess(self, arguments: [])
        let huge = EdgeExpectations.hugeName.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: "_-")))!
        let bad = try exchange(server, "GET", "/boot/\(huge)/netboot.ipxe")
        XCTAssertEqual(bad.status, 400)
        EdgeExpectations.checkErrorLine(bad.text, "10 KB name")
        XCTAssertFalse(server.log.contains(" error "), server.log)
    }

    func testMalformedRequestsGetOneLineAnswers() throws {
        let server = try ServerProcess(self, arguments: ["--header-timeout", "2"])
        let cases: [(String, [UInt8], Int)] = [
            ("NUL in the path", Array("GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n".utf8), 400),
            ("HTTP/2.0", Array("GET / HTTP/2.0\r\nHost: x\r\n\r\n".utf8), 400),
            ("100 KB query", Array("GET /?q=\(String(repeating: "a", count: 100_000)) HTTP/1.1\r\nHost: x\r\n\r\n".utf8), 431),
            ("1 MB header", Array("GET / HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "b", count: 1 << 20))\r\n\r\n".utf8), 431),
            ("garbage", [0x16, 0x03, 0x01, 0x02, 0x00, 0xFF, 0xFE, 13, 10, 13, 10], 400),
            ("truncated, then the client's end", Array("GET /status HT".utf8), 400),
            ("a header without a colon", Array("GET / HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n".utf8), 400),
        ]
        for (label, bytes, status) in cases {
            let (answer, closed) = try rawExchange(port: server.port, bytes)
            XCTAssertTrue(closed, label)
            checkAnswer(answer, status, label)
        }
        // Bare CRLFs, then the client's end: no request was made; a clean close.
        let (nothing, closedCleanly) = try rawExchange(port: server.port, [13, 10, 13, 10])
        XCTAssertTrue(closedCleanly)
        XCTAssertEqual(nothing, [])
        // Bare CRLFs with the connection left open: NIO skips empty lines before a request line and
        // waits; the header deadline answers.
        let start = Date()
        let (answer, closed) = try rawExchange(port: server.port, [13, 10, 13, 10], shutdownWrite: false)
        XCTAssertTrue(closed)
        checkAnswer(answer, 408, "bare CRLFs, left open")
        XCTAssertEqual(Date().timeIntervalSince(start), 2, accuracy: 1)
        XCTAssertEqual(try exchange(server, "GET", "/").status, 200)
    }

    func testSlowHeadersAreCutAtTheHeaderTimeoutWhileOthersAreServed() async throws {
        let server = try ServerProcess(self, arguments: ["--header-timeout", "2", "--idle-timeout", "1"])
        let port = server.port
        /// Sends a request one byte every half second (after `first`, a complete request on the same
        /// connection); returns when and what the server answered.
        func trickle(after first: [UInt8]?) async throws -> (seconds: Double, answer: [UInt8]) {
            try await withCheckedThrowingContinuation { continuation in
                Thread.detachNewThread {
                    continuation.resume(with: Result {
                        let connection = try RawConnection(port: port, receiveTimeout: 10)
                        if let first {
                            connection.send(first)
                            var got: [UInt8] = []
                            while RawResponse.find(Array("nix-netboot-serve\n".utf8), in: got) == nil {
                                let more = connection.readAvailable(waiting: 5)
                                if more.isEmpty { throw ShellError(description: "no answer to the first request") }
                                got += more
                            }
                        }
                        let start = Date()
                        for byte in Array("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: \(String(repeating: "s", count: 40))\r\n\r\n".utf8) {
                            guard connection.send([byte]) else { break }
                            let answer = connection.readAvailable(waiting: 0.5)
                            if !answer.isEmpty { return (Date().timeIntervalSince(start), answer + connection.readToEnd().bytes) }
                        }
                        return (Date().timeIntervalSince(start), connection.readToEnd().bytes)
                    })
                }
            }
        }
        async let fresh = trickle(after: nil)
        async let keptAlive = trickle(after: Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        try await Task.sleep(for: .seconds(1))
        let normalStart = Date()
        let normal = try exchange(server, "GET", "/status")
        XCTAssertEqual(normal.status, 200)
        XCTAssertLessThan(Date().timeIntervalSince(normalStart), 0.5, "a normal request is answered meanwhile")
        for (label, result) in [("fresh", try await fresh), ("kept alive", try await keptAlive)] {
            XCTAssertGreaterThan(result.seconds, 1.8, label)
            XCTAssertLessThan(result.seconds, 3.5, "\(label): cut at the header timeout, not per byte")
            checkAnswer(result.answer, 408, label)
        }
        // A connection that sends nothing is closed at the idle timeout, silently.
        let start = Date()
        let (silent, closed) = try rawExchange(port: port, [], shutdownWrite: false)
        XCTAssertTrue(closed)
        XCTAssertEqual(silent, [])
        XCTAssertEqual(Date().timeIntervalSince(start), 1, accuracy: 0.7)
    }

    func testConnectionsBeyondTheCapAreRefusedUntilOthersClose() throws {
        let server = try ServerProcess(self, arguments: ["--max-connections", "3", "--idle-timeout", "30", "--header-timeout", "30"])
        var held = try (0..<3).map { _ in try RawConnection(port: server.port) }
        Thread.sleep(forTimeInterval: 0.3)
        for attempt in 0..<3 {
            let start = Date()
            let (bytes, closed) = try rawExchange(port: server.port, request("GET", "/"))
            XCTAssertTrue(closed)
            XCTAssertLessThan(Date().timeIntervalSince(start), 1, "refused at once")
            checkAnswer(bytes, 503, "beyond the cap, attempt \(attempt)")
        }
        // The held connections still work.
        XCTAssertTrue(held[0].send(request("GET", "/")))
        XCTAssertEqual(try RawResponse(parsing: held[0].readToEnd().bytes).status, 200)
        held = []
        Thread.sleep(forTimeInterval: 0.3)
        for _ in 0..<5 { XCTAssertEqual(try exchange(server, "GET", "/").status, 200) }
        XCTAssertTrue(server.log.contains("at the connection limit"), server.log)
    }

    /// A system-shaped store path whose `kernel` is 16 MiB: more than loopback socket buffers hold,
    /// so the server is still writing while the client reads slowly.
    static func bigSystem() throws -> StorePath {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nns-edge-\(UUID().uuidString)").path + "/edge-big-system"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: dir).deletingLastPathComponent().path) }
        try shell("head -c 16777216 /dev/zero > \(dir)/kernel && printf '#!/bin/sh\\n' > \(dir)/init && printf 'console=ttyS0' > \(dir)/kernel-params")
        return try StorePath(absolutePath: try shellString("nix-store --add \(dir)"))
    }

    /// GETs `path` on a connection with a small receive buffer, reading about 12 MB/s; `whileReading`
    /// runs once after the first chunk. Returns the response head's length and the body bytes read.
    func slowDownload(_ server: ServerProcess, _ path: String, stopAfter limit: Int = .max, whileReading: () -> Void) throws -> (length: Int, received: Int) {
        let connection = try RawConnection(port: server.port, receiveBuffer: 65536)
        XCTAssertTrue(connection.send(request("GET", path)))
        var bytes: [UInt8] = []
        var headEnd: Int?
        var length = 0
        var ran = false
        while true {
            let chunk = connection.readAvailable(waiting: 5)
            if chunk.isEmpty { break }
            bytes += chunk
            if headEnd == nil, let end = RawResponse.find([13, 10, 13, 10], in: bytes) {
                headEnd = end + 4
                length = Int(try RawResponse(parsing: Array(bytes[..<(end + 4)]), head: true).header("Content-Length") ?? "") ?? -1
            }
            if !ran { ran = true; whileReading() }
            if let headEnd, bytes.count - headEnd >= min(length, limit) { break }
            Thread.sleep(forTimeInterval: 0.005)
        }
        return (length, bytes.count - (headEnd ?? bytes.count))
    }

    func testSIGHUPDuringADownloadLeavesItCompleteAndTheServerUp() throws {
        let system = try Self.bigSystem()
        let server = try ServerProcess(self, arguments: [])
        let (length, received) = try slowDownload(server, "/boot/\(system.name)/bzImage") {
            kill(server.process.processIdentifier, SIGHUP)
        }
        XCTAssertEqual(length, 16 << 20)
        XCTAssertEqual(received, length, "the whole kernel arrived")
        XCTAssertTrue(server.process.isRunning)
        XCTAssertEqual(try exchange(server, "GET", "/").status, 200)
        XCTAssertTrue(server.log.contains("SIGHUP received"), server.log)
    }

    func testAnAbortedDownloadIsOneInfoLine() throws {
        let system = try Self.bigSystem()
        let server = try ServerProcess(self, arguments: [])
        let (length, received) = try slowDownload(server, "/boot/\(system.name)/bzImage", stopAfter: 100_000) {}
        XCTAssertEqual(length, 16 << 20)
        XCTAssertLessThan(received, length)
        Thread.sleep(forTimeInterval: 1)
        let lines = server.log.split(separator: "\n")
        let aborted = lines.filter { $0.contains("client went away") }
        XCTAssertEqual(aborted.count, 1, server.log)
        XCTAssertTrue(aborted.first?.contains(" info ") ?? false, server.log)
        XCTAssertEqual(lines.filter { $0.contains(" error ") }, [], server.log)
        XCTAssertEqual(try exchange(server, "GET", "/").status, 200)
    }
}
