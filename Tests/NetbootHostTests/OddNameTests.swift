import ArgumentParser
import ClosureSource
import Codecs
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NetbootHost
import NetbootTesting
import XCTest

/// Store path names may hold `+ - . _ ? =`: a system so named is dispatched and served like any
/// other (`?` travels as `%3F` in its URLs).
final class OddNameTests: XCTestCase {
    func testASystemWhoseNameHoldsEveryAllowedCharacterBoots() async throws {
        let temporary = try makeTemporaryDirectory(self, "odd")
        let store = try InMemoryNixStore(directory: temporary + "/nix")
        let system = try store.addSystem("nixos-system-a+b=c?d_e.f")
        let options = try ServerOptions.parse(["--state-dir", temporary + "/state"])
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let context = NetbootServer.sourceContext(options: options, store: store, logger: logger)
        var registry = ModuleRegistry()
        try registry.register(compressor: ZstdCompressor())
        try registry.register(source: ClosureSource(context: context))
        let server = try NetbootServer(options: options, registry: registry, store: store, logger: logger, storeDirectory: store.storeDirectory)
        try await server.testApplication(logger: logger).test(.router) { client in
            let segment = system.urlSegment
            XCTAssertTrue(segment.contains("%3F") && !segment.contains("?"), segment)
            let dispatch = try await client.execute(uri: "/dispatch/closure/\(segment)?cmdline_suffix_args=quiet", method: .get)
            XCTAssertEqual(dispatch.status, .found, String(buffer: dispatch.body))
            let location = try XCTUnwrap(dispatch.headers[.location])
            XCTAssertEqual(location, "/boot/\(segment)/netboot.ipxe?cmdline_suffix_args=quiet")
            let script = try await client.execute(uri: location, method: .get)
            XCTAssertEqual(script.status, .ok, String(buffer: script.body))
            XCTAssertTrue(String(buffer: script.body).contains("rdinit=\(system.absolutePath)/init"))
            for file in ["bzImage", "initrd"] {
                let response = try await client.execute(uri: "/boot/\(segment)/\(file)", method: .head)
                XCTAssertEqual(response.status, .ok, file)
            }
        }
    }
}
