/// Why the cache could not store an archive, or could not be opened.
package enum CacheError: Error, CustomStringConvertible {
    /// The file system of the cache is full (ENOSPC or EDQUOT), even after evicting the least
    /// recently used archives that no initrd was using.
    case outOfSpace
    /// The cache directory cannot be written (found at start-up).
    case notWritable(directory: String, reason: String)
    /// The server is shutting down: no packing is started any more.
    case stopped
    /// Archives kept vanishing between packing and serving (someone is deleting the cache).
    case keepsVanishing(count: Int)

    package var description: String {
        switch self {
        case .outOfSpace:
            "no space left on the device of the cpio cache"
        case .notWritable(let directory, let reason):
            "the cpio cache directory \(directory) is not writable (\(reason)); fix its permissions or mount, or point --cpio-cache-dir elsewhere"
        case .stopped:
            "the server is shutting down"
        case .keepsVanishing(let count):
            "\(count) cached archives vanished again right after being packed"
        }
    }
}

/// A packing that ran out of space, with how much it had written when it did.
struct PackingOutOfSpace: Error, CustomStringConvertible {
    var written: UInt64
    var underlying: SystemError
    var description: String { "\(underlying) after \(written) bytes" }
}
