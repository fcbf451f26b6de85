import Foundation
import HTTPTypes
import Logging
import Hummingbird
import HummingbirdTesting
import NetbootHost
import NIOCore
import XCTest

/// `/dispatch/profile/NAME` against real symlinks and the real store.
final class ProfileSourceTests: XCTestCase {
    var system: StorePath { PackFixtures.shared.system }

    func profiles(_ test: TestServer) throws -> String {
        let dir = test.stateDir + "/profiles"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    func testProfileChainsAreFollowedAtEveryRequest() async throws {
        let test = try TestServer(self)
        let dir = try profiles(test)
        try FileManager.default.createSymbolicLink(atPath: dir + "/rack-7-link", withDestinationPath: system.absolutePath)
        try FileManager.default.createSymbolicLink(atPath: dir + "/rack", withDestinationPath: "rack-7-link")
        let system = self.system
        let tree = try PackFixtures.build(salt: "second generation").system
        let app = Application(router: test.server.makeRouter())
        try await app.test(.router) { client in
            let first = try await client.execute(uri: "/dispatch/profile/rack?cmdline_suffix_args=x", method: .get)
            XCTAssertEqual(first.status, .found)
            XCTAssertEqual(first.headers[.location], "/boot/\(system.name)/netboot.ipxe?cmdline_suffix_args=x")
            // Switch the profile: the next request follows the new generation.
            try FileManager.default.createSymbolicLink(atPath: dir + "/rack-8-link", withDestinationPath: tree.absolutePath)
            try FileManager.default.removeItem(atPath: dir + "/rack")
            try FileManager.default.createSymbolicLink(atPath: dir + "/rack", withDestinationPath: "./rack-8-link")
            let second = try await client.execute(uri: "/dispatch/profile/rack", method: .get)
            XCTAssertEqual(second.headers[.location], "/boot/\(tree.name)/netboot.ipxe")
        }
        let pins = try FileManager.default.contentsOfDirectory(atPath: test.stateDir + "/gc-roots/pins")
        XCTAssertEqual(Set(pins), ["pin-\(system.name)", "pin-\(tree.name)"], "a pin per system: \(pins)")
    }

    func testRefusals() async throws {
        let test = try TestServer(self)
        let dir = try profiles(test)
        let outside = try makeTemporaryDirectory(self, "outside")
        let neverBuilt = "/nix/store/" + "0" + system.name.dropFirst()
        try FileManager.default.createSymbolicLink(atPath: dir + "/outside", withDestinationPath: outside)
        try FileManager.default.createSymbolicLink(atPath: dir + "/inside", withDestinationPath: system.absolutePath + "/init")
        try FileManager.default.createSymbolicLink(atPath: dir + "/invalid", withDestinationPath: neverBuilt)
        try FileManager.default.createSymbolicLink(atPath: dir + "/dangling", withDestinationPath: dir + "/gone")
        try FileManager.default.createSymbolicLink(atPath: dir + "/loop", withDestinationPath: "loop")
        try FileManager.default.createDirectory(atPath: dir + "/plain-dir", withIntermediateDirectories: true)
        let app = Application(router: test.server.makeRouter())
        try await app.test(.router) { client in
            for (name, reason) in [("missing", "no profile named missing"), ("outside", "outside /nix/store"), ("inside", "inside a store path"),
                                   ("invalid", "not a valid store path"), ("dangling", "does not exist"), ("loop", "links"), ("plain-dir", "outside /nix/store")] {
                let response = try await client.execute(uri: "/dispatch/profile/\(name)", method: .get)
                XCTAssertEqual(response.status, .notFound, name)
                XCTAssertTrue(String(buffer: response.body).contains(reason), "\(name): \(String(buffer: response.body))")
            }
            for bad in ["..", "%2E%2E", "a%2F..%2Fb", ".profile", "x%01"] {
                let response = try await client.execute(uri: "/dispatch/profile/\(bad)", method: .get)
                XCTAssertEqual(response.status, .badRequest, bad)
            }
        }
    }

    func testUnconfiguredAndDisabledSources() async throws {
        let bare = try TestServer(self)
        try await Application(router: bare.server.makeRouter()).test(.router) { client in
            let response = try await client.execute(uri: "/dispatch/profile/x", method: .get)
            XCTAssertEqual(response.status, .notFound)
            XCTAssertTrue(String(buffer: response.body).contains("profile booting is not configured"))
        }
        let system = self.system
        let disabled = try TestServer(self, arguments: ["--disable-source", "closure"])
        try await Application(router: disabled.server.makeRouter()).test(.router) { client in
            let response = try await client.execute(uri: "/dispatch/closure/\(system.name)", method: .get)
            XCTAssertEqual(response.status, .notFound)
            XCTAssertTrue(String(buffer: response.body).contains("turned off"))
        }
        XCTAssertThrowsError(try TestServer(self, arguments: ["--disable-source", "nosuch"]))
    }
}

/// Pins are real GC roots that expire.
final class GCRootPinsTests: XCTestCase {
    func testAPinnedPathCannotBeDeletedUntilThePinExpires() async throws {
        let fresh = try PackFixtures.build(salt: "pin-\(UUID())").link  // nothing refers to it
        let dir = try makeTemporaryDirectory(self, "roots")
        let pins = try GCRootPins(gcRootDirectory: dir, lifetime: .seconds(2), logger: .init(label: "test"))
        try await pins.pin(fresh)
        let refused = try shell("nix-store --delete \(fresh.absolutePath)", allowFailure: true)
        XCTAssertNotEqual(refused.status, 0, "pinned: \(refused.error)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: fresh.absolutePath))
        let early = await pins.sweep()
        XCTAssertEqual(early, 0)
        try await Task.sleep(for: .seconds(2.2))
        let swept = await pins.sweep()
        XCTAssertEqual(swept, 1)
        try shell("nix-store --delete \(fresh.absolutePath)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: fresh.absolutePath))
    }

    func testAFloodOfDispatchesMakesOneRootAndOneNixCall() async throws {
        let path = PackFixtures.shared.single
        let dir = try makeTemporaryDirectory(self, "roots")
        let pins = try GCRootPins(gcRootDirectory: dir, lifetime: .seconds(3600), logger: .init(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<250 { group.addTask { try await pins.pin(path) } }
            try await group.waitForAll()
        }
        let created = await pins.rootsCreated
        XCTAssertEqual(created, 1)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/pins"), ["pin-\(path.name)"])
        let target = try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/pins/pin-\(path.name)")
        XCTAssertEqual(target, path.absolutePath)
    }

    func testARestartKeepsPinsAndEachDispatchPushesTheExpiry() async throws {
        let path = PackFixtures.shared.single
        let dir = try makeTemporaryDirectory(self, "roots")
        let clock = ManualClock(now: Int64(Date().timeIntervalSince1970))
        let first = try GCRootPins(gcRootDirectory: dir, lifetime: .seconds(100), logger: .init(label: "test"), clock: { clock.now })
        try await first.pin(path)
        clock.now += 80
        try await first.pin(path)  // moves the expiry to +180, written to the root's mtime
        clock.now += 50
        // A new process: the root on disk is adopted with its last use, still pinned at +130.
        let second = try GCRootPins(gcRootDirectory: dir, lifetime: .seconds(100), logger: .init(label: "test"), clock: { clock.now })
        let pinned = await second.isPinned(path)
        XCTAssertTrue(pinned)
        let swept = await second.sweep()
        XCTAssertEqual(swept, 0)
        try await second.pin(path)
        let created = await second.rootsCreated
        XCTAssertEqual(created, 0, "a pin that survived the restart needs no Nix call")
        clock.now += 100
        let expired = await second.sweep()
        XCTAssertEqual(expired, 1)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/pins"), [])
    }

    func testMaxPinsReleasesTheLeastRecentlyDispatched() async throws {
        let fixtures = PackFixtures.shared
        let dir = try makeTemporaryDirectory(self, "roots")
        let clock = ManualClock(now: Int64(Date().timeIntervalSince1970))
        let pins = try GCRootPins(gcRootDirectory: dir, lifetime: .seconds(3600), maximumPins: 2, logger: .init(label: "test"), clock: { clock.now })
        for path in [fixtures.single, fixtures.tree, fixtures.link] {
            try await pins.pin(path)
            clock.now += 1
        }
        let names = Set(try FileManager.default.contentsOfDirectory(atPath: dir + "/pins"))
        XCTAssertEqual(names, ["pin-\(fixtures.tree.name)", "pin-\(fixtures.link.name)"])
    }

    func testStartUpSweepRemovesOldPinsOnly() async throws {
        let dir = try makeTemporaryDirectory(self, "roots")
        try FileManager.default.createDirectory(atPath: dir + "/pins", withIntermediateDirectories: true)
        let now = Int64(Date().timeIntervalSince1970)
        let path = PackFixtures.shared.single.absolutePath
        try FileManager.default.createSymbolicLink(atPath: dir + "/pins/pin-\(now - 7200)-1-1-old", withDestinationPath: path)
        try FileManager.default.createSymbolicLink(atPath: dir + "/pins/pin-\(now)-1-2-new", withDestinationPath: path)
        try FileManager.default.createSymbolicLink(atPath: dir + "/pins/not-ours", withDestinationPath: path)
        let pins = try GCRootPins(gcRootDirectory: dir, lifetime: .seconds(3600), logger: .init(label: "test"))
        let removed = await pins.sweep()
        XCTAssertEqual(removed, 1)
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: dir + "/pins")), ["pin-\(now)-1-2-new", "not-ours"])
    }
}

/// A clock for pins that a test moves by hand.
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int64
    init(now: Int64) { value = now }
    var now: Int64 {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}
