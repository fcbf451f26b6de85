import ArgumentParser
import ClosureSource
import Codecs
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NetbootHost
import XCTest

/// `/`, `/healthz` and `/status` in memory, against the real store: who gets the page, the text
/// and the JSON, HEAD, and a boot (an initrd downloaded) showing up in all three.
final class StatusRoutesTests: XCTestCase {
    func makeServer(_ arguments: [String] = []) throws -> NetbootServer {
        let options = try ServerOptions.parse(["--state-dir", try makeTemporaryDirectory(self, "state")] + arguments)
        var registry = ModuleRegistry()
        try registry.register(compressor: ZstdCompressor())
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        try registry.register(source: ClosureSource(context: NetbootServer.sourceContext(options: options, store: NixStoreCLI(), logger: logger)))
        return try NetbootServer(options: options, registry: registry, logger: logger)
    }

    func testBrowsersGetThePageOthersTheOneLineAndHealthzSaysOk() async throws {
        try await makeServer().testApplication().test(.router) { client in
            let plain = try await client.execute(uri: "/", method: .get)
            XCTAssertEqual(String(buffer: plain.body), "nix-netboot-serve\n")
            let refused = try await client.execute(uri: "/", method: .get, headers: [.accept: "text/html;q=0, */*"])
            XCTAssertEqual(String(buffer: refused.body), "nix-netboot-serve\n")
            let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
            let page = try await client.execute(uri: "/", method: .get, headers: [.accept: browser])
            XCTAssertEqual(page.status, .ok)
            XCTAssertEqual(page.headers[.contentType], "text/html; charset=utf-8")
            XCTAssertEqual(page.headers[.cacheControl], "no-store")
            XCTAssertTrue(String(buffer: page.body).contains("<h2>Packing now</h2>"))
            let head = try await client.execute(uri: "/", method: .head, headers: [.accept: browser])
            XCTAssertEqual(head.headers[.contentType], "text/html; charset=utf-8")
            XCTAssertEqual(head.body.readableBytes, 0)
            XCTAssertGreaterThan(Int(head.headers[.contentLength] ?? "") ?? 0, 1000)
            let health = try await client.execute(uri: "/healthz", method: .get)
            XCTAssertEqual(health.status, .ok)
            XCTAssertEqual(String(buffer: health.body), "ok\n")
            let healthHead = try await client.execute(uri: "/healthz", method: .head)
            XCTAssertEqual(healthHead.headers[.contentLength], "3")
            let post = try await client.execute(uri: "/healthz", method: .post)
            XCTAssertEqual(post.status, .methodNotAllowed)
        }
    }

    func testABootShowsInTheTextTheJSONAndThePage() async throws {
        let name = PackFixtures.shared.system.name
        try await makeServer(["--max-cpio-cache-bytes", "123456789"]).testApplication().test(.router) { client in
            let initrd = try await client.execute(uri: "/boot/\(name)/initrd", method: .get)
            XCTAssertEqual(initrd.status, .ok)
            let text = String(buffer: try await client.execute(uri: "/status", method: .get).body)
            let lines = text.split(separator: "\n").map(String.init)
            XCTAssertEqual(lines.first, "codec zstd level \(ZstdCompressor().defaultLevel)")
            XCTAssertTrue(lines[1].hasPrefix("archives-packed "))
            XCTAssertTrue(lines[2].hasPrefix("archives-cached "))
            XCTAssertTrue(lines[3].hasPrefix("cache-bytes "))
            XCTAssertTrue(lines.contains("cache-limit-bytes 123456789"), text)
            XCTAssertTrue(lines.contains { $0.hasPrefix("boot ") && $0.contains(" system \(name) bytes \(initrd.body.readableBytes) ") }, text)
            XCTAssertTrue(lines.contains { $0.hasPrefix("system \(name) initrd-bytes \(initrd.body.readableBytes) ") }, text)

            let json = try await client.execute(uri: "/status", method: .get, headers: [.accept: "application/json"])
            XCTAssertEqual(json.headers[.contentType], "application/json")
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(String(buffer: json.body).utf8)) as? [String: Any])
            let boots = try XCTUnwrap(object["boots"] as? [[String: Any]])
            XCTAssertEqual(boots.first?["system"] as? String, name)
            XCTAssertEqual(boots.first?["bytes"] as? Int, initrd.body.readableBytes)
            XCTAssertEqual((object["sources"] as? [[String: Any]])?.first?["name"] as? String, "closure")

            let page = String(buffer: try await client.execute(uri: "/", method: .get, headers: [.accept: "text/html"]).body)
            XCTAssertTrue(page.contains(#"<tr class="boot">"#), page)
            XCTAssertTrue(page.contains(name))
        }
    }

    func testAServerFailureIsNotedWithItsPublicMessageOnly() async throws {
        let server = try makeServer()
        try await server.testApplication().test(.router) { client in
            // A system whose layout is no NixOS system is refused (4xx): not a server failure.
            let refused = try await client.execute(uri: "/boot/\(PackFixtures.shared.tree.name)/initrd", method: .get)
            XCTAssertLessThan(refused.status.code, 500)
            XCTAssertTrue(server.assembler.activity.snapshot().errors.isEmpty)
        }
        let activity = ServerActivity()
        let middleware = HTTPErrorMiddleware(routes: RouteTable(), activity: activity)
        let router = Router(context: NetbootRequestContext.self)
        router.add(middleware: middleware)
        router.get("/fail") { _, _ -> String in throw SystemError(operation: "open /secret/server/path", errno: 5) }
        try await Application(router: router).test(.router) { client in
            let response = try await client.execute(uri: "/fail", method: .get)
            XCTAssertEqual(response.status, .internalServerError)
        }
        let errors = activity.snapshot().errors
        XCTAssertEqual(errors.count, 1)
        XCTAssertTrue(errors[0].message.hasPrefix("GET /fail: 500 "), errors[0].message)
        XCTAssertFalse(errors[0].message.contains("/secret"), errors[0].message)
    }
}
