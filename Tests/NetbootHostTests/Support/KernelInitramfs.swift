/// An initramfs blob as the Linux kernel unpacks it (`init/initramfs.c`, `unpack_to_rootfs`), for
/// tests that must check our archives the way a booting kernel sees them.
///
/// The kernel is lenient where a lenient reader would hide bugs: it skips entries whose parent is
/// missing, ignores short or unterminated archives, and silently drops what it cannot create. This
/// reader follows the kernel's rules for *what* ends up where (alignment, member boundaries, hard
/// links, overwrites) but throws a ``KernelInitramfsError`` wherever the kernel would fail or would
/// quietly lose something. It is stricter than the kernel in two documented ways: every archive
/// must end with `TRAILER!!!` (the kernel only needs an entry boundary), and odd names (`a//b`,
/// `../x`, `/abs`) are rejected.
struct KernelInitramfs {
    /// The compressions this reader unpacks (the ones our server writes).
    enum Compression: String, Sendable {
        case gzip, xz, zstd
    }

    /// One top-level piece of the blob: an uncompressed newc archive (from its first header to the
    /// end of its trailer's padding), or one compressed member (a gzip member, xz stream or zstd frame).
    struct Member: Equatable, Sendable {
        var offset: Int
        var length: Int
        /// `nil` for an uncompressed archive.
        var compression: Compression?
    }

    /// One newc entry, with the header fields the kernel uses.
    struct Entry: Equatable, Sendable {
        /// The name exactly as stored (without its NUL), e.g. `./nix/store`.
        var name: [UInt8]
        /// The path the kernel creates, relative to the root: `.` is `""`, a leading `./` is dropped.
        var path: String
        var mode: UInt32
        var uid: UInt32
        var gid: UInt32
        var nlink: UInt32
        var ino: UInt32
        var mtime: UInt32
        var devMajor: UInt32
        var devMinor: UInt32
        /// File contents, or a symlink's target (without NUL). Empty for directories.
        var data: [UInt8]
        var rdevMajor: UInt32 = 0
        var rdevMinor: UInt32 = 0

        /// `mode & S_IFMT`.
        var fileType: UInt32 { mode & KernelInitramfs.typeMask }
        /// `mode & 07777`.
        var permissions: UInt32 { mode & 0o7777 }
        var isDirectory: Bool { fileType == KernelInitramfs.typeDirectory }
        var isRegular: Bool { fileType == KernelInitramfs.typeRegular }
        var isSymlink: Bool { fileType == KernelInitramfs.typeSymlink }
    }

    /// The top-level pieces, in blob order.
    var members: [Member]
    /// Every entry the kernel creates, in unpack order, as stored in the archive (trailers excluded).
    var entries: [Entry]
    /// The final state by path after all members. Later entries replace earlier ones as the kernel's
    /// `clean_path` + create does; hard-linked paths share mode, owner, mtime and data.
    var tree: [String: Entry]

    /// Parses `bytes` like the kernel does.
    ///
    /// - Parameter existingDirectories: directories assumed to exist before the blob is unpacked
    ///   (e.g. `["nix", "nix/store"]`), to check a single archive without the leader. The root
    ///   (`""`) always exists.
    static func parse(_ bytes: [UInt8], existingDirectories: Set<String> = []) throws -> KernelInitramfs {
        var unpacker = Unpacker(existingDirectories: existingDirectories)
        try unpacker.unpack(bytes)
        return unpacker.result()
    }

    // MARK: - Constants (from <linux/stat.h> and init/initramfs.c)

    static let typeMask: UInt32 = 0o170000
    static let typeSocket: UInt32 = 0o140000
    static let typeSymlink: UInt32 = 0o120000
    static let typeRegular: UInt32 = 0o100000
    static let typeBlockDevice: UInt32 = 0o060000
    static let typeDirectory: UInt32 = 0o040000
    static let typeCharDevice: UInt32 = 0o020000
    static let typeFIFO: UInt32 = 0o010000
    /// `PATH_MAX`: the longest name (with its NUL) and symlink target the kernel accepts.
    static let pathMax = 4096
    static let headerLength = 110
}

