import Foundation
import NetbootHost
import NetbootTesting
import XCTest

/// The stand-in store answers as `nix-store` would, over files it really writes.
final class InMemoryNixStoreTests: XCTestCase {
    func testClosuresRegistrationsFailuresAndFiles() async throws {
        let store = try InMemoryNixStore(directory: try makeTemporaryDirectory(self, "store"))
        let leaf = try store.add("leaf", contents: .file("leaf\n"))
        let middle = try store.add("middle", contents: .directory(["link": .symlink(leaf.absolutePath)]), references: [leaf])
        let system = try store.addSystem("system", kernelParameters: nil, references: [middle])
        let absent = try store.name("absent")

        let validity = try await [store.isValid(system), store.isValid(leaf), store.isValid(absent)]
        XCTAssertEqual(validity, [true, true, false])
        let closure = try await store.requisites(of: system)
        XCTAssertEqual(closure, [leaf, middle, system].sorted())
        let leafClosure = try await store.requisites(of: leaf)
        XCTAssertEqual(leafClosure, [leaf])

        // Registrations in `nix-store --dump-db` form, as the packer and the initrd's loader read them.
        let registrations = try await store.registrations(of: [middle, system])
        let records = try NixDatabaseDump.split(registrations[middle]! + registrations[system]!)
        XCTAssertEqual(records.map(\.path), [middle, system])
        XCTAssertEqual(records.map(\.references), [[leaf.absolutePath], [middle.absolutePath]])
        XCTAssertEqual(NixDatabaseDump.narSize(of: registrations[middle]!), UInt64(leaf.absolutePath.utf8.count))

        // The files are real: a system with no kernel-params, a link written as given.
        let root = store.storeDirectory + "/" + system.name
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: root)), ["init", "kernel"])
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: store.storeDirectory + "/" + middle.name + "/link"), leaf.absolutePath)
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: root + "/init"))

        // Absent and failing paths fail as Nix does, with NixCommandError.
        do {
            _ = try await store.requisites(of: absent)
            XCTFail("the closure of an invalid path")
        } catch let error as NixCommandError {
            XCTAssertTrue(error.standardError.contains("is not valid"), "\(error)")
        }
        store.failQueries(about: middle)
        for query in ["isValid", "requisites", "registrations"] {
            do {
                switch query {
                case "isValid": _ = try await store.isValid(middle)
                case "requisites": _ = try await store.requisites(of: system)  // through the failing reference
                default: _ = try await store.registrations(of: [leaf, middle])
                }
                XCTFail("\(query) about a failing path answered")
            } catch let error as NixCommandError {
                XCTAssertEqual(error.command.first, "nix-store", query)
            }
        }
        XCTAssertGreaterThan(store.queryCount, 0)

        // The root tool makes an indirect root the way `nix-store --add-root --indirect` does.
        let pin = try makeTemporaryDirectory(self, "roots") + "/pin"
        try await store.realise(system, root: pin)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: pin), system.absolutePath)
    }
}
