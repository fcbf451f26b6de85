import Foundation
import XCTest

/// Tests of the test-support reader ``KernelInitramfs`` (and ``StreamDecoders``), against archives
/// made by the real tools: GNU cpio, gzip, xz and zstd.
final class KernelInitramfsTests: XCTestCase {
    // MARK: Uncompressed archives

    func testUncompressedArchiveMatchesTheTree() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.sh("""
            mkdir -p t/dir/sub t/empty
            printf 'hello\\n' > t/dir/file
            printf '#!/bin/sh\\n' > t/dir/tool
            ln -s file t/dir/link
            chmod 0644 t/dir/file && chmod 0755 t/dir/tool && chmod 0750 t/dir && chmod 0700 t/empty
            find t -exec touch -h -d @1 {} +
            touch -d @1234567 t/dir/tool
            """)
        let blob = try scratch.archive(of: "t")
        let parsed = try KernelInitramfs.parse(blob)

        XCTAssertEqual(parsed.entries.map(\.path), ["", "dir", "dir/file", "dir/link", "dir/sub", "dir/tool", "empty"])
        XCTAssertEqual(parsed.entries.first?.name, Array(".".utf8))
        XCTAssertEqual(parsed.entries[2].name, Array("dir/file".utf8), "GNU cpio drops the leading ./")
        XCTAssertEqual(Set(parsed.tree.keys), Set(parsed.entries.map(\.path)))

        let file = try XCTUnwrap(parsed.tree["dir/file"])
        XCTAssertTrue(file.isRegular)
        XCTAssertEqual(file.permissions, 0o644)
        XCTAssertEqual(file.data, Array("hello\n".utf8))
        XCTAssertEqual(file.uid, 0)
        XCTAssertEqual(file.gid, 0)
        XCTAssertEqual(file.mtime, 1)

        let tool = try XCTUnwrap(parsed.tree["dir/tool"])
        XCTAssertEqual(tool.mode, 0o100755)
        XCTAssertEqual(tool.mtime, 1_234_567)

        let link = try XCTUnwrap(parsed.tree["dir/link"])
        XCTAssertTrue(link.isSymlink)
        XCTAssertEqual(link.data, Array("file".utf8), "a symlink's data is its target, without NUL")

        XCTAssertEqual(parsed.tree["dir"]?.mode, 0o040750)
        XCTAssertEqual(parsed.tree["empty"]?.mode, 0o040700)
        XCTAssertEqual(parsed.tree["dir/sub"]?.isDirectory, true)
        XCTAssertEqual(parsed.tree["dir/sub"]?.data, [])

