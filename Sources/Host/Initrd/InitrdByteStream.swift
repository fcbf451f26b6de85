#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NIOCore
import NIOPosix

/// The bytes of an initrd as an async sequence of buffers, pulled one chunk at a time.
///
/// Reads happen on a thread pool; at most one file is open at any moment, and it is closed as soon as
/// its last byte is read (or the iteration ends). A file whose length differs from what the index
/// recorded is an error, never a short or long body.
public struct InitrdByteStream: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer

    let members: [Initrd.Member]
    let chunkSize: Int
    var threadPool: NIOThreadPool = .singleton

    public func makeAsyncIterator() -> Iterator {
        Iterator(members: members, chunkSize: chunkSize, threadPool: threadPool)
    }

    /// Pulls chunks; owns at most one open file.
    public struct Iterator: AsyncIteratorProtocol {
        let members: [Initrd.Member]
        let chunkSize: Int
        let threadPool: NIOThreadPool
        var index = 0
        var offset: UInt64 = 0
        var file: OpenFile?
        let allocator = ByteBufferAllocator()

        init(members: [Initrd.Member], chunkSize: Int, threadPool: NIOThreadPool) {
            self.members = members
            self.chunkSize = chunkSize
            self.threadPool = threadPool
        }

        public mutating func next() async throws -> ByteBuffer? {
            while index < members.count {
                switch members[index] {
                case .bytes(let bytes):
                    index += 1
                    if bytes.isEmpty { continue }
                    return allocator.buffer(bytes: bytes)
                case .file(let path, let size):
                    if offset == size {
                        file = nil
                        index += 1
                        offset = 0
                        continue
                    }
                    if file == nil { file = try OpenFile(path: path, expectedSize: size) }
                    let handle = file!
                    let length = Int(Swift.min(UInt64(chunkSize), size - offset))
                    let at = offset
                    let allocator = self.allocator
                    let chunk = try await threadPool.runIfActive {
                        try handle.read(at: at, length: length, allocator: allocator)
                    }
                    offset += UInt64(chunk.readableBytes)
                    if offset == size { file = nil }
                    return chunk
                }
            }
            return nil
        }
    }

    /// An open, read-only file, closed when the last reference goes.
    final class OpenFile: Sendable {
        let descriptor: Int32
        let path: String

        init(path: String, expectedSize: UInt64) throws {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw SystemError(operation: "open \(path)", errno: errno) }
            var info = stat()
            guard fstat(fd, &info) == 0 else {
                let code = errno
                close(fd)
                throw SystemError(operation: "stat \(path)", errno: code)
            }
            guard UInt64(info.st_size) == expectedSize else {
                close(fd)
                throw InitrdError.memberChanged(path: path, expected: expectedSize, actual: UInt64(info.st_size))
            }
            self.descriptor = fd
            self.path = path
        }

        func read(at offset: UInt64, length: Int, allocator: ByteBufferAllocator) throws -> ByteBuffer {
            var buffer = allocator.buffer(capacity: length)
            var done = 0
            try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { raw in
                while done < length {
                    let n = pread(descriptor, raw.baseAddress! + done, length - done, off_t(offset) + off_t(done))
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw SystemError(operation: "read \(path)", errno: errno)
                    }
                    if n == 0 { throw InitrdError.memberChanged(path: path, expected: offset + UInt64(length), actual: offset + UInt64(done)) }
                    done += n
                }
                return done
            }
            return buffer
        }

        deinit { close(descriptor) }
    }
}

/// Why an initrd could not be produced.
public enum InitrdError: Error, CustomStringConvertible {
    case memberChanged(path: String, expected: UInt64, actual: UInt64)

    public var description: String {
        switch self {
        case .memberChanged(let path, let expected, let actual):
            "cached archive \(path) is \(actual) bytes, the index says \(expected)"
        }
    }
}