/// A reason the kernel would refuse the blob, or would silently unpack something other than what
/// the archive says. Says what went wrong and where.
struct KernelInitramfsError: Error, CustomStringConvertible {
    /// What is wrong.
    var message: String
    /// Offset in the blob: of the problem itself, or — inside a compressed member — of that member.
    var offset: Int
    /// Set when the problem is inside a compressed member.
    var compression: KernelInitramfs.Compression?
    /// Set when the problem is inside a compressed member: offset in its decompressed bytes.
    var decompressedOffset: Int?

    var description: String {
        if let compression, let decompressedOffset {
            return "initramfs offset \(offset) (\(compression.rawValue) member), decompressed offset \(decompressedOffset): \(message)"
        }
        return "initramfs offset \(offset): \(message)"
    }
}

// MARK: - The unpacker

/// Where the bytes being parsed come from: the blob itself, or one compressed member's output.
private struct Source {
    var memberOffset: Int
    var compression: KernelInitramfs.Compression?

    static let blob = Source(memberOffset: 0, compression: nil)

    var isCompressed: Bool { compression != nil }

    func error(_ message: String, at offset: Int) -> KernelInitramfsError {
        if let compression {
            return KernelInitramfsError(message: message, offset: memberOffset, compression: compression, decompressedOffset: offset)
        }
        return KernelInitramfsError(message: message, offset: offset)
    }
}

/// The kernel's model of what exists: paths pointing at inodes (so hard links share one).
private struct Inode {
    var mode: UInt32
    var uid: UInt32
    var gid: UInt32
    var mtime: UInt32
    var data: [UInt8]
}

/// The kernel's hard-link table key (`find_link`): ino, dev major, dev minor and file type.
private struct LinkKey: Hashable {
    var ino: UInt32
    var devMajor: UInt32
    var devMinor: UInt32
    var fileType: UInt32
}

/// A parsed 110-byte newc header plus its name and the extent of the whole entry.
private struct Header {
    var fields: [UInt32]
    var name: [UInt8]
    var dataStart: Int
    var dataEnd: Int
    var end: Int

    var ino: UInt32 { fields[0] }
    var mode: UInt32 { fields[1] }
    var fileSize: Int { Int(fields[6]) }
    var isTrailer: Bool { name == Array("TRAILER!!!".utf8) }

    static let fieldNames = [
        "ino", "mode", "uid", "gid", "nlink", "mtime", "filesize",
        "devmajor", "devminor", "rdevmajor", "rdevminor", "namesize", "check",
    ]
}

private struct Unpacker {
    /// The kernel's cpio state between pieces: `start` before anything was unpacked (a header is
    /// expected next), `reset` after an entry (NULs are skipped, the next header must be aligned).
    enum State { case start, reset }

    var preexisting: Set<String>
    var members: [KernelInitramfs.Member] = []
    var entries: [KernelInitramfs.Entry] = []
    var paths: [String: (entry: KernelInitramfs.Entry, inode: Int)] = [:]
    var inodes: [Inode] = []
    var links: [LinkKey: String] = [:]
    var state = State.start

    init(existingDirectories: Set<String>) {
        preexisting = existingDirectories
        preexisting.remove("")
    }

    func result() -> KernelInitramfs {
        var tree: [String: KernelInitramfs.Entry] = [:]
        for (path, record) in paths {
            var entry = record.entry
            let inode = inodes[record.inode]
            entry.mode = inode.mode
            entry.uid = inode.uid
            entry.gid = inode.gid
            entry.mtime = inode.mtime
            entry.data = inode.data
            tree[path] = entry
        }
        return KernelInitramfs(members: members, entries: entries, tree: tree)
    }

