#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Writes one store path into a newc archive, as `nix/store/NAME/…` entries.
///
/// The tree is read with `lstat`/`readdir`: every entry in byte-wise name order within its directory,
/// parents before children, modes from disk, symlink targets as data, empty files and directories
/// kept. Anything unreadable or of a type a store cannot hold is an error, never skipped.
package struct StorePathArchiver {
    /// One entry found by the walk, before any data is read.
    package struct Entry: Equatable, Sendable {
        package enum Kind: Equatable, Sendable { case directory, regular(size: UInt64), symlink(target: [UInt8]) }
        /// The absolute path on disk.
        package var diskPath: [UInt8]
        /// The archive name (`nix/store/NAME/...`).
        package var archiveName: [UInt8]
        package var mode: UInt32
        package var kind: Kind

        package init(diskPath: [UInt8], archiveName: [UInt8], mode: UInt32, kind: Kind) {
            self.diskPath = diskPath
            self.archiveName = archiveName
            self.mode = mode
            self.kind = kind
        }

        /// The bytes this entry takes in an archive: header, name, data and their padding.
        package var archiveSize: UInt64 {
            switch kind {
            case .directory: StorePathArchiver.entrySize(nameLength: archiveName.count, dataSize: 0)
            case .regular(let size): StorePathArchiver.entrySize(nameLength: archiveName.count, dataSize: size)
            case .symlink(let target): StorePathArchiver.entrySize(nameLength: archiveName.count, dataSize: UInt64(target.count))
            }
        }
    }

    /// The chunk size for reading file data.
    static let readChunk = 1 << 20

    /// Lists every entry under `root` in archive order.
    package static func walk(_ root: StorePath) throws -> [Entry] {
        try walk(diskPath: root.absolutePath, archiveName: String(root.absolutePath.dropFirst()))  // "nix/store/NAME"
    }

    /// Lists every entry under the file or directory `diskPath`, naming the root `archiveName`.
    package static func walk(diskPath: String, archiveName: String) throws -> [Entry] {
        var entries: [Entry] = []
        try visit(diskPath: Array(diskPath.utf8), archiveName: Array(archiveName.utf8), into: &entries)
        return entries
    }

    /// The bytes one entry with a name of `nameLength` bytes and `dataSize` bytes of data takes in a
    /// newc archive, paddings included.
    package static func entrySize(nameLength: Int, dataSize: UInt64) -> UInt64 {
        let header = NewcHeader.size + nameLength + 1
        return UInt64(header + NewcHeader.padding(after: header)) + dataSize + UInt64(NewcHeader.padding(after: Int(dataSize % 4)))
    }

    /// The bytes of the trailer entry.
    package static var trailerSize: UInt64 { entrySize(nameLength: NewcHeader.trailerName.count, dataSize: 0) }

    /// The exact length of the archive ``write(_:into:)`` makes of `entries`, plus `files` more regular
    /// files of the given name length and size, plus the trailer.
    package static func archiveSize(of entries: some Collection<Entry>, plusFiles files: [(nameLength: Int, size: UInt64)] = []) -> UInt64 {
        var total: UInt64 = 0
        for entry in entries { total += entry.archiveSize }
        for file in files { total += entrySize(nameLength: file.nameLength, dataSize: file.size) }
        return total + trailerSize
    }

    /// Writes `entries` (from ``walk(_:)``) into `writer`, reading each file once.
    package static func write<Sink>(_ entries: some Collection<Entry>, into writer: inout NewcWriter<Sink>) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: readChunk, alignment: 16)
        defer { buffer.deallocate() }
        for entry in entries {
            switch entry.kind {
            case .directory:
                try writer.appendDirectory(entry.archiveName, mode: entry.mode)
            case .symlink(let target):
                try writer.appendSymlink(entry.archiveName, target: target)
            case .regular(let size):
                try writer.beginFile(entry.archiveName, mode: entry.mode, size: size)
                try copyFile(entry, size: size, buffer: buffer, into: &writer)
            }
        }
    }

    private static func copyFile<Sink>(
        _ entry: Entry, size: UInt64, buffer: UnsafeMutableRawBufferPointer, into writer: inout NewcWriter<Sink>
    ) throws {
        let path = String(decoding: entry.diskPath, as: UTF8.self)
        let fd = entry.diskPath.withCString { open($0, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) }
        guard fd >= 0 else { throw ArchiveError.unreadable(path: path, operation: "open", errno: errno) }
        defer { close(fd) }
        var remaining = size
        while remaining > 0 {
            let want = Int(min(UInt64(buffer.count), remaining))
            let got = read(fd, buffer.baseAddress, want)
            if got < 0 {
                if errno == EINTR { continue }
                throw ArchiveError.unreadable(path: path, operation: "read", errno: errno)
            }
            guard got > 0 else { throw ArchiveError.sizeChanged(expected: remaining, actual: 0) }
            try writer.appendFileData(UnsafeRawBufferPointer(rebasing: buffer[0..<got]))
            remaining -= UInt64(got)
        }
        // The store is immutable; a file that grew under us is an error, not a silent truncation.
        var probe: UInt8 = 0
        if read(fd, &probe, 1) > 0 { throw ArchiveError.sizeChanged(expected: 0, actual: 1) }
    }

    private static func visit(diskPath: [UInt8], archiveName: [UInt8], into entries: inout [Entry]) throws {
        let path = String(decoding: diskPath, as: UTF8.self)
        var info = stat()
        guard diskPath.withCString({ lstat($0, &info) }) == 0 else {
            throw ArchiveError.unreadable(path: path, operation: "lstat", errno: errno)
        }
        let type = info.st_mode & S_IFMT
        let mode = UInt32(info.st_mode & 0o7777)
        switch type {
        case S_IFREG:
            entries.append(Entry(diskPath: diskPath, archiveName: archiveName, mode: mode, kind: .regular(size: UInt64(info.st_size))))
        case S_IFLNK:
            entries.append(Entry(diskPath: diskPath, archiveName: archiveName, mode: mode, kind: .symlink(target: try readLink(diskPath))))
        case S_IFDIR:
            entries.append(Entry(diskPath: diskPath, archiveName: archiveName, mode: mode, kind: .directory))
            for child in try listDirectory(diskPath) {
                try visit(diskPath: diskPath + [UInt8(ascii: "/")] + child,
                          archiveName: archiveName + [UInt8(ascii: "/")] + child, into: &entries)
            }
        default:
            throw ArchiveError.unsupportedFileType(path: path, mode: UInt32(info.st_mode))
        }
    }

    private static func readLink(_ diskPath: [UInt8]) throws -> [UInt8] {
        var capacity = 256
        while true {
            var target = [UInt8](repeating: 0, count: capacity)
            let count = diskPath.withCString { p in target.withUnsafeMutableBytes { readlink(p, $0.baseAddress!.assumingMemoryBound(to: CChar.self), capacity) } }
            guard count >= 0 else {
                throw ArchiveError.unreadable(path: String(decoding: diskPath, as: UTF8.self), operation: "readlink", errno: errno)
            }
            if count < capacity { return Array(target[0..<count]) }
            capacity *= 4
        }
    }

    /// The names in a directory, without `.` and `..`, sorted byte-wise.
    private static func listDirectory(_ diskPath: [UInt8]) throws -> [[UInt8]] {
        guard let dir = diskPath.withCString({ opendir($0) }) else {
            throw ArchiveError.unreadable(path: String(decoding: diskPath, as: UTF8.self), operation: "open directory", errno: errno)
        }
        defer { closedir(dir) }
        var names: [[UInt8]] = []
        while true {
            errno = 0
            guard let entry = readdir(dir) else {
                if errno != 0 {
                    throw ArchiveError.unreadable(path: String(decoding: diskPath, as: UTF8.self), operation: "read directory", errno: errno)
                }
                break
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                Array(raw.prefix(while: { $0 != 0 }))
            }
            if name == [UInt8(ascii: ".")] || name == [UInt8(ascii: "."), UInt8(ascii: ".")] { continue }
            names.append(name)
        }
        return names.sorted { $0.lexicographicallyPrecedes($1) }
    }
}

extension Array where Element == UInt8 {
    /// Calls `body` with a NUL-terminated copy of the bytes.
    func withCString<R>(_ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        try (self + [0]).withUnsafeBufferPointer { buffer in
            try buffer.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) }
        }
    }
}
