import NetbootHost
import XCTest

/// The bounded memo: the least recently used entries go first.
final class RecentlyUsedTests: XCTestCase {
    func testItKeepsAtMostItsCapacityAndDropsTheLeastRecentlyUsed() {
        var memo = RecentlyUsed<Int, String>(capacity: 8)
        for key in 0..<8 { memo.insert(key, "\(key)") }
        XCTAssertEqual(memo.value(0), "0", "0 is now the most recently used")
        memo.insert(8, "8")
        XCTAssertEqual(memo.count, 8)
        XCTAssertTrue(memo.contains(0))
        XCTAssertFalse(memo.contains(1), "the least recently used went")
        for key in 100..<10_000 { memo.insert(key, "") }
        XCTAssertLessThanOrEqual(memo.count, 8)
        XCTAssertTrue(memo.contains(9_999))
    }
}

/// Module names are checked when a module registers: they end up in URLs and cache file names.
final class ModuleRegistryTests: XCTestCase {
    struct NamedCodec: Compressor {
        var name: String
        var levels: ClosedRange<Int> { 0...0 }
        var defaultLevel: Int { 0 }
        func makeEncoder(level: Int, inputSize: UInt64, workers: Int) throws -> any CompressionEncoder { throw CancellationError() }
    }

    func testCodecNamesAreCheckedAndUnique() throws {
        var registry = ModuleRegistry()
        try registry.register(compressor: NamedCodec(name: "lz4"))
        XCTAssertThrowsError(try registry.register(compressor: NamedCodec(name: "lz4")))
        for bad in ["", "Zstd", "z-std", "z@", "../x", String(repeating: "a", count: 17)] {
            XCTAssertThrowsError(try registry.register(compressor: NamedCodec(name: bad)), bad)
        }
        XCTAssertEqual(registry.compressorNames, ["lz4"])
    }
}
