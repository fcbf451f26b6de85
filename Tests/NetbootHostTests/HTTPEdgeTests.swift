import ArgumentParser
import ClosureSource
import Codecs
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NetbootHost
import NIOCore
import ProfileSource
import XCTest

/// What every error answer must be: the shared checks of the in-memory and the live edge tests.
/// (What every route answers to every method is ``RouteOutcomeTable``.)
struct EdgeExpectations {
    /// A 10 KB name that is not a store path name, and what must not come back.
    static let hugeName = "0123456789abcdfghijklmnpqrsvwxyz-" + String(repeating: "x_", count: 5000)

    /// Checks an error answer: one line, at most 200 bytes, no echo of `input`, no server path.
    static func checkErrorLine(_ body: String, input: String = hugeName, _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(body.hasSuffix("\n"), "\(label): \(body.debugDescription)", file: file, line: line)
        XCTAssertEqual(body.filter { $0 == "\n" }.count, 1, "\(label): one line: \(body.debugDescription)", file: file, line: line)
        XCTAssertLessThanOrEqual(body.utf8.count, 200, "\(label): \(body.debugDescription)", file: file, line: line)
        XCTAssertFalse(body.contains(String(input.suffix(100))), "\(label) echoes its input", file: file, line: line)
        for fragment in ["/tmp", "/var", "/root", "/home", "state"] {
            XCTAssertFalse(body.contains(fragment), "\(label) names a server path: \(body)", file: file, line: line)
        }
    }
}

/// The HTTP edge in memory: every error rendered once, short path-free texts (404/405/HEAD by route:
/// ``RouteOutcomeTests``).
final class HTTPEdgeTests: XCTestCase {
    func makeServer(profiles: Bool = false) throws -> NetbootServer {
        let state = try makeTemporaryDirectory(self, "state")
        let options = try ServerOptions.parse(["--state-dir", state])
        var registry = ModuleRegistry()
        try registry.register(compressor: ZstdCompressor())
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let store = NixStoreCLI()
        let context = NetbootServer.sourceContext(options: options, store: store, logger: logger)
        try registry.register(source: ClosureSource(context: context))
        try registry.register(source: ProfileSource(options: try ProfileSource.Options.parse([]), context: context))
        return try NetbootServer(options: options, registry: registry, store: store, logger: logger)
    }

