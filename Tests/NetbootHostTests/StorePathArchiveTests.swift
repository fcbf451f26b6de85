import Codecs
import Foundation
import NetbootHost
import XCTest

/// Per-path archives of real store paths, checked by GNU cpio, bsdtar, the codecs' own tools and
/// the kernel-rules reader.
final class StorePathArchiveTests: XCTestCase {
    let fixtures = PackFixtures.shared
    let codecs: [(any Compressor, decompress: String, test: String)] = [
        (ZstdCompressor(), "zstd -dc", "zstd -t"),
        (XzCompressor(), "xz -dc", "xz -t"),
        (GzipCompressor(), "gzip -dc", "gzip -t"),
        (NoneCompressor(), "cat", "true"),
    ]

    func testArchivesExtractToTheStorePathWithCpioAndBsdtar() async throws {
        for path in [fixtures.tree, fixtures.single, fixtures.link] {
            let expected = try describeTree(path.absolutePath)
            for (codec, decompress, check) in codecs {
                let dir = try makeTemporaryDirectory(self, "archive")
                let bytes = try await packToMemory(path, compressor: codec)
                try writeFile(bytes, to: dir + "/archive")
                try shell("\(check) \(dir)/archive")
                try shell("\(decompress) < \(dir)/archive > \(dir)/archive.cpio")
                try shell("mkdir \(dir)/cpio && cd \(dir)/cpio && cpio -idm --quiet --no-absolute-filenames < ../archive.cpio")
                try shell("mkdir \(dir)/bsdtar && cd \(dir)/bsdtar && bsdtar -xpf ../archive.cpio")
                for tool in ["cpio", "bsdtar"] {
                    let extracted = try describeTree("\(dir)/\(tool)/nix/store/\(path.name)")
                    XCTAssertEqual(extracted, expected, "\(tool) extraction of \(codec.name) archive of \(path.name)")
                }
                let registration = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/cpio/nix/.nix-netboot-serve-db/registration/\(path.name)"))
                let dump = try shell("nix-store --dump-db \(path.absolutePath)").output
                XCTAssertEqual(registration, dump, "registration of \(path.name)")
            }
        }
    }

    func testArchivesFollowTheKernelsRules() async throws {
        for path in [fixtures.tree, fixtures.single, fixtures.link] {
            let expected = try describeTree(path.absolutePath)
            for (codec, _, _) in codecs {
                let bytes = try await packToMemory(path, compressor: codec)
                let parsed = try KernelInitramfs.parse(bytes, existingDirectories: leaderDirectories)
                XCTAssertEqual(parsed.members.count, 1, "one member per archive (\(codec.name))")
                XCTAssertEqual(parsed.members.first?.compression?.rawValue, codec.name == "none" ? nil : codec.name)
                XCTAssertEqual(describeKernelTree(parsed, prefix: "nix/store/\(path.name)"), expected, "\(codec.name) \(path.name)")
                XCTAssertTrue(parsed.entries.allSatisfy { $0.nlink == 1 }, "nlink must be 1")
                XCTAssertEqual(Set(parsed.entries.map(\.ino)).count, parsed.entries.count, "inodes must be unique")
                XCTAssertTrue(parsed.entries.allSatisfy { $0.uid == 0 && $0.gid == 0 && $0.mtime == 1 })
                let names = parsed.entries.map(\.name)
                XCTAssertEqual(names.last, InitrdLayoutNames.registration(path))
            }
        }
    }

