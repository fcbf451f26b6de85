#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An ``ArchiveSink`` writing to an open file descriptor, counting the bytes it wrote and
/// computing their CRC-32 on the way (so the cache never reads an archive back to checksum it).
package struct FileDescriptorSink: ArchiveSink {
    package let descriptor: Int32
    package private(set) var bytesWritten: UInt64 = 0
    /// The CRC-32 of every byte written so far.
    package private(set) var crc32: UInt32 = 0

    /// Size and CRC-32 of what was written.
    package var checksum: ArchiveChecksum { ArchiveChecksum(size: bytesWritten, crc32: crc32) }

    package init(descriptor: Int32) { self.descriptor = descriptor }

    package mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError(operation: "write", errno: errno)
            }
            offset += n
        }
        bytesWritten += UInt64(bytes.count)
        crc32 = ArchiveChecksum.update(crc32, with: bytes)
    }
}
