/// Where a ``NewcWriter`` sends its bytes.
package protocol ArchiveSink {
    mutating func write(_ bytes: UnsafeRawBufferPointer) throws
}

/// Collects an archive in memory (small archives: the leader, the loader, tests).
package struct MemorySink: ArchiveSink {
    package var bytes: [UInt8] = []
    package init() {}
    package mutating func write(_ bytes: UnsafeRawBufferPointer) throws { self.bytes.append(contentsOf: bytes) }
}

/// Writes a deterministic newc CPIO archive entry by entry.
///
/// Every entry gets `nlink = 1` and its own inode number, so the kernel never links two entries
/// together; ownership is root, the modification time fixed. Output is buffered and handed to the
/// sink in large chunks.
package struct NewcWriter<Sink: ArchiveSink> {
    /// The fixed modification time, as Nix uses in the store.
    package static var modificationTime: UInt32 { 1 }

    package private(set) var sink: Sink
    private var buffer: [UInt8] = []
    private var nextInode: UInt32 = 1
    private var pendingFileBytes: UInt64 = 0
    private var pendingPadding = 0
    private let flushThreshold: Int
    /// Bytes produced so far (uncompressed).
    package private(set) var bytesWritten: UInt64 = 0

    /// - Parameter firstInode: the inode number of the first entry (a member continuing an archive
    ///   cut into several starts where the previous one stopped).
    package init(sink: Sink, bufferSize: Int = 1 << 20, firstInode: UInt32 = 1) {
        self.sink = sink
        self.nextInode = firstInode
        self.flushThreshold = bufferSize
        buffer.reserveCapacity(bufferSize + 4096)
    }

    /// A directory entry.
    package mutating func appendDirectory(_ name: [UInt8], mode: UInt32, gid: UInt32 = 0) throws {
        try appendHeader(name: name, mode: (mode & 0o7777) | 0o040000, size: 0, gid: gid)
    }

    /// A symbolic link; its target is the entry's data.
    package mutating func appendSymlink(_ name: [UInt8], target: [UInt8]) throws {
        try appendHeader(name: name, mode: 0o120777, size: UInt64(target.count))
        try appendFileData(target)
    }

    /// A regular file held in memory.
    package mutating func appendFile(_ name: [UInt8], mode: UInt32, contents: [UInt8]) throws {
        try beginFile(name, mode: mode, size: UInt64(contents.count))
        try appendFileData(contents)
    }

    /// Starts a regular file of `size` bytes; its data follows through ``appendFileData(_:)-([UInt8])``.
    package mutating func beginFile(_ name: [UInt8], mode: UInt32, size: UInt64) throws {
        try appendHeader(name: name, mode: (mode & 0o7777) | 0o100000, size: size)
    }

    /// Data of the current file; the writer pads after its last byte.
    package mutating func appendFileData(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try appendFileData($0) }
    }

    package mutating func appendFileData(_ bytes: UnsafeRawBufferPointer) throws {
        guard UInt64(bytes.count) <= pendingFileBytes else {
            throw ArchiveError.sizeChanged(expected: pendingFileBytes, actual: UInt64(bytes.count))
        }
        pendingFileBytes -= UInt64(bytes.count)
        if bytes.count >= flushThreshold {
            try flush()
            try sink.write(bytes)
            bytesWritten += UInt64(bytes.count)
        } else {
            try append(bytes)
        }
        if pendingFileBytes == 0 { try appendPadding() }
    }

    /// Bytes still owed to the current file.
    package var remainingFileBytes: UInt64 { pendingFileBytes }

    /// Writes the trailer and flushes everything to the sink.
    package mutating func finish() throws -> Sink {
        try appendHeader(name: NewcHeader.trailerName, mode: 0, size: 0, isTrailer: true)
        try flush()
        return sink
    }

    /// Flushes everything to the sink without a trailer: for a member of an archive cut into
    /// several, which ends after a complete entry.
    package mutating func finishWithoutTrailer() throws -> Sink {
        guard pendingFileBytes == 0 else { throw ArchiveError.sizeChanged(expected: 0, actual: pendingFileBytes) }
        try flush()
        return sink
    }

    private mutating func appendHeader(name: [UInt8], mode: UInt32, size: UInt64, gid: UInt32 = 0, isTrailer: Bool = false) throws {
        guard pendingFileBytes == 0 else { throw ArchiveError.sizeChanged(expected: 0, actual: pendingFileBytes) }
        guard size <= UInt64(UInt32.max) else { throw ArchiveError.fileTooLarge(name: name, size: size) }
        guard name.count + 1 <= NewcHeader.maximumNameSize else { throw ArchiveError.nameTooLong(name: name) }
        guard !name.contains(0) else { throw ArchiveError.nameContainsNul(name: name) }
        var header = NewcHeader()
        if !isTrailer {
            header.inode = nextInode
            nextInode += 1
            header.linkCount = 1
            header.modificationTime = Self.modificationTime
        } else {
            header.linkCount = 1
        }
        header.mode = mode
        header.gid = gid
        header.fileSize = UInt32(size)
        header.nameSize = UInt32(name.count + 1)
        let before = buffer.count
        header.encode(into: &buffer)
        buffer.append(contentsOf: name)
        buffer.append(0)
        let headerLength = buffer.count - before
        buffer.append(contentsOf: repeatElement(0, count: NewcHeader.padding(after: headerLength)))
        bytesWritten += UInt64(buffer.count - before)
        pendingFileBytes = size
        pendingPadding = NewcHeader.padding(after: Int(size % 4))
        if buffer.count >= flushThreshold { try flush() }
    }

    private mutating func appendPadding() throws {
        if pendingPadding > 0 {
            buffer.append(contentsOf: repeatElement(0, count: pendingPadding))
            bytesWritten += UInt64(pendingPadding)
            pendingPadding = 0
        }
        if buffer.count >= flushThreshold { try flush() }
    }

    private mutating func append(_ bytes: UnsafeRawBufferPointer) throws {
        buffer.append(contentsOf: bytes)
        bytesWritten += UInt64(bytes.count)
        if buffer.count >= flushThreshold { try flush() }
    }

    private mutating func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try sink.write($0) }
        buffer.removeAll(keepingCapacity: true)
    }
}

/// Why an archive could not be written.
package enum ArchiveError: Error, CustomStringConvertible {
    case fileTooLarge(name: [UInt8], size: UInt64)
    case nameTooLong(name: [UInt8])
    case nameContainsNul(name: [UInt8])
    case sizeChanged(expected: UInt64, actual: UInt64)
    case unreadable(path: String, operation: String, errno: Int32)
    case unsupportedFileType(path: String, mode: UInt32)

    package var description: String {
        switch self {
        case .fileTooLarge(let name, let size):
            return "/\(String(decoding: name, as: UTF8.self)) is \(size) bytes; a newc archive holds files below 4 GiB"
        case .nameTooLong(let name):
            return "name of \(name.count) bytes is longer than the kernel accepts (4095): /\(String(decoding: name.prefix(80), as: UTF8.self))…"
        case .nameContainsNul:
            return "a name contains a NUL byte"
        case .sizeChanged(let expected, let actual):
            return "file data does not match its size (expected \(expected) more bytes, got \(actual))"
        case .unreadable(let path, let operation, let code):
            return "cannot \(operation) \(path): \(String(cString: strerror(code)))"
        case .unsupportedFileType(let path, let mode):
            return "\(path) has a file type a store path cannot hold (mode \(String(mode, radix: 8)))"
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