    // MARK: Top level (unpack_to_rootfs)

    mutating func unpack(_ blob: [UInt8]) throws {
        var offset = 0
        while offset < blob.count {
            let byte = blob[offset]
            if byte == UInt8(ascii: "0") && offset % 4 == 0 {
                state = .start
                let end = try readArchive(blob, from: offset, source: .blob)
                members.append(.init(offset: offset, length: end - offset, compression: nil))
                offset = try skipPadding(blob, from: end, source: .blob)
                continue
            }
            if byte == 0 {
                offset += 1
                continue
            }
            if let compression = Self.compression(at: offset, in: blob) {
                offset += try unpackMember(blob, at: offset, compression: compression)
                continue
            }
            throw Source.blob.error(Self.describeJunk(blob, at: offset), at: offset)
        }
    }

    /// The kernel's `do_reset` after an entry: skip NULs; the next non-NUL byte must be aligned.
    func skipPadding(_ bytes: [UInt8], from start: Int, source: Source) throws -> Int {
        var offset = start
        while offset < bytes.count && bytes[offset] == 0 { offset += 1 }
        if offset < bytes.count && offset % 4 != 0 {
            throw source.error(
                "broken padding: \(offset - start) NUL byte(s) after an entry or trailer leave the next byte "
                    + "(0x\(Self.hex(bytes[offset]))) at offset % 4 == \(offset % 4); the kernel requires 4-byte alignment here",
                at: offset)
        }
        return offset
    }

    static func compression(at offset: Int, in bytes: [UInt8]) -> KernelInitramfs.Compression? {
        func has(_ magic: [UInt8]) -> Bool {
            offset + magic.count <= bytes.count && bytes[offset..<offset + magic.count].elementsEqual(magic)
        }
        if has([0x1F, 0x8B]) { return .gzip }
        if has([0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]) { return .xz }
        if has([0x28, 0xB5, 0x2F, 0xFD]) { return .zstd }
        return nil
    }

    static func describeJunk(_ bytes: [UInt8], at offset: Int) -> String {
        func has(_ magic: [UInt8]) -> Bool {
            offset + magic.count <= bytes.count && bytes[offset..<offset + magic.count].elementsEqual(magic)
        }
        if has(Array("0707".utf8)) {
            return "newc archive at unaligned offset (offset % 4 == \(offset % 4)); the kernel only "
                + "recognises uncompressed archives at multiples of 4 and reports \"invalid magic at start of compressed archive\""
        }
        let others: [(String, [UInt8])] = [
            ("bzip2", Array("BZh".utf8)), ("lzma", [0x5D, 0x00, 0x00]), ("lzo", [0x89, 0x4C, 0x5A, 0x4F]),
            ("lz4", [0x02, 0x21, 0x4C, 0x18]), ("old gzip", [0x1F, 0x9E]),
        ]
        for (name, magic) in others where has(magic) {
            return "\(name)-compressed member: not something this reader (or our server) handles"
        }
        let shown = bytes[offset..<min(offset + 8, bytes.count)].map(hex).joined(separator: " ")
        return "junk: bytes \(shown) are neither NUL padding, a newc archive at a multiple of 4, nor a gzip/xz/zstd member"
    }

