import Codecs
import Foundation
import NetbootHost
import XCTest

/// What the writer and archiver refuse rather than write wrong.
final class ArchiverErrorTests: XCTestCase {
    func testFilesOf4GiBOrMoreAreRefused() throws {
        var writer = NewcWriter(sink: MemorySink())
        XCTAssertThrowsError(try writer.beginFile(Array("nix/store/x".utf8), mode: 0o444, size: 1 << 32)) { error in
            guard case ArchiveError.fileTooLarge = error else { return XCTFail("\(error)") }
        }
        var ok = NewcWriter(sink: MemorySink())
        XCTAssertNoThrow(try ok.beginFile(Array("nix/store/x".utf8), mode: 0o444, size: (1 << 32) - 1))
    }

    func testASparse4GiBFileInATreeIsAnErrorBeforeAnyReading() throws {
        let dir = try makeTemporaryDirectory(self)
        try shell("mkdir \(dir)/root && truncate -s 4G \(dir)/root/huge")
        let entries = try StorePathArchiver.walk(diskPath: dir + "/root", archiveName: "nix/store/huge")
        var writer = NewcWriter(sink: MemorySink())
        XCTAssertThrowsError(try StorePathArchiver.write(entries, into: &writer)) { error in
            XCTAssertTrue("\(error)".contains("4 GiB"), "\(error)")
        }
    }

    func testSpecialFilesAreErrorsNotSkipped() throws {
        let dir = try makeTemporaryDirectory(self)
        try shell("mkdir \(dir)/root && mkfifo \(dir)/root/fifo")
        XCTAssertThrowsError(try StorePathArchiver.walk(diskPath: dir + "/root", archiveName: "nix/store/x")) { error in
            XCTAssertTrue("\(error)".contains("fifo"), "\(error)")
        }
    }

    func testMissingEntriesAreErrors() throws {
        XCTAssertThrowsError(try StorePathArchiver.walk(diskPath: "/nonexistent-\(UUID())", archiveName: "nix/store/x"))
    }

    func testTooLongNamesAreRefused() throws {
        var writer = NewcWriter(sink: MemorySink())
        XCTAssertThrowsError(try writer.appendDirectory(Array(repeating: UInt8(ascii: "a"), count: 4096), mode: 0o555))
        XCTAssertNoThrow(try writer.appendDirectory(Array(repeating: UInt8(ascii: "a"), count: 4095), mode: 0o555))
    }

    func testTheArchiveSizeIsKnownBeforeWriting() async throws {
        for path in [PackFixtures.shared.tree, PackFixtures.shared.single, PackFixtures.shared.link] {
            let entries = try StorePathArchiver.walk(path)
            var writer = NewcWriter(sink: MemorySink())
            try StorePathArchiver.write(entries, into: &writer)
            try writer.appendFile(Array("extra/name".utf8), mode: 0o444, contents: Array("12345".utf8))
            let bytes = try writer.finish().bytes
            XCTAssertEqual(StorePathArchiver.archiveSize(of: entries, plusFiles: [(10, 5)]), UInt64(bytes.count), path.name)
        }
    }

    func testHeaderLayout() throws {
        var writer = NewcWriter(sink: MemorySink())
        try writer.appendFile(Array("ab".utf8), mode: 0o444, contents: Array("xyz".utf8))
        let bytes = try writer.finish().bytes
        let text = String(decoding: bytes.prefix(110), as: UTF8.self)
        // magic, ino 1, mode 0100444, uid, gid, nlink 1, mtime 1, size 3, ..., namesize 3, check 0
        XCTAssertEqual(text, "070701" + "00000001" + "00008124" + "00000000" + "00000000"
            + "00000001" + "00000001" + "00000003" + "00000000" + "00000000" + "00000000" + "00000000" + "00000003" + "00000000")
        XCTAssertEqual(Array(bytes[110..<116]), Array("ab".utf8) + [0, 0, 0, 0])  // name, NUL, pad to 116
        XCTAssertEqual(Array(bytes[116..<120]), Array("xyz".utf8) + [0])
        XCTAssertEqual(bytes.count % 4, 0)
    }
}
