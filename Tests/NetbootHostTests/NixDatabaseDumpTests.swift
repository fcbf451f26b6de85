import NetbootHost
import XCTest

/// Splitting `nix-store --dump-db` output of real paths.
final class NixDatabaseDumpTests: XCTestCase {
    func testRecordsSplitPerPathWithTheirReferencesAndSize() async throws {
        let fixtures = PackFixtures.shared
        let paths = [fixtures.link, fixtures.tree, fixtures.single]
        let dump = try await NixStoreCLI().registrations(of: paths)
        XCTAssertEqual(Set(dump.keys), Set(paths))
        for path in paths {
            let alone = Array(try shell("nix-store --dump-db \(path.absolutePath)").output)
            XCTAssertEqual(dump[path], alone, "a record per path, byte for byte")
            let size = try shellString("nix-store -q --size \(path.absolutePath)")
            XCTAssertEqual(NixDatabaseDump.narSize(of: dump[path]!).map(String.init), size)
        }
        let records = try NixDatabaseDump.split(paths.flatMap { dump[$0]! })
        XCTAssertEqual(records.map(\.path), paths)
        XCTAssertEqual(records[1].references, [fixtures.single.absolutePath])
        XCTAssertThrowsError(try NixDatabaseDump.split(Array("/nix/store/\(fixtures.tree.name)\nabc\n".utf8)))
    }
}
