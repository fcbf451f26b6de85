#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A regular file of a system's layout, open for reading; closed when the last reference goes.
///
/// Made only by ``SystemLayout``, after the path was resolved inside the closure and the final
/// component opened without following a symlink and checked to be a regular file.
package final class LayoutFile: Sendable {
    /// The open descriptor (read-only, close-on-exec).
    package let descriptor: Int32
    /// The resolved path: real directories under the store directory, then the file.
    package let path: String
    /// The file's size when it was opened.
    package let size: UInt64

    init(descriptor: Int32, path: String, size: UInt64) {
        self.descriptor = descriptor
        self.path = path
        self.size = size
    }

    /// The whole file; its size was checked against the caller's limit when it was opened.
    func readAll() throws(SystemCallFailure) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(size))
        var done = 0
        while done < bytes.count {
            let count = bytes.withUnsafeMutableBytes { raw in
                guard let base = raw.baseAddress else { return 0 }
                return pread(descriptor, base + done, raw.count - done, off_t(done))
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemCallFailure(operation: "read", errno: errno)
            }
            if count == 0 { break }
            done += count
        }
        return Array(bytes[..<done])
    }

    deinit { close(descriptor) }
}

/// A failed system call on an open file.
struct SystemCallFailure: Error {
    var operation: String
    var errno: Int32
}
