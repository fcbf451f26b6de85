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
import XCTest

/// The host's routes, in memory, against the real Nix store.
final class HTTPRoutesTests: XCTestCase {

    func makeApp(store: any NixStore = NixStoreCLI()) throws -> some ApplicationProtocol {
        let options = try ServerOptions.parse(["--state-dir", try makeTemporaryDirectory(self, "state")])
        var registry = ModuleRegistry()
        try registry.register(compressor: ZstdCompressor())
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        try registry.register(source: ClosureSource(context: NetbootServer.sourceContext(options: options, store: store, logger: logger)))
        let server = try NetbootServer(options: options, registry: registry, store: store, logger: logger)
        return server.testApplication(logger: logger)
    }

    func testLiveness() async throws {
        try await makeApp().test(.router) { client in
            try await client.execute(uri: "/", method: .get) { response in
                XCTAssertEqual(response.status, .ok)
                XCTAssertEqual(String(buffer: response.body), "nix-netboot-serve\n")
            }
        }
    }

    func testScriptNamesKernelInitAndParametersWithTheTuningArguments() async throws {
        let name = PackFixtures.shared.system.name
        try await makeApp().test(.router) { client in
            let query = "cmdline_prefix_args=boot.shell_on_fail+quiet&cmdline_suffix_args=ip%3Ddhcp%20x%3D%22a%22"
            try await client.execute(uri: "/boot/\(name)/netboot.ipxe?\(query)", method: .get) { response in
                XCTAssertEqual(response.status, .ok)
                XCTAssertEqual(String(buffer: response.body), """
                    #!ipxe
                    echo Booting NixOS closure \(name).
                    kernel bzImage initrd=initrd rdinit=/nix/store/\(name)/init boot.shell_on_fail quiet console=ttyS0 loglevel=4 init=\(PackFixtures.shared.tree.absolutePath)/dir/tool ip=dhcp x="a"
                    initrd initrd
                    boot

                    """)
            }
            try await client.execute(uri: "/boot/\(name)/netboot.ipxe", method: .get) { response in
                XCTAssertTrue(String(buffer: response.body).contains("rdinit=/nix/store/\(name)/init console=ttyS0 loglevel=4 init="))
            }
            for bad in ["cmdline_suffix_args=a%0Areboot", "cmdline_prefix_args=a%00b", "cmdline_suffix_args=%0D", "cmdline_prefix_args=%zz"] {
                try await client.execute(uri: "/boot/\(name)/netboot.ipxe?\(bad)", method: .get) { response in
                    XCTAssertEqual(response.status, .badRequest, bad)
                    XCTAssertFalse(String(buffer: response.body).isEmpty)
                }
            }
        }
    }

    func testInitrdHeadMatchesGetAndNotModified() async throws {
        let name = PackFixtures.shared.system.name
        try await makeApp().test(.router) { client in
            let head = try await client.execute(uri: "/boot/\(name)/initrd", method: .head)
            XCTAssertEqual(head.status, .ok)
            XCTAssertEqual(head.body.readableBytes, 0)
            let get = try await client.execute(uri: "/boot/\(name)/initrd", method: .get)
            XCTAssertEqual(get.status, .ok)
            XCTAssertEqual(head.headers[.contentLength], "\(get.body.readableBytes)")
            XCTAssertEqual(get.headers[.contentLength], "\(get.body.readableBytes)")
            XCTAssertEqual(get.headers[.cacheControl], "public, max-age=31536000, immutable")
            let tag = try XCTUnwrap(get.headers[.eTag])
            XCTAssertTrue(tag.hasPrefix("\"") && tag.hasSuffix("\"") && !tag.hasPrefix("W/"), "strong: \(tag)")
            XCTAssertEqual(head.headers[.eTag], tag)
            _ = try KernelInitramfs.parse(Array(get.body.readableBytesView))
            let again = try await client.execute(uri: "/boot/\(name)/initrd", method: .get, headers: [.ifNoneMatch: "\"other\", \(tag)"])
            XCTAssertEqual(again.status, .notModified)
            XCTAssertEqual(again.body.readableBytes, 0)
            let other = try await client.execute(uri: "/boot/\(name)/initrd", method: .get, headers: [.ifNoneMatch: "\"other\""])
            XCTAssertEqual(other.status, .ok)
        }
    }