    func testErrorTextsAreShortOneLineAndPathFree() async throws {
        let huge = EdgeExpectations.hugeName.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: "_-")))!
        let app = try makeServer().testApplication()
        try await app.test(.router) { client in
            for file in ["netboot.ipxe", "bzImage", "initrd"] {
                let response = try await client.execute(uri: "/boot/\(huge)/\(file)", method: .get)
                XCTAssertEqual(response.status, .badRequest, file)
                EdgeExpectations.checkErrorLine(String(buffer: response.body), file)
                XCTAssertTrue(String(buffer: response.body).hasPrefix("not a store path name"), String(buffer: response.body))
            }
            let source = try await client.execute(uri: "/dispatch/\(huge)/x", method: .get)
            XCTAssertEqual(source.status, .notFound)
            EdgeExpectations.checkErrorLine(String(buffer: source.body), "source")
            XCTAssertTrue(String(buffer: source.body).contains("closure"), String(buffer: source.body))
            let profile = try await client.execute(uri: "/dispatch/profile/rack", method: .get)
            XCTAssertEqual(profile.status, .notFound)
            EdgeExpectations.checkErrorLine(String(buffer: profile.body), "profile")
            XCTAssertTrue(String(buffer: profile.body).contains("not configured"), String(buffer: profile.body))
        }
    }

    func testProfileRefusalsNameNoServerPath() async throws {
        let server = try makeServer()
        let dir = server.options.stateDir + "/profiles"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir + "/passwd", withDestinationPath: "/etc/passwd")
        try FileManager.default.createSymbolicLink(atPath: dir + "/dangling", withDestinationPath: dir + "/gone")
        let app = server.testApplication()
        try await app.test(.router) { client in
            for name in ["passwd", "dangling", "missing"] {
                let response = try await client.execute(uri: "/dispatch/profile/\(name)", method: .get)
                XCTAssertEqual(response.status, .notFound, name)
                let body = String(buffer: response.body)
                EdgeExpectations.checkErrorLine(body, name)
                XCTAssertFalse(body.contains("/etc"), body)
                XCTAssertFalse(body.contains(dir), body)
            }
        }
    }

    func testTheErrorMiddlewareMapsEveryKindOfError() throws {
        let table = RouteTable()
        table.record("/boot/:name/initrd", .get)
        table.record("/boot/:name/initrd", .head)
        let middleware = HTTPErrorMiddleware(routes: table)
        func request(_ method: HTTPRequest.Method, _ path: String) -> Request {
            Request(head: HTTPRequest(method: method, scheme: "http", authority: "x", path: path), body: .init(buffer: ByteBuffer()))
        }
        struct Unexpected: Error { var secret = "/var/lib/secret" }
        let crash = middleware.render(Unexpected(), for: request(.get, "/"))
        XCTAssertEqual(crash.status, .internalServerError)
        XCTAssertFalse(crash.publicLine.contains("secret"))
        let wrongMethod = middleware.render(HTTPError(.notFound), for: request(.post, "/boot/x/initrd"))
        XCTAssertEqual(wrongMethod.status, .methodNotAllowed)
        XCTAssertEqual(wrongMethod.headers[.allow], "GET, HEAD")
        XCTAssertEqual(middleware.render(HTTPError(.notFound), for: request(.get, "/boot/x/initrd")).status, .notFound)
        XCTAssertEqual(middleware.render(HTTPError(.notFound), for: request(.post, "/boot/x")).status, .notFound)
        XCTAssertEqual(middleware.render(HTTPError(.badRequest, message: "bad"), for: request(.get, "/")).status, .badRequest)
        var nameError: any Error = Unexpected()
        do { _ = try StorePath(name: String(repeating: "x", count: 10_000)) } catch { nameError = error }
        let storePath = middleware.render(nameError, for: request(.get, "/"))
        XCTAssertEqual(storePath.status, .badRequest)
        XCTAssertFalse(storePath.publicLine.contains("xxxx"))
    }

    func testPublicLinesAreOneLineOfAtMost200Bytes() {
        XCTAssertEqual(PlainTextError.oneLine("a\nb\rc\0d\u{1B}[2Je"), "a b c d [2Je")
        let long = PlainTextError(.badRequest, String(repeating: "é", count: 500)).publicLine
        XCTAssertLessThanOrEqual(long.utf8.count, 200)
        XCTAssertTrue(long.hasSuffix("…\n"))
        XCTAssertEqual(PlainTextError(.badRequest, "short").publicLine, "short\n")
    }

    func testTheRouteTableMatchesAsTheRouterDoes() {
        let table = RouteTable()
        table.record("/", .get)
        table.record("/boot/:name/bzImage", .get)
        table.record("/dispatch/:source/**", .get)
        table.record("/dispatch/:source/**", .head)
        XCTAssertEqual(table.allowedMethods(for: "/"), [.get])
        XCTAssertEqual(table.allowedMethods(for: "//"), [.get])
        XCTAssertEqual(table.allowedMethods(for: "/boot/x/bzImage"), [.get])
        XCTAssertEqual(table.allowedMethods(for: "/boot/x/bzImage/"), [.get])
        XCTAssertEqual(table.allowedMethods(for: "/boot/x/bzimage"), [])
        XCTAssertEqual(table.allowedMethods(for: "/boot/bzImage"), [])
        XCTAssertEqual(table.allowedMethods(for: "/dispatch/closure"), [])
        XCTAssertEqual(table.allowedMethods(for: "/dispatch/closure/a"), [.get, .head])
        XCTAssertEqual(table.allowedMethods(for: "/dispatch/closure/a/b/c"), [.get, .head])
    }

    func testTheConnectionLimitLeavesRoomForFiles() throws {
        let options = try ServerOptions.parse([])
        XCTAssertEqual(options.connectionLimit(openFiles: 256, jobs: 2), (256 - 64 - 16) / 2)
        XCTAssertEqual(options.connectionLimit(openFiles: 50_000, jobs: 4), (50_000 - 64 - 32) / 2)
        XCTAssertEqual(options.connectionLimit(openFiles: 40, jobs: 2), 1)
        XCTAssertEqual(try ServerOptions.parse(["--max-connections", "7"]).connectionLimit(openFiles: 256, jobs: 2), 7)
        XCTAssertEqual(options.headerTimeout, 10)
        XCTAssertEqual(options.maxHeaderBytes, 16384)
    }
}