        // One member, ending after the trailer's padding; GNU cpio then pads to 512 with NULs.
        XCTAssertEqual(parsed.members.count, 1)
        let member = try XCTUnwrap(parsed.members.first)
        XCTAssertEqual(member.offset, 0)
        XCTAssertNil(member.compression)
        XCTAssertEqual(member.length % 4, 0)
        XCTAssertEqual(member.length, trailerOffset(in: blob) + 124)  // 110-byte header + "TRAILER!!!\0", padded
        XCTAssertTrue(blob[member.length...].allSatisfy { $0 == 0 })
    }

    func testUncompressedArchiveIsRecognisedOnlyAtMultiplesOfFour() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.sh("mkdir -p t/d && printf x > t/d/f")
        let archive = try scratch.archive(of: "t")

        let error = expectFailure([0, 0] + archive, containing: "unaligned")
        XCTAssertEqual(error?.offset, 2)
        XCTAssertNil(error?.compression)

        let parsed = try KernelInitramfs.parse([0, 0, 0, 0] + archive)
        XCTAssertEqual(parsed.members, [.init(offset: 4, length: parsed.members[0].length, compression: nil)])
        XCTAssertEqual(parsed.tree["d/f"]?.data, Array("x".utf8))

        // Also after a compressed member, whose end need not be aligned.
        let gzipped = try scratch.sh("cd t && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -n -c")
        let afterMember = gzipped + [UInt8](repeating: 0, count: (4 - gzipped.count % 4) % 4 + 1) + archive
        expectFailure(afterMember, containing: "unaligned")
    }

    func testUncompressedArchivesEndWithATrailerAndCompressedMembersAfterAnyCompleteEntry() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.sh("mkdir -p t/d && printf 'some data' > t/d/f")
        let archive = try scratch.archive(of: "t")
        let withoutTrailer = Array(archive[..<trailerOffset(in: archive)])
        try scratch.write(withoutTrailer, to: "cut.cpio")
        try scratch.write(archive + Array("JUNK".utf8), to: "junk.cpio")
        try scratch.write(archive, to: "whole.cpio")

        // Compressed: a member may end after any complete entry (the parser is back in its reset
        // state), and the next member goes on; one that ends inside an entry is junk.
        let cutGzip = try scratch.sh("gzip -n -c cut.cpio")
        let tail = try scratch.sh("cd t && printf 'more' > d/g && printf './d/g\\n' | cpio -o -H newc --quiet -R 0:0 | zstd -q -c")
        let joined = try KernelInitramfs.parse(cutGzip + tail)
        XCTAssertEqual(joined.members.map(\.compression), [.gzip, .zstd])
        XCTAssertEqual(joined.tree["d/f"]?.data, Array("some data".utf8))
        XCTAssertEqual(joined.tree["d/g"]?.data, Array("more".utf8))

        let midFile = try scratch.sh("head -c \(withoutTrailer.count - 3) cut.cpio | zstd -q -c")
        let error = expectFailure(midFile, containing: "junk in compressed archive")
        XCTAssertEqual(error?.offset, 0)
        XCTAssertEqual(error?.compression, .zstd)
        let midHeader = try scratch.sh("head -c \(withoutTrailer.count + 50) whole.cpio | gzip -n -c")
        expectFailure(midHeader, containing: "junk in compressed archive")

        let junkAfter = try scratch.sh("zstd -q -c junk.cpio")
        let junkError = expectFailure(junkAfter, containing: "junk in compressed archive")
        XCTAssertEqual(junkError?.decompressedOffset, archive.count)

        // Uncompressed: the blob ends, or a compressed member starts, before the trailer.
        expectFailure(withoutTrailer, containing: "no TRAILER!!!")
        expectFailure(withoutTrailer + (try scratch.sh("gzip -n -c junk.cpio")), containing: "no TRAILER!!!")

        XCTAssertNoThrow(try KernelInitramfs.parse(try scratch.sh("gzip -n -c whole.cpio")))
    }

    func testEntryWithoutItsParentIsAnError() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        // Only the file is listed: nothing creates a/ or a/b/ before it.
        let blob = try scratch.sh("""
            mkdir -p m/a/b && printf x > m/a/b/f
            cd m && printf './a/b/f\\n' | cpio -o -H newc --quiet -R 0:0
            """)
        let error = expectFailure(blob, containing: "missing parent 'a/b'")
        XCTAssertEqual(error?.offset, 0)

        let parsed = try KernelInitramfs.parse(blob, existingDirectories: ["", "a", "a/b"])
        XCTAssertEqual(parsed.entries.map(\.path), ["a/b/f"])
        XCTAssertEqual(parsed.tree["a/b/f"]?.data, Array("x".utf8))
        XCTAssertNil(parsed.tree["a"], "assumed directories are not entries")

        // A directory created by an earlier member counts as existing.
        let leader = try scratch.sh("cd m && printf '.\\n./a\\n./a/b\\n' | cpio -o -H newc --quiet -R 0:0")
        let both = try KernelInitramfs.parse(leader + blob)
        XCTAssertEqual(both.entries.map(\.path), ["", "a", "a/b", "a/b/f"])
    }

    // MARK: Concatenation

    func testConcatenatedUncompressedZstdXzAndGzipMembers() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.sh("""
            mkdir -p leader/nix/store a/nix/store/a b/nix/store/b c/nix/store/a
            printf 'from a' > a/nix/store/a/file
            printf 'only in a' > a/nix/store/a/other
            printf 'from b' > b/nix/store/b/file
            printf 'from c, longer than a' > c/nix/store/a/file
            chmod 0555 c/nix/store/a/file
            """)
        let leader = try scratch.sh("cd leader && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0")
        func member(_ dir: String, _ compressor: String) throws -> [UInt8] {
            try scratch.sh("cd \(dir) && find ./nix/store/* | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | \(compressor)")
        }
        let zstd = try member("a", "zstd -q -c -10")
        let xz = try member("b", "xz --check=crc32 -c")
        let gzip = try member("c", "gzip -n -9 -c")
        let padding: [UInt8] = [0, 0, 0]  // NULs between compressed members need no alignment
        let blob = leader + zstd + xz + padding + gzip

        let parsed = try KernelInitramfs.parse(blob)
        XCTAssertEqual(parsed.members, [
            .init(offset: 0, length: parsed.members[0].length, compression: nil),
            .init(offset: leader.count, length: zstd.count, compression: .zstd),
            .init(offset: leader.count + zstd.count, length: xz.count, compression: .xz),
            .init(offset: leader.count + zstd.count + xz.count + padding.count, length: gzip.count, compression: .gzip),
        ])
        XCTAssertEqual(parsed.entries.map(\.path), [
            "", "nix", "nix/store",
            "nix/store/a", "nix/store/a/file", "nix/store/a/other",
            "nix/store/b", "nix/store/b/file",
            "nix/store/a", "nix/store/a/file",
        ])
        // Later members overwrite earlier ones, as the kernel's O_TRUNC open does.
        XCTAssertEqual(parsed.tree["nix/store/a/file"]?.data, Array("from c, longer than a".utf8))
        XCTAssertEqual(parsed.tree["nix/store/a/file"]?.permissions, 0o555)
        XCTAssertEqual(parsed.tree["nix/store/a/other"]?.data, Array("only in a".utf8))
        XCTAssertEqual(parsed.tree["nix/store/b/file"]?.data, Array("from b".utf8))
        XCTAssertEqual(parsed.tree.count, 8)

        // Each compressed member parses on its own given the leader's directories.
        XCTAssertNoThrow(try KernelInitramfs.parse(xz, existingDirectories: ["nix", "nix/store"]))
    }

    func testPaddingBetweenMembersFollowsTheKernel() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.sh("mkdir -p t/d && printf x > t/d/f && cd t && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 > ../a.cpio")
        let archive = try scratch.read("a.cpio")
        let gzip = try scratch.sh("gzip -n -c a.cpio")
        let zstd = try scratch.sh("zstd -q -c a.cpio")

        // After an uncompressed archive the kernel skips NULs but wants the next byte aligned.
        let error = expectFailure(archive + [0, 0, 0] + gzip, containing: "broken padding")
        XCTAssertEqual(error?.offset, archive.count + 3)
        XCTAssertEqual(try KernelInitramfs.parse(archive + [0, 0, 0, 0] + gzip).members.map(\.compression), [nil, .gzip])

        // After a compressed member any number of NULs may follow.
        XCTAssertEqual(try KernelInitramfs.parse(gzip + [0] + zstd).members.map(\.compression), [.gzip, .zstd])

        // Inside a member, NULs after a trailer are fine, but not before the first header of the blob.
        let leadingNULs = try scratch.sh("{ head -c 4 /dev/zero; cat a.cpio; } | gzip -n -c")
        expectFailure(leadingNULs, containing: "no cpio magic")
        XCTAssertNoThrow(try KernelInitramfs.parse(archive + leadingNULs))
        let twoArchives = try scratch.sh("cat a.cpio a.cpio | xz --check=crc32 -c")
        XCTAssertEqual(try KernelInitramfs.parse(twoArchives).entries.count, 2 * 3)
    }

    // MARK: Hard links

    func testHardLinkedPairSharesItsData() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.sh("mkdir h && printf 'shared\\n' > h/f && ln h/f h/g")
        let parsed = try KernelInitramfs.parse(try scratch.archive(of: "h"))

        let f = try XCTUnwrap(parsed.entries.first { $0.path == "f" })
        let g = try XCTUnwrap(parsed.entries.first { $0.path == "g" })
        XCTAssertEqual(f.nlink, 2)
        XCTAssertEqual(f.ino, g.ino)
        XCTAssertEqual(f.data, [], "GNU cpio stores the data with the last link only")
        XCTAssertEqual(g.data, Array("shared\n".utf8))
        XCTAssertEqual(parsed.tree["f"]?.data, Array("shared\n".utf8))
        XCTAssertEqual(parsed.tree["g"]?.data, Array("shared\n".utf8))
    }

    func testHardLinkTableLinksWithinAnArchiveAndResetsAtTrailer() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        // Two archives of the same inode, one name each, with other contents and mode in between.
        let first = try scratch.sh("""
            mkdir k && printf one > k/f && ln k/f k/g && chmod 0644 k/f
            cd k && printf './f\\n' | cpio -o -H newc --quiet -R 0:0
            """)
        let second = try scratch.sh("""
            printf 'two!' > k/f && chmod 0600 k/f
            cd k && printf './g\\n' | cpio -o -H newc --quiet -R 0:0
            """)

        // A trailer in between: the table is reset, so g is a new file.
        let separate = try KernelInitramfs.parse(first + second)
        XCTAssertEqual(separate.tree["f"]?.data, Array("one".utf8))
        XCTAssertEqual(separate.tree["f"]?.permissions, 0o644)
        XCTAssertEqual(separate.tree["g"]?.data, Array("two!".utf8))
        XCTAssertEqual(separate.tree["g"]?.permissions, 0o600)

        // Same archive: g (same ino, nlink 2) is linked to f and its data and mode land on both.
        let joined = try KernelInitramfs.parse(Array(first[..<trailerOffset(in: first)]) + second)
        XCTAssertEqual(joined.entries.map(\.path), ["f", "g"])
        XCTAssertEqual(joined.entries.map(\.data), [Array("one".utf8), Array("two!".utf8)])
        for path in ["f", "g"] {
            XCTAssertEqual(joined.tree[path]?.data, Array("two!".utf8), path)
            XCTAssertEqual(joined.tree[path]?.mode, 0o100600, path)
        }
    }

    // MARK: Formats the kernel refuses

    func testFormatsTheKernelRefusesAreErrors() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.sh("mkdir t && printf x > t/f")
        func cpio(_ format: String) throws -> [UInt8] {
            try scratch.sh("cd t && find . | LC_ALL=C sort | cpio -o -H \(format) --quiet -R 0:0")
        }
        expectFailure(try cpio("odc"), containing: "odc")
        expectFailure(try cpio("crc"), containing: "070702")

        let crc64 = try scratch.sh("cd t && find . | LC_ALL=C sort | cpio -o -H newc --quiet | xz -c")
        let error = expectFailure(crc64, containing: "CRC64")
        XCTAssertEqual(error?.offset, 0)

        let named = try scratch.sh("cd t && find . | LC_ALL=C sort | cpio -o -H newc --quiet > ../a.cpio && cd .. && gzip -c a.cpio")
        XCTAssertEqual(named[3] & 0x08, 0x08, "gzip stores the file name")
        XCTAssertNoThrow(try KernelInitramfs.parse(named), "the kernel skips FNAME")

        let corrupt = try scratch.sh("gzip -n -c a.cpio")
        expectFailure(Array(corrupt.dropLast(12)), containing: "does not decompress")
        expectFailure(Array("hello, world".utf8), containing: "junk")
        expectFailure(Array("BZh91AY&SY".utf8), containing: "bzip2")
    }

    // MARK: Stream decoders

    func testStreamDecodersStopAtTheEndOfOneMember() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let payload = try scratch.sh("seq 1 60000 > payload && cat payload")  // larger than one output chunk
        let prefix: [UInt8] = [0xAA, 0xBB, 0xCC]
        let suffix = Array("trailing bytes".utf8)
        let cases: [(String, (([UInt8], Int) throws -> StreamDecoders.Decoded))] = [
            ("gzip -n -c payload", StreamDecoders.gunzipMember),
            ("xz --check=crc32 -c payload", StreamDecoders.unxzStream),
            ("zstd -q -c payload", StreamDecoders.unzstdFrame),
        ]
        for (command, decode) in cases {
            let member = try scratch.sh(command)
            let decoded = try decode(prefix + member + member + suffix, prefix.count)
            XCTAssertEqual(decoded.consumed, member.count, command)
            XCTAssertTrue(decoded.output == payload, command)

            XCTAssertThrowsError(try decode(prefix + member.dropLast(member.count / 2), prefix.count), command)
        }
    }

    // MARK: Helpers

    /// Asserts that parsing fails with a message containing `text`; returns the error.
    @discardableResult
    private func expectFailure(
        _ blob: [UInt8], existingDirectories: Set<String> = [], containing text: String,
        file: StaticString = #filePath, line: UInt = #line
    ) -> KernelInitramfsError? {
        do {
            let parsed = try KernelInitramfs.parse(blob, existingDirectories: existingDirectories)
            XCTFail("expected an error containing \"\(text)\", parsed \(parsed.entries.count) entries", file: file, line: line)
        } catch let error as KernelInitramfsError {
            XCTAssertTrue(error.message.contains(text), "\"\(error)\" does not contain \"\(text)\"", file: file, line: line)
            return error
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
        return nil
    }

    /// Offset of the `TRAILER!!!` header (the last header) in a newc archive.
    private func trailerOffset(in archive: [UInt8]) -> Int {
        let name = Array("TRAILER!!!".utf8)
        let start = archive.indices.reversed().first { index in
            index + name.count <= archive.count && archive[index..<index + name.count].elementsEqual(name)
        }
        return (start ?? 110) - 110
    }
}