    static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
    }

    // MARK: Compressed members (decompress + flush_buffer)

    /// Unpacks one compressed member; returns how many blob bytes it used.
    mutating func unpackMember(_ blob: [UInt8], at offset: Int, compression: KernelInitramfs.Compression) throws -> Int {
        let here = Source.blob
        try Self.checkKernelAccepts(blob, at: offset, compression: compression)
        let decoded: StreamDecoders.Decoded
        do {
            switch compression {
            case .gzip: decoded = try StreamDecoders.gunzipMember(blob, at: offset)
            case .xz: decoded = try StreamDecoders.unxzStream(blob, at: offset)
            case .zstd: decoded = try StreamDecoders.unzstdFrame(blob, at: offset)
            }
        } catch {
            throw here.error("\(compression.rawValue) member does not decompress: \(error.description)", at: offset)
        }

        let source = Source(memberOffset: offset, compression: compression)
        let output = decoded.output
        var position = 0
        var archives = 0
        while position < output.count {
            if output[position] == 0 {
                if state == .start {
                    // Nothing was unpacked yet, so the kernel expects a header right here.
                    throw source.error("no cpio magic: the first member's data starts with NUL where the kernel expects a header", at: position)
                }
                position = try skipPadding(output, from: position, source: source)
                continue
            }
            if output[position] != UInt8(ascii: "0") {
                throw source.error(
                    "junk in compressed archive: byte 0x\(Self.hex(output[position])) where a newc header or NUL padding must be "
                        + "(the kernel reports \"junk within compressed archive\")",
                    at: position)
            }
            state = .start
            position = try readArchive(output, from: position, source: source)
            archives += 1
        }
        if archives == 0 {
            throw source.error("junk in compressed archive: the member holds no newc archive", at: 0)
        }
        members.append(.init(offset: offset, length: decoded.consumed, compression: compression))
        return decoded.consumed
    }

    /// Header features the kernel's decompressors refuse although the reference tools accept them.
    static func checkKernelAccepts(_ blob: [UInt8], at offset: Int, compression: KernelInitramfs.Compression) throws {
        switch compression {
        case .gzip:
            // lib/decompress_inflate.c: method must be 8; it skips only FNAME, so FEXTRA, FCOMMENT
            // and FHCRC would be read as deflate data.
            guard offset + 10 <= blob.count else { return }  // the decoder reports truncation
            if blob[offset + 2] != 8 {
                throw Source.blob.error("gzip member with compression method \(blob[offset + 2]); the kernel needs 8 (deflate)", at: offset)
            }
            let unsupported = blob[offset + 3] & 0x16
            if unsupported != 0 {
                throw Source.blob.error(
                    "gzip header flags 0x\(hex(blob[offset + 3])) include FHCRC/FEXTRA/FCOMMENT, which the kernel cannot skip (only FNAME)",
                    at: offset)
            }
        case .xz:
            // The kernel's xz decoder verifies CRC32 or no check; CRC64/SHA-256 make it refuse the stream.
            guard offset + 8 <= blob.count else { return }
            let check = blob[offset + 7] & 0x0F
            if blob[offset + 6] == 0 && check != 0 && check != 1 {
                let name = [4: "CRC64", 10: "SHA-256"][Int(check)] ?? "check id \(check)"
                throw Source.blob.error("xz stream uses \(name); the kernel only accepts CRC32 or none (xz --check=crc32)", at: offset)
            }
        case .zstd:
            break
        }
    }

    // MARK: newc archives (the cpio state machine)

    /// Reads one archive starting with the header at `start`, through its `TRAILER!!!` entry and
    /// that entry's padding; returns the offset just past it. In a compressed member the data may
    /// also end after any complete entry: the kernel's parser is back in its reset state there
    /// (`do_reset`), so `unpack_to_rootfs` accepts the end of the member, and the next member goes
    /// on with the same archive (hard-link table included).
    mutating func readArchive(_ bytes: [UInt8], from start: Int, source: Source) throws -> Int {
        var offset = start
        var lastName = "(none)"
        while true {
            let header = try readHeader(bytes, at: offset, source: source, archiveStart: start)
            if header.isTrailer {
                if header.fileSize != 0 {
                    throw source.error("TRAILER!!! with filesize \(header.fileSize): the kernel would skip it instead of ending the archive", at: offset)
                }
                links.removeAll()  // free_hash()
                state = .reset
                return header.end
            }
            try create(header, bytes: bytes, at: offset, source: source)
            lastName = String(decoding: header.name, as: UTF8.self)
            state = .reset
            offset = try skipPadding(bytes, from: header.end, source: source)
            if offset == bytes.count && source.isCompressed { return offset }
            if offset == bytes.count {
                throw source.error(
                    (source.isCompressed ? "junk in compressed archive: the member's data ends" : "truncated archive: the blob ends")
                        + " inside the archive that starts at \(start), after entry '\(lastName)' (no TRAILER!!!)",
                    at: offset)
            }
            if bytes[offset] != UInt8(ascii: "0") {
                throw source.error(
                    (source.isCompressed ? "junk in compressed archive: " : "")
                        + "byte 0x\(Self.hex(bytes[offset])) inside the archive that starts at \(start), after entry '\(lastName)'; "
                        + "the archive has no TRAILER!!! before it",
                    at: offset)
            }
        }
    }

    func readHeader(_ bytes: [UInt8], at offset: Int, source: Source, archiveStart: Int) throws -> Header {
        func truncated(_ what: String) -> KernelInitramfsError {
            source.error(
                (source.isCompressed ? "junk in compressed archive: the member's data ends" : "truncated archive: the blob ends")
                    + " inside \(what) (archive starts at \(archiveStart))",
                at: offset)
        }
        let headerLength = KernelInitramfs.headerLength
        guard offset + headerLength <= bytes.count else { throw truncated("a newc header") }
        let magic = String(decoding: bytes[offset..<offset + 6], as: UTF8.self)
        switch magic {
        case "070701":
            break
        case "070702":
            throw source.error("newc-with-CRC header (070702); we only write 070701 (cpio -H newc)", at: offset)
        case "070707":
            throw source.error("old portable (odc) cpio header 070707; the kernel says \"incorrect cpio method used: use -H newc option\"", at: offset)
        default:
            throw source.error("no cpio magic: header starts with \(bytes[offset..<offset + 6].map(Self.hex).joined(separator: " "))", at: offset)
        }
        var fields: [UInt32] = []
        fields.reserveCapacity(13)
        for index in 0..<13 {
            var value: UInt32 = 0
            for digitOffset in offset + 6 + index * 8..<offset + 6 + index * 8 + 8 {
                let digit: UInt32
                switch bytes[digitOffset] {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(bytes[digitOffset] - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(bytes[digitOffset] - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(bytes[digitOffset] - UInt8(ascii: "A") + 10)
                default:
                    throw source.error("header field \(Header.fieldNames[index]) is not 8 hex digits", at: digitOffset)
                }
                value = value << 4 | digit
            }
            fields.append(value)
        }
        let nameSize = Int(fields[11])
        if nameSize == 0 {
            throw source.error("namesize 0 (the name needs at least its NUL); the kernel would skip the entry", at: offset)
        }
        if nameSize > KernelInitramfs.pathMax {
            throw source.error("name length \(nameSize) > \(KernelInitramfs.pathMax) (PATH_MAX); the kernel would skip the entry", at: offset)
        }
        let nameStart = offset + headerLength
        guard nameStart + nameSize <= bytes.count else { throw truncated("a name") }
        let name = Array(bytes[nameStart..<nameStart + nameSize - 1])
        if bytes[nameStart + nameSize - 1] != 0 {
            throw source.error("name is not NUL-terminated within namesize \(nameSize)", at: nameStart)
        }
        if name.contains(0) {
            throw source.error("name contains a NUL before its end (namesize \(nameSize))", at: nameStart)
        }
        let dataStart = offset + Self.align4(headerLength + nameSize)
        let dataEnd = dataStart + Int(fields[6])
        let end = offset + Self.align4(dataEnd - offset)
        guard end <= bytes.count else {
            throw truncated("the data (or its padding) of '\(String(decoding: name, as: UTF8.self))'")
        }
        return Header(fields: fields, name: name, dataStart: dataStart, dataEnd: dataEnd, end: end)
    }

    static func align4(_ value: Int) -> Int { (value + 3) & ~3 }

    // MARK: Creating entries (do_name, do_copy, do_symlink)

    mutating func create(_ header: Header, bytes: [UInt8], at offset: Int, source: Source) throws {
        let displayName = String(decoding: header.name, as: UTF8.self)
        func fail(_ message: String) -> KernelInitramfsError {
            source.error("'\(displayName)': \(message)", at: offset)
        }
        let path = try Self.path(for: header.name) { fail($0) }
        let fields = header.fields
        let data = Array(bytes[header.dataStart..<header.dataEnd])
        let entry = KernelInitramfs.Entry(
            name: header.name, path: path, mode: fields[1], uid: fields[2], gid: fields[3], nlink: fields[4],
            ino: fields[0], mtime: fields[5], devMajor: fields[7], devMinor: fields[8], data: data,
            rdevMajor: fields[9], rdevMinor: fields[10])
        let type = entry.fileType

        switch type {
        case KernelInitramfs.typeRegular, KernelInitramfs.typeDirectory, KernelInitramfs.typeSymlink,
            KernelInitramfs.typeCharDevice, KernelInitramfs.typeBlockDevice, KernelInitramfs.typeFIFO,
            KernelInitramfs.typeSocket:
            break
        default:
            throw fail("unknown file type in mode 0o\(String(entry.mode, radix: 8)); the kernel creates nothing")
        }
        if type == KernelInitramfs.typeSymlink {
            if data.isEmpty { throw fail("symlink with an empty target; the kernel's symlink() fails silently") }
            if data.count > KernelInitramfs.pathMax { throw fail("symlink target of \(data.count) bytes > PATH_MAX; the kernel skips it") }
            if data.contains(0) { throw fail("symlink target contains NUL; the kernel would cut it there") }
        } else if type != KernelInitramfs.typeRegular && !data.isEmpty {
            throw fail("non-regular entry with \(data.count) bytes of data; the kernel skips it entirely")
        }

        // Parents before children: the kernel skips an entry whose parent is missing, silently.
        if path.isEmpty {
            if type != KernelInitramfs.typeDirectory { throw fail("the root ('.') must be a directory") }
        } else {
            let parent = Self.parent(of: path)
            switch kind(of: parent) {
            case nil:
                throw fail("missing parent '\(parent)': no earlier entry created it (the kernel silently skips this entry)")
            case KernelInitramfs.typeDirectory:
                break
            case let other?:
                throw fail("parent '\(parent)' is not a directory (mode type 0o\(String(other, radix: 8)))")
            }
        }

        switch type {
        case KernelInitramfs.typeRegular:
            try clean(path, for: type, fail: fail)
            var target: Int?
            if entry.nlink >= 2 {
                let key = LinkKey(ino: entry.ino, devMajor: entry.devMajor, devMinor: entry.devMinor, fileType: type)
                if let first = links[key] {
                    try clean(path, for: 0, fail: fail)
                    guard let record = paths[first] else {
                        throw fail("hard link to '\(first)' (same ino/dev) which no longer exists; the kernel's link() fails silently")
                    }
                    target = record.inode
                } else {
                    links[key] = path
                }
            }
            let inode: Int
            if let target {
                // Linked: open without O_TRUNC, truncate to filesize only if it is not 0, write the data.
                inode = target
                if !data.isEmpty { inodes[inode].data = data }
            } else if let existing = paths[path] {
                // Same type kept by clean_path: O_TRUNC rewrites the existing inode (and its other links).
                inode = existing.inode
                inodes[inode].data = data
            } else {
                inode = newInode(entry)
            }
            inodes[inode].mode = entry.mode
            inodes[inode].uid = entry.uid
            inodes[inode].gid = entry.gid
            inodes[inode].mtime = entry.mtime
            paths[path] = (entry, inode)

        case KernelInitramfs.typeDirectory:
            try clean(path, for: type, fail: fail)
            if let existing = paths[path] {
                // mkdir fails with EEXIST; chown and chmod still apply.
                inodes[existing.inode].mode = entry.mode
                inodes[existing.inode].uid = entry.uid
                inodes[existing.inode].gid = entry.gid
                inodes[existing.inode].mtime = entry.mtime
                paths[path] = (entry, existing.inode)
            } else {
                preexisting.remove(path)
                paths[path] = (entry, newInode(entry))
            }

        case KernelInitramfs.typeSymlink:
            try clean(path, for: 0, fail: fail)
            paths[path] = (entry, newInode(entry))

        default:  // devices, FIFOs, sockets
            try clean(path, for: type, fail: fail)
            if entry.nlink >= 2 {
                let key = LinkKey(ino: entry.ino, devMajor: entry.devMajor, devMinor: entry.devMinor, fileType: type)
                if let first = links[key] {
                    try clean(path, for: 0, fail: fail)
                    guard let record = paths[first] else {
                        throw fail("hard link to '\(first)' (same ino/dev) which no longer exists; the kernel's link() fails silently")
                    }
                    paths[path] = (entry, record.inode)
                    entries.append(entry)
                    return
                }
                links[key] = path
            }
            if let existing = paths[path] {
                // mknod fails with EEXIST; chown and chmod apply to what is there.
                inodes[existing.inode].mode = entry.mode
                inodes[existing.inode].uid = entry.uid
                inodes[existing.inode].gid = entry.gid
                inodes[existing.inode].mtime = entry.mtime
                paths[path] = (entry, existing.inode)
            } else {
                paths[path] = (entry, newInode(entry))
            }
        }
        entries.append(entry)
    }

    mutating func newInode(_ entry: KernelInitramfs.Entry) -> Int {
        inodes.append(Inode(mode: entry.mode, uid: entry.uid, gid: entry.gid, mtime: entry.mtime, data: entry.data))
        return inodes.count - 1
    }

    /// The file type at `path`, or nil if nothing is there.
    func kind(of path: String) -> UInt32? {
        if path.isEmpty { return KernelInitramfs.typeDirectory }
        if let record = paths[path] { return inodes[record.inode].mode & KernelInitramfs.typeMask }
        if preexisting.contains(path) { return KernelInitramfs.typeDirectory }
        return nil
    }

    /// The kernel's `clean_path`: if something of another type (any type when `type` is 0) is at
    /// `path`, remove it — `rmdir` for a directory, which fails unless it is empty.
    mutating func clean(_ path: String, for type: UInt32, fail: (String) -> KernelInitramfsError) throws {
        guard let existing = kind(of: path), existing != type else { return }
        if existing == KernelInitramfs.typeDirectory {
            if path.isEmpty { throw fail("would replace the root directory") }
            let prefix = path + "/"
            if paths.keys.contains(where: { $0.hasPrefix(prefix) }) || preexisting.contains(where: { $0.hasPrefix(prefix) }) {
                throw fail("replaces non-empty directory '\(path)'; the kernel's rmdir fails and the entry is silently lost")
            }
            preexisting.remove(path)
        }
        paths[path] = nil
    }

    /// Maps a stored name to the path the kernel creates: `.` is the root `""`, a leading `./` is dropped.
    static func path(for name: [UInt8], fail: (String) -> KernelInitramfsError) throws -> String {
        if name == [UInt8(ascii: ".")] { return "" }
        var rest = name[...]
        if rest.starts(with: [UInt8(ascii: "."), UInt8(ascii: "/")]) { rest = rest.dropFirst(2) }
        let components = rest.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        for component in components {
            if component.isEmpty || component.elementsEqual([UInt8(ascii: ".")]) || component.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                throw fail("unusual name (empty, '.', or '..' component, or absolute); not something our archives should contain")
            }
        }
        return String(decoding: rest, as: UTF8.self)
    }

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return String(path[..<slash])
    }
}