    func testEntriesAreInByteWiseOrderWithParentsFirst() async throws {
        let bytes = try await packToMemory(fixtures.tree, compressor: NoneCompressor())
        let parsed = try KernelInitramfs.parse(bytes, existingDirectories: leaderDirectories)
        let names = parsed.entries.dropLast().map(\.name)
        // Byte-wise depth-first order: siblings sorted, each directory before what it holds.
        let prefix = Array("nix/store/\(fixtures.tree.name)".utf8)
        XCTAssertEqual(names.first, prefix)
        var seen: Set<[UInt8]> = []
        for name in names {
            if name != prefix {
                let parent = Array(name[..<name.lastIndex(of: UInt8(ascii: "/"))!])
                XCTAssertTrue(seen.contains(parent), "parent of \(String(decoding: name, as: UTF8.self)) comes first")
            }
            seen.insert(name)
        }
        let dirEntries = names.filter { $0.starts(with: prefix + Array("/dir/".utf8)) && !$0.dropFirst(prefix.count + 5).contains(UInt8(ascii: "/")) }
        XCTAssertEqual(dirEntries, dirEntries.sorted { $0.lexicographicallyPrecedes($1) })
        XCTAssertTrue(names.contains(prefix + Array("/dir/".utf8) + Array(repeating: UInt8(ascii: "n"), count: 255)), "255-byte name kept")
    }

    func testPackingTwiceGivesIdenticalBytes() async throws {
        for (codec, _, _) in codecs {
            let first = try await packToMemory(fixtures.tree, compressor: codec)
            let second = try await packToMemory(fixtures.tree, compressor: codec)
            XCTAssertEqual(first, second, codec.name)
        }
    }

    func testXzUsesCheckCRC32() async throws {
        let dir = try makeTemporaryDirectory(self)
        try writeFile(try await packToMemory(fixtures.tree, compressor: XzCompressor()), to: dir + "/a.xz")
        let listing = try shellString("xz --robot --list -v \(dir)/a.xz")
        XCTAssertTrue(listing.contains("CRC32"), listing)
        XCTAssertFalse(listing.contains("CRC64"), listing)
    }

    func testLevelsAreValidatedPerCodec() throws {
        XCTAssertThrowsError(try ZstdCompressor().validatedLevel(20))
        XCTAssertThrowsError(try ZstdCompressor().validatedLevel(0))
        XCTAssertEqual(try ZstdCompressor().validatedLevel(19), 19)
        XCTAssertThrowsError(try XzCompressor().validatedLevel(10))
        XCTAssertEqual(try XzCompressor().validatedLevel(0), 0)
        XCTAssertThrowsError(try GzipCompressor().validatedLevel(0))
        XCTAssertEqual(try GzipCompressor().validatedLevel(nil), 6)
        XCTAssertEqual(try XzCompressor().validatedLevel(nil), 6)
        XCTAssertEqual(try ZstdCompressor().validatedLevel(nil), 10)
    }

    func testLargeInputsStayKernelReadable() throws {
        // 40 MiB of mixed data: xz's threaded encoder, zstd's context reuse across archives.
        var input = [UInt8](repeating: 0, count: 40 << 20)
        var seed: UInt64 = 42
        for i in stride(from: 0, to: input.count, by: 8) {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            input[i] = UInt8(truncatingIfNeeded: seed >> 60)
        }
        var writer = NewcWriter(sink: MemorySink())
        try writer.appendDirectory(Array("nix/store/big".utf8), mode: 0o555)
        try writer.appendFile(Array("nix/store/big/data".utf8), mode: 0o444, contents: input)
        let archive = try writer.finish().bytes
        for codec in [ZstdCompressor(), XzCompressor(), ZstdCompressor()] as [any Compressor] {
            let encoder = try codec.makeEncoder(level: codec.name == "xz" ? 1 : 3, inputSize: UInt64(archive.count))
            var sink = CompressingSink(encoder: encoder, output: MemorySink())
            try archive.withUnsafeBytes { try sink.write($0) }
            let compressed = try sink.finish().bytes
            let parsed = try KernelInitramfs.parse(compressed, existingDirectories: leaderDirectories)
            XCTAssertEqual(parsed.tree["nix/store/big/data"]?.data, input, codec.name)
        }
    }
}

/// Names inside the initrd, spelled out independently of the code under test.
enum InitrdLayoutNames {
    static func registration(_ path: StorePath) -> [UInt8] {
        Array("nix/.nix-netboot-serve-db/registration/\(path.name)".utf8)
    }
}