/// A scratch directory for one test, and a way to run shell commands in it.
private struct Scratch {
    /// Where the commands run and the test's files live.
    let directory: URL
    /// Where command output is captured (outside `directory`, so `find` does not see it).
    private let captures: URL

    init() throws {
        let root = FileManager.default.temporaryDirectory.appending(path: "kernel-initramfs-\(UUID().uuidString)")
        directory = root.appending(path: "work")
        captures = root.appending(path: "captures")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: captures, withIntermediateDirectories: true)
    }

    func remove() {
        try? FileManager.default.removeItem(at: directory.deletingLastPathComponent())
    }

    /// Runs `command` with `/bin/sh -c` in the scratch directory and returns its standard output,
    /// captured in a file (not a pipe, which could fill up and deadlock). Throws if it fails.
    @discardableResult
    func sh(_ command: String) throws -> [UInt8] {
        let id = UUID().uuidString
        let stdoutURL = captures.appending(path: "\(id).out")
        let stderrURL = captures.appending(path: "\(id).err")
        guard FileManager.default.createFile(atPath: stdoutURL.path, contents: nil),
            FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        else { throw ScratchShellError(command: command, status: -1, stderr: "cannot create capture files in \(captures.path)") }
        let stdout = try FileHandle(forWritingTo: stdoutURL)
        let stderr = try FileHandle(forWritingTo: stderrURL)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        process.currentDirectoryURL = directory
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        process.waitUntilExit()
        try stdout.close()
        try stderr.close()
        defer {
            try? FileManager.default.removeItem(at: stdoutURL)
            try? FileManager.default.removeItem(at: stderrURL)
        }
        guard process.terminationStatus == 0 else {
            let message = String(decoding: (try? Data(contentsOf: stderrURL)) ?? Data(), as: UTF8.self)
            throw ScratchShellError(command: command, status: process.terminationStatus, stderr: message)
        }
        return [UInt8](try Data(contentsOf: stdoutURL))
    }

    /// A newc archive of `dir` made by GNU cpio: names sorted byte-wise, owner 0:0.
    func archive(of dir: String) throws -> [UInt8] {
        try sh("cd '\(dir)' && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0")
    }

    func write(_ bytes: [UInt8], to name: String) throws {
        try Data(bytes).write(to: directory.appending(path: name))
    }

    func read(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: directory.appending(path: name)))
    }
}

/// A shell command of a test failed.
private struct ScratchShellError: Error, CustomStringConvertible {
    var command: String
    var status: Int32
    var stderr: String
    var description: String { "`\(command)` exited with \(status): \(stderr)" }
}
