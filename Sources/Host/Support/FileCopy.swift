#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Copies a file's bytes into another open file inside the kernel (`sendfile`, which takes any
/// regular file as its target on Linux), falling back to reads and writes where it cannot.
package enum FileCopy {
    /// Appends all `bytes` bytes of the file at `path` at the current offset of `descriptor`. A file
    /// of another length is an error, never a short or long copy.
    package static func append(_ path: String, to descriptor: Int32, bytes: UInt64) throws {
        let source = open(path, O_RDONLY | O_CLOEXEC)
        guard source >= 0 else { throw SystemError(operation: "open \(path)", errno: errno) }
        defer { close(source) }
        var remaining = bytes
        var inKernel = true
        while remaining > 0 {
            let want = Int(min(remaining, 1 << 30))
            var copied: Int
            if inKernel {
                copied = sendfile(descriptor, source, nil, want)
                if copied < 0 && [EXDEV, ENOSYS, EINVAL, EOPNOTSUPP].contains(errno) {
                    inKernel = false
                    continue
                }
            } else {
                copied = try copyByReading(source, to: descriptor, upTo: want)
            }
            if copied < 0 {
                if errno == EINTR { continue }
                throw SystemError(operation: "copy \(path)", errno: errno)
            }
            guard copied > 0 else { throw SystemError(operation: "copy \(path) (ended \(remaining) bytes early)", errno: EIO) }
            remaining -= UInt64(copied)
        }
        var probe: UInt8 = 0
        if read(source, &probe, 1) > 0 { throw SystemError(operation: "copy \(path) (longer than \(bytes) bytes)", errno: EIO) }
    }

    /// One read and its write; returns the bytes copied, 0 at the end of the source, -1 with `errno`.
    private static func copyByReading(_ source: Int32, to descriptor: Int32, upTo count: Int) throws -> Int {
        let chunk = min(count, 1 << 20)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        let got = read(source, buffer.baseAddress, chunk)
        guard got > 0 else { return got }
        var done = 0
        while done < got {
            let n = write(descriptor, buffer.baseAddress! + done, got - done)
            if n < 0 {
                if errno == EINTR { continue }
                return -1
            }
            done += n
        }
        return got
    }
}
