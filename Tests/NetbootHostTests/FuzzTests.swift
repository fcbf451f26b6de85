import Foundation
import Synchronization
import NetbootHost
import XCTest

/// A deterministic fuzz of the live binary: thousands of requests over every route and method,
/// with random names, segments, queries and headers, and raw malformed framing.
final class FuzzTests: XCTestCase {
    /// SplitMix64: small, fast, and the same sequence everywhere for a seed.
    struct Random {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
        mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
        mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) } }
    }

    /// One generated exchange: the bytes, whether the write side is closed after them, whether it is a HEAD.
    struct Case {
        var bytes: [UInt8]
        var head = false
        var connect = false
        /// Empty lines only: no request was made, and a clean close is the answer.
        var noRequest = false
        var label: String
    }

    static let seed: UInt64 = 0x6E6E_735F_6675_7A7A
    static let count = 5_200

    static func generate(_ index: Int, names: [String]) -> Case {
        var random = Random(seed: seed &+ UInt64(index) &* 0x1000_0001)
        func junk(_ length: Int) -> String {
            let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789-._~+=?!$&'()*,;:@%")
            var text = ""
            for _ in 0..<length {
                switch random.below(10) {
                case 0: text += String(format: "%%%02X", random.below(256))
                case 1: text += random.pick(["%", "%Z", "%zz", "..", "%2F", "%2e%2e", "%00", "%0A", "%C3%A9", "%FF"])
                default: text.append(random.pick(alphabet))
                }
            }
            return text
        }
        func name() -> String {
            switch random.below(10) {
            case 0, 1, 2: return random.pick(names)
            case 3: return String(repeating: "0", count: 32) + "-" + junk(random.below(20))
            case 4: return junk(random.below(300) + 1)
            case 5 where random.chance(5): return junk(10_000)
            default: return junk(random.below(60))
            }
        }
        func path() -> String {
            switch random.below(14) {
            case 0: return "/"
            case 1: return "/status"
            case 2, 3: return "/boot/\(name())/\(random.pick(["netboot.ipxe", "bzImage", "initrd"]))"
            case 4: return "/boot/\(name())/\(random.pick(["kernel", "", "initrd/x", "netboot.ipxe/"]))"
            case 5: return random.pick(["/boot", "/dispatch", "/favicon.ico", "//", "/boot//initrd", "/nix/store", "/.."])
            case 6, 7, 8:
                let source = random.pick(["closure", "closure", "profile", "configuration", "hydra", "nope", junk(8)])
                let segments = (0..<random.below(4)).map { _ in random.chance(30) ? name() : junk(random.below(20)) }
                // Dispatches of a real path pin it (a Nix call each): keep those rare.
                let first = source == "closure" && random.chance(90) ? junk(random.below(40) + 1) : name()
                return "/dispatch/\(source)/\(([first] + segments).joined(separator: "/"))"
            default:
                return "/" + (0..<(random.below(5) + 1)).map { _ in junk(random.below(30)) }.joined(separator: "/")
            }
        }
        func query() -> String {
            guard random.chance(50) else { return "" }
            let pairs = (0..<(random.below(3) + 1)).map { _ in
                let key = random.pick(["cmdline_prefix_args", "cmdline_suffix_args", "cmdline_suffix_args", junk(5)])
                let value = random.chance(5) ? junk(random.below(3000)) : junk(random.below(40))
                return "\(key)=\(value)"
            }
            return "?" + pairs.joined(separator: "&")
        }
        let methods = ["GET", "GET", "GET", "HEAD", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "get", "FOO", "PRI", "M-SEARCH"]
        var method = random.pick(methods)
        var target = path() + query()
        if method == "CONNECT" { target = random.pick(["example.com:443", target]) }
        var headers = ["Host: 127.0.0.1"]
        var body: [UInt8] = []
        for _ in 0..<random.below(5) {
            headers.append(random.pick([
                "If-None-Match: \"\(junk(10))\"", "If-None-Match: *", "Range: bytes=0-10", "Accept: */*", "X-\(junk(4).filter(\.isLetter)): \(junk(20))",
                "Connection: keep-alive", "Connection: close", "Expect: 100-continue", "User-Agent: iPXE/1.21.1", "Accept-Encoding: gzip",
            ]))
        }
        if ["POST", "PUT", "PATCH"].contains(method) && random.chance(50) {
            if random.chance(50) {
                body = random.bytes(random.below(2000))
                headers.append("Content-Length: \(body.count)")
            } else {
                headers.append("Transfer-Encoding: chunked")
                body = Array("5\r\nhello\r\n0\r\n\r\n".utf8)
            }
        }
        var bytes = Array("\(method) \(target) HTTP/1.1\r\n\(headers.joined(separator: "\r\n"))\r\n\r\n".utf8) + body
        var label = "\(method) \(target.prefix(80))"
        if random.chance(22) {
            // Malformed framing.
            switch random.below(12) {
            case 0:
                let at = random.below(max(1, target.utf8.count)) + method.utf8.count + 1
                bytes.insert(0, at: min(at, bytes.count))
                label = "NUL in \(label)"
            case 1:
                let version = random.pick(["HTTP/2.0", "HTTP/1.9", "HTTP/0.9", "HTTX/1.1", "HTTP/1", "HTTP/1.1 x", "http/1.1", "HTTP/3"])
                bytes = Array("\(method) \(target) \(version)\r\nHost: x\r\n\r\n".utf8)
                label = "version \(version)"
            case 2:
                bytes = Array("GET / HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "h", count: 17_000 + random.below(40_000)))\r\n\r\n".utf8)
                label = "huge header"
            case 3:
                bytes = Array("GET /status?q=\(String(repeating: "q", count: 17_000 + random.below(100_000))) HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
                label = "huge query"
            case 4:
                bytes = Array(repeating: Array("\r\n".utf8), count: random.below(4) + 1).flatMap { $0 }
                label = "bare CRLFs"
                return Case(bytes: bytes, noRequest: true, label: label)
            case 5:
                bytes = Array(bytes.prefix(random.below(max(1, bytes.count - 4)) + 1))
                label = "truncated \(label)"
            case 6:
                bytes = random.bytes(random.below(200) + 1)
                label = "random bytes"
            case 7:
                bytes = Array("GET / HTTP/1.1\r\nHost : x\r\n folded\r\n\r\n".utf8)
                label = "space before colon, folding"
            case 8:
                bytes = Array("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde".utf8)
                label = "two lengths"
            case 9:
                bytes = Array("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n".utf8)
                label = "bad chunk size"
            case 10:
                bytes = Array("GET\t/\tHTTP/1.1\r\nHost: x\r\n\r\n".utf8)
                label = "tabs"
            default:
                bytes = Array("GET / HTTP/1.1\r\nHost: x\r\nX: a\u{1}b\r\n\r\n".utf8)
                label = "control character in a header"
            }
            method = ""
        }
        return Case(bytes: bytes, head: method == "HEAD", connect: method == "CONNECT", label: label)
    }

    func testFuzzTheLiveServer() throws {
        let fixtures = PackFixtures.shared
        let missing = "0" + fixtures.tree.name.dropFirst()
        let names = [fixtures.system.name, fixtures.link.name, fixtures.tree.name, fixtures.single.name, missing]
        let server = try ServerProcess(self, arguments: ["--header-timeout", "3", "--idle-timeout", "2"])
        let port = server.port
        let results = Mutex<(statuses: [Int: Int], failures: [String])>(([:], []))
        let workers = 6
        let start = Date()
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            for index in stride(from: worker, to: Self.count, by: workers) {
                let generated = Self.generate(index, names: names)
                var failure: String?
                var status = 0
                do {
                    let (bytes, closed) = try rawExchange(port: port, generated.bytes, timeout: 15)
                    if generated.noRequest {
                        if !bytes.isEmpty || !closed { failure = "not a clean close: \(RawResponse.show(bytes))" }
                        results.withLock { results in
                            results.statuses[0, default: 0] += 1
                            if let failure { results.failures.append("#\(index) \(generated.label): \(failure)") }
                        }
                        continue
                    }
                    let response = try RawResponse(parsing: bytes, head: generated.head)
                    status = response.status
                    if status >= 500 { failure = "\(status) \(response.text)" }
                    if !response.trailing.isEmpty { failure = "bytes after the response: \(RawResponse.show(response.trailing))" }
                    // NIO's encoder sends no body to CONNECT, whatever the status: the answer ends with the connection.
                    if status >= 400, !generated.head, !generated.connect, response.header("Content-Type")?.hasPrefix("text/plain") == true {
                        let text = response.text
                        if text.utf8.count > 200 || text.filter({ $0 == "\n" }).count != 1 { failure = "not one short line: \(text.prefix(100).debugDescription)" }
                    }
                } catch {
                    failure = "\(error)"
                }
                results.withLock { results in
                    results.statuses[status, default: 0] += 1
                    if let failure, results.failures.count < 60 { results.failures.append("#\(index) \(generated.label): \(failure)") }
                }
            }
        }
        let (statuses, failures) = results.withLock { $0 }
        let summary = statuses.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
        print("fuzz: \(Self.count) requests (0: clean close after empty lines) in \(String(format: "%.1f", Date().timeIntervalSince(start))) s; statuses \(summary)")
        XCTAssertEqual(statuses.values.reduce(0, +), Self.count)
        XCTAssertEqual(failures, [], summary)
        XCTAssertTrue(statuses.keys.allSatisfy { $0 == 0 || (100..<500).contains($0) }, summary)
        XCTAssertTrue(server.process.isRunning)
        let last = try RawResponse(parsing: try rawExchange(port: port, Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)).bytes)
        XCTAssertEqual(last.status, 200)
        XCTAssertEqual(last.text, "nix-netboot-serve\n")
        let errors = server.log.split(separator: "\n").filter { $0.contains(" error ") || $0.contains(" critical ") }
        XCTAssertEqual(Array(errors.prefix(5)), [], "\(errors.count) error lines")
    }
}
