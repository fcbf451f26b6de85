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
package struct InitrdByteStream: AsyncSequence, Sendable {
    package typealias Element = ByteBuffer

    let members: [Initrd.Member]
    /// The largest chunk; a budget shared with other bodies may make each read smaller.
    let chunkSize: Int
    var budget: StreamingBudget?
    /// Where reads run: a thread pool, or (nil) the calling thread, for a caller already running on
    /// a thread where a short read of a cached file is cheaper than two hand-offs.
    var threadPool: NIOThreadPool? = .singleton

    /// The same bytes, read on the calling thread.
    package func readingInline() -> InitrdByteStream {
        var copy = self
        copy.threadPool = nil
        return copy
    }

    /// The same bytes, each chunk sized by `budget`'s share for the bodies in flight.
    package func sharing(_ budget: StreamingBudget) -> InitrdByteStream {
        var copy = self
        copy.budget = budget
        return copy
    }

    package func makeAsyncIterator() -> Iterator {
        Iterator(members: members, maximumChunkSize: chunkSize, budget: budget, threadPool: threadPool)
    }

    /// Pulls chunks; owns at most one open file.
    package struct Iterator: AsyncIteratorProtocol {
        let members: [Initrd.Member]
        let maximumChunkSize: Int
        let budget: StreamingBudget?
        let threadPool: NIOThreadPool?
        var index = 0
        var offset: UInt64 = 0
        var file: OpenFile?
        let allocator = ByteBufferAllocator()
        /// The size of the chunk being read now.
        private var chunkSize: Int

        init(members: [Initrd.Member], maximumChunkSize: Int, budget: StreamingBudget?, threadPool: NIOThreadPool?) {
            self.members = members
            self.maximumChunkSize = maximumChunkSize
            self.chunkSize = maximumChunkSize
            self.budget = budget
            self.threadPool = threadPool
        }

        package mutating func next() async throws -> ByteBuffer? {
            guard index < members.count else { return nil }
            chunkSize = budget?.chunkSize(maximum: maximumChunkSize) ?? maximumChunkSize
            if case .file(let path, let size) = members[index], size - offset > UInt64(chunkSize) {
                return try await nextChunk(ofLargeFile: path, size: size)
            }
            // Small members, whole, gathered into one chunk and read in one job: hundreds of small
            // store paths cost a few hand-offs to the thread pool, not one or more each.
            var segments: [Segment] = []
            var room = UInt64(chunkSize)
            while index < members.count {
                switch members[index] {
                case .bytes(let bytes):
                    guard segments.isEmpty || UInt64(bytes.count) <= room else { break }
                    segments.append(.bytes(bytes))
                    room -= Swift.min(room, UInt64(bytes.count))
                    index += 1
                    continue
                case .file(let path, let size):
                    let rest = size - offset
                    guard rest <= room else { break }
                    if rest > 0 { segments.append(.file(path: path, size: size, offset: offset, length: Int(rest))) }
                    room -= rest
                    index += 1
                    offset = 0
                    file = nil  // the tail of a large member read here: its handle is done
                    continue
                }
                break
            }
            let allocator = self.allocator
            let capacity = chunkSize - Int(room)
            let planned = segments
            return try await run {
                var buffer = allocator.buffer(capacity: capacity)
                for segment in planned {
                    switch segment {
                    case .bytes(let bytes):
                        buffer.writeBytes(bytes)
                    case .file(let path, let size, let offset, let length):
                        let file = try OpenFile(path: path, expectedSize: size)
                        try file.read(at: offset, length: length, into: &buffer)
                    }
                }
                return buffer
            }
        }

        /// Runs a read on the thread pool, or right here.
        private func run(_ read: @escaping @Sendable () throws -> ByteBuffer) async throws -> ByteBuffer {
            guard let threadPool else { return try read() }
            return try await threadPool.runIfActive(read)
        }

        /// The next chunk of a member larger than a chunk, keeping its file open between chunks.
        private mutating func nextChunk(ofLargeFile path: String, size: UInt64) async throws -> ByteBuffer {
            let handle = try file ?? OpenFile(path: path, expectedSize: size)
            file = handle
            let length = Int(Swift.min(UInt64(chunkSize), size - offset))
            let at = offset
            let allocator = self.allocator
            let chunk = try await run {
                var buffer = allocator.buffer(capacity: length)
                try handle.read(at: at, length: length, into: &buffer)
                return buffer
            }
            offset += UInt64(chunk.readableBytes)
            if offset == size {
                file = nil
                index += 1
                offset = 0
            }
            return chunk
        }
    }

    /// A part of a chunk: bytes in memory, or a range of a cached file.
    enum Segment: Sendable {
        case bytes([UInt8])
        case file(path: String, size: UInt64, offset: UInt64, length: Int)
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

        /// Appends `length` bytes from `offset` to `buffer`; a file shorter than that is an error.
        func read(at offset: UInt64, length: Int, into buffer: inout ByteBuffer) throws {
            var done = 0
            try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { raw in
                guard let base = raw.baseAddress else { return 0 }
                while done < length {
                    let n = pread(descriptor, base + done, length - done, off_t(offset) + off_t(done))
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw SystemError(operation: "read \(path)", errno: errno)
                    }
                    if n == 0 { throw InitrdError.memberChanged(path: path, expected: offset + UInt64(length), actual: offset + UInt64(done)) }
                    done += n
                }
                return done
            }
        }

        deinit { close(descriptor) }
    }
}

/// Why an initrd could not be produced.
package enum InitrdError: Error, CustomStringConvertible {
    case memberChanged(path: String, expected: UInt64, actual: UInt64)

    package var description: String {
        switch self {
        case .memberChanged(let path, let expected, let actual):
            "cached archive \(path) is \(actual) bytes, the index says \(expected)"
        }
    }
}
