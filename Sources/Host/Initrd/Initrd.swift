import Synchronization

/// One assembled initrd: its members in order and their exact total size.
///
/// The per-path archives it names are pinned in the cache until ``release()``, so none is evicted
/// while the initrd is being sent. Bytes are produced by ``InitrdByteStream``, which opens each
/// cached file only while reading it.
package final class Initrd: Sendable {
    /// One piece of the initrd.
    package enum Member: Sendable, Equatable {
        /// Bytes held in memory (the leader and the loader).
        case bytes([UInt8])
        /// A cached archive: its file and the size the index recorded for it.
        case file(path: String, size: UInt64)

        package var size: UInt64 {
            switch self {
            case .bytes(let bytes): UInt64(bytes.count)
            case .file(_, let size): size
            }
        }
    }

    /// The store path this initrd boots.
    package let root: StorePath
    /// The closure, in the order its archives appear.
    package let closure: [StorePath]
    package let members: [Member]
    /// The exact length of the initrd in bytes.
    package let size: UInt64
    private let cache: CPIOCache
    /// The pins this initrd holds, one per key.
    private let pinned: [CacheKey]
    private let released = Atomic<Bool>(false)

    init(root: StorePath, closure: [StorePath], members: [Member], cache: CPIOCache, pinned: [CacheKey]) {
        self.root = root
        self.closure = closure
        self.members = members
        self.size = members.reduce(0) { $0 + $1.size }
        self.cache = cache
        self.pinned = pinned
    }

    /// Unpins the cached archives. Call once, when the initrd has been sent (or will not be).
    package func release() async {
        guard !released.exchange(true, ordering: .acquiringAndReleasing) else { return }
        await cache.release(pinned)
    }

    deinit {
        // A response that never ran its body still gives its pins back, synchronously (no task
        // outlives the initrd): the cache applies them at its next operation.
        if !released.load(ordering: .acquiring) { cache.releaseSoon(pinned) }
    }

    /// The bytes, read lazily in chunks of `chunkSize`.
    package func bytes(chunkSize: Int = 1 << 20) -> InitrdByteStream {
        InitrdByteStream(members: members, chunkSize: chunkSize)
    }
}