    func testKernelIsServedImmutable() async throws {
        let name = PackFixtures.shared.system.name
        try await makeApp().test(.router) { client in
            let get = try await client.execute(uri: "/boot/\(name)/bzImage", method: .get)
            XCTAssertEqual(get.status, .ok)
            XCTAssertEqual(String(buffer: get.body), "not really a kernel\n")
            XCTAssertEqual(get.headers[.contentLength], "20")
            let tag = try XCTUnwrap(get.headers[.eTag])
            let again = try await client.execute(uri: "/boot/\(name)/bzImage", method: .get, headers: [.ifNoneMatch: tag])
            XCTAssertEqual(again.status, .notModified)
        }
    }

    func testBadNamesAre400AndUnknownPathsAre404() async throws {
        let missing = "0" + PackFixtures.shared.tree.name.dropFirst()  // well-formed, never built
        try await makeApp().test(.router) { client in
            for bad in ["short", "\(String(repeating: "e", count: 32))-name", "\(PackFixtures.shared.tree.hashPart)_name", "\(PackFixtures.shared.tree.hashPart)-.hidden", "\(PackFixtures.shared.tree.hashPart)-a%20b"] {
                for file in ["netboot.ipxe", "bzImage", "initrd"] {
                    let response = try await client.execute(uri: "/boot/\(bad)/\(file)", method: .get)
                    XCTAssertEqual(response.status, .badRequest, "\(bad)/\(file)")
                    XCTAssertTrue(String(buffer: response.body).contains("not a store path name"), String(buffer: response.body))
                }
            }
            for file in ["netboot.ipxe", "bzImage", "initrd"] {
                let response = try await client.execute(uri: "/boot/\(missing)/\(file)", method: .get)
                XCTAssertEqual(response.status, .notFound, file)
                XCTAssertTrue(String(buffer: response.body).contains("not a valid store path"))
            }
            // A valid path that is not a system: no script, no kernel, no initrd.
            let script = try await client.execute(uri: "/boot/\(PackFixtures.shared.tree.name)/netboot.ipxe", method: .get)
            XCTAssertEqual(script.status, .notFound)
            XCTAssertTrue(String(buffer: script.body).contains("no init"), String(buffer: script.body))
            let kernel = try await client.execute(uri: "/boot/\(PackFixtures.shared.tree.name)/bzImage", method: .get)
            XCTAssertEqual(kernel.status, .notFound)
            XCTAssertTrue(String(buffer: kernel.body).contains("no kernel"))
            let initrd = try await client.execute(uri: "/boot/\(PackFixtures.shared.tree.name)/initrd", method: .get)
            XCTAssertEqual(initrd.status, .notFound)
            XCTAssertTrue(String(buffer: initrd.body).contains("not a NixOS system"), String(buffer: initrd.body))
        }
    }

    func testAFailingNixStoreIs502() async throws {
        let dir = try makeTemporaryDirectory(self)
        let script = dir + "/nix-store"
        try "#!/bin/sh\necho 'error: cannot open the Nix database (simulated)' >&2\nexit 1\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let broken = NixStoreCLI(command: NixCommand(executable: script))
        try await makeApp(store: broken).test(.router) { client in
            for file in ["netboot.ipxe", "initrd"] {
                let response = try await client.execute(uri: "/boot/\(PackFixtures.shared.system.name)/\(file)", method: .get)
                XCTAssertEqual(response.status, .badGateway, file)
                XCTAssertTrue(String(buffer: response.body).contains("nix failed"))
            }
        }
    }

    func testDispatchClosureRedirectsKeepingTheQuery() async throws {
        try await makeApp().test(.router) { client in
            let response = try await client.execute(uri: "/dispatch/closure/\(PackFixtures.shared.system.name)?cmdline_suffix_args=a+b", method: .get)
            XCTAssertEqual(response.status, .found)
            XCTAssertEqual(response.headers[.location], "/boot/\(PackFixtures.shared.system.name)/netboot.ipxe?cmdline_suffix_args=a+b")
            let unknown = try await client.execute(uri: "/dispatch/nosuchsource/x", method: .get)
            XCTAssertEqual(unknown.status, .notFound)
        }
    }
}
