#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CZlib

/// The size and CRC-32 of one cached archive, computed while it was written and carried in its
/// file name (`NAME@nns-cpio-v4@zstd-10@SIZE-crc32-XXXXXXXX`).
///
/// Being part of the name, the checksum appears on disk in the same `rename` as the bytes it
/// describes: there is no sidecar that a crash could leave without its archive (or the reverse), and
/// no second file to write and fsync per archive. CRC-32 (zlib's) catches every burst error up to
/// 32 bits and any bit flip, reads at memory speed, and needs no dependency the codecs do not have.
package struct ArchiveChecksum: Hashable, Sendable, CustomStringConvertible {
    package var size: UInt64
    package var crc32: UInt32

    package init(size: UInt64, crc32: UInt32) {
        self.size = size
        self.crc32 = crc32
    }

    /// `SIZE-crc32-XXXXXXXX` (eight lower-case hex digits).
    package var description: String {
        let hex = String(crc32, radix: 16)
        return "\(size)-crc32-" + String(repeating: "0", count: 8 - hex.count) + hex
    }

    /// Parses ``description``; nil for anything else.
    package init?(_ text: Substring) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[1] == "crc32", parts[2].count == 8,
              parts[0].allSatisfy(\.isASCII), let size = UInt64(parts[0]), let crc = UInt32(parts[2], radix: 16)
        else { return nil }
        self.init(size: size, crc32: crc)
        guard description == text else { return nil }
    }

    /// Continues a CRC-32 over `bytes`.
    package static func update(_ crc: UInt32, with bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return crc }
        return UInt32(truncatingIfNeeded: crc32_z(uLong(crc), base.assumingMemoryBound(to: Bytef.self), z_size_t(bytes.count)))
    }

    /// The size and CRC-32 of these bytes followed by the bytes `next` describes.
    package func followed(by next: ArchiveChecksum) -> ArchiveChecksum {
        let crc = crc32_combine(uLong(crc32), uLong(next.crc32), Int(next.size))
        return ArchiveChecksum(size: size + next.size, crc32: UInt32(truncatingIfNeeded: crc))
    }

    /// Reads the file at `path` once, in 1 MiB chunks, and returns its size and CRC-32. Blocking.
    package static func ofFile(at path: String) throws -> ArchiveChecksum {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError(operation: "open \(path)", errno: errno) }
        defer { close(fd) }
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var crc: UInt32 = 0
        var size: UInt64 = 0
        while true {
            let n = read(fd, buffer.baseAddress, chunk)
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError(operation: "read \(path)", errno: errno)
            }
            if n == 0 { break }
            crc = update(crc, with: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            size += UInt64(n)
        }
        return ArchiveChecksum(size: size, crc32: crc)
    }
}

extension CacheKey {
    /// The name of the archive file of this key with `checksum`: ``fileName`` then `@SIZE-crc32-XXXXXXXX`.
    package func fileName(checksum: ArchiveChecksum) -> String { fileName + "@" + checksum.description }

    /// Parses a name written by ``fileName(checksum:)``; nil for anything else (including the
    /// checksum-less names of earlier versions, which ``init(fileName:)`` recognises).
    package static func parse(archiveFileName name: String) -> (key: CacheKey, checksum: ArchiveChecksum)? {
        guard let at = name.lastIndex(of: "@"),
              let key = CacheKey(fileName: String(name[..<at])),
              let checksum = ArchiveChecksum(name[name.index(after: at)...])
        else { return nil }
        return (key, checksum)
    }
}

/// A pinned archive of the cache: where it is and what it must contain.
package struct CachedArchive: Hashable, Sendable {
    package var key: CacheKey
    package var checksum: ArchiveChecksum
    /// The absolute path of the file (valid while the pin is held).
    package var path: String

    package var size: UInt64 { checksum.size }

    /// Whether a regular file of the expected size is at ``path`` (one `stat`, no read).
    package var isOnDisk: Bool { FileSystem.regularFileSize(path) == checksum.size }
}
