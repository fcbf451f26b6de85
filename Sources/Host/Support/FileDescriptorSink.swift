#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An ``ArchiveSink`` writing to an open file descriptor, counting the bytes it wrote.
public struct FileDescriptorSink: ArchiveSink {
    public let descriptor: Int32
    public private(set) var bytesWritten: UInt64 = 0

    public init(descriptor: Int32) { self.descriptor = descriptor }

    public mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
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
    }
}

/// A failed system call, with its errno.
public struct SystemError: Error, CustomStringConvertible {
    public var operation: String
    public var errno: Int32
    public init(operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }
    public var description: String { "\(operation): \(String(cString: strerror(errno)))" }
}
