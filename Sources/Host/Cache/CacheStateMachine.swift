/// The bookkeeping of the CPIO cache, without any I/O.
///
/// It decides; the ``CPIOCache`` actor acts. Every mutating method returns what the caller must do
/// (start a packing, resume waiters, delete files). It tracks:
/// - entries on disk with their size, a use counter for least-recently-used eviction, and pins held
///   by in-flight initrds (a pinned entry is never evicted, even over the byte limit);
/// - packings in flight with the requesters waiting for them (single-flight: one packing per key);
/// - a bound on concurrent packings, with a queue for the rest that starts the highest priority
///   first (the assembler gives larger paths a higher priority, so the big ones do not end last).
public struct CacheStateMachine<Key: Hashable, Waiter: Hashable> {
    /// An archive on disk.
    public struct Entry: Equatable {
        public var size: UInt64
        public var pins: Int
        public var lastUse: UInt64
    }

    enum Slot {
        case ready(Entry)
        case packing(waiters: [Waiter])
        case queued(waiters: [Waiter])
    }

    /// What the caller of ``acquire(_:waiter:)`` does next.
    public enum AcquireAction: Equatable {
        /// On disk; the entry is now pinned for the caller.
        case ready(size: UInt64)
        /// Wait for a packing; `startPacking` says whether the caller must start it now.
        case wait(startPacking: Bool)
    }

    /// What follows a finished packing.
    public struct Completion: Equatable {
        /// Waiters to resume (each now holds a pin) or to fail.
        public var waiters: [Waiter]
        /// Queued keys whose packing may start now.
        public var start: [Key]
        /// Entries to delete from disk.
        public var evict: [Key]
    }

    public let capacity: UInt64
    public let maximumConcurrentPackings: Int
    /// Bytes of all ready entries.
    public private(set) var totalBytes: UInt64 = 0
    public private(set) var runningPackings = 0
    private var slots: [Key: Slot] = [:]
    /// Keys waiting for a packing slot, with their priority and arrival number.
    private var queue: [(key: Key, priority: UInt64, arrival: UInt64)] = []
    private var arrivals: UInt64 = 0
    private var clock: UInt64 = 0

    public init(capacity: UInt64, maximumConcurrentPackings: Int) {
        precondition(maximumConcurrentPackings > 0)
        self.capacity = capacity
        self.maximumConcurrentPackings = maximumConcurrentPackings
    }

    /// Bytes over the limit that cannot be evicted now because in-flight initrds pin them.
    public var overshoot: UInt64 { totalBytes > capacity ? totalBytes - capacity : 0 }

    /// The entry for `key`, if it is on disk.
    public func entry(_ key: Key) -> Entry? {
        if case .ready(let entry) = slots[key] { return entry }
        return nil
    }

    /// Number of ready entries.
    public var count: Int { slots.values.reduce(0) { if case .ready = $1 { $0 + 1 } else { $0 } } }

    /// Records an archive found on disk at start-up; call in least- to most-recently used order.
    /// Returns the entries to evict if the limit is exceeded.
    public mutating func adopt(_ key: Key, size: UInt64) -> [Key] {
        guard slots[key] == nil else { return [] }
        clock += 1
        slots[key] = .ready(Entry(size: size, pins: 0, lastUse: clock))
        totalBytes += size
        return evictIfNeeded()
    }

    /// Pins `key` for the caller if it is ready, without waiting for anything otherwise.
    public mutating func pinIfReady(_ key: Key) -> UInt64? {
        guard case .ready(var entry) = slots[key] else { return nil }
        clock += 1
        entry.pins += 1
        entry.lastUse = clock
        slots[key] = .ready(entry)
        return entry.size
    }

    /// A requester wants `key`. Among queued keys, a higher `priority` starts first (then arrival order).
    public mutating func acquire(_ key: Key, waiter: Waiter, priority: UInt64 = 0) -> AcquireAction {
        if let size = pinIfReady(key) { return .ready(size: size) }
        switch slots[key] {
        case .packing(var waiters)?:
            waiters.append(waiter)
            slots[key] = .packing(waiters: waiters)
            return .wait(startPacking: false)
        case .queued(var waiters)?:
            waiters.append(waiter)
            slots[key] = .queued(waiters: waiters)
            return .wait(startPacking: false)
        case .ready?:
            preconditionFailure("handled by pinIfReady")
        case nil:
            if runningPackings < maximumConcurrentPackings {
                runningPackings += 1
                slots[key] = .packing(waiters: [waiter])
                return .wait(startPacking: true)
            }
            slots[key] = .queued(waiters: [waiter])
            arrivals += 1
            queue.append((key, priority, arrivals))
            return .wait(startPacking: false)
        }
    }

    /// A waiting requester went away. Returns true if it was still waiting (the caller resumes it
    /// with a cancellation). A packing already running goes on for the others (and for the cache);
    /// a queued one that nobody waits for any more is dropped.
    public mutating func cancel(_ key: Key, waiter: Waiter) -> Bool {
        switch slots[key] {
        case .packing(var waiters)?:
            guard let index = waiters.firstIndex(of: waiter) else { return false }
            waiters.remove(at: index)
            slots[key] = .packing(waiters: waiters)
            return true
        case .queued(var waiters)?:
            guard let index = waiters.firstIndex(of: waiter) else { return false }
            waiters.remove(at: index)
            slots[key] = waiters.isEmpty ? nil : .queued(waiters: waiters)
            return true
        default:
            return false
        }
    }

    /// The packing of `key` wrote `size` bytes to disk. Every waiter now holds a pin.
    public mutating func packingSucceeded(_ key: Key, size: UInt64) -> Completion {
        guard case .packing(let waiters)? = slots[key] else {
            preconditionFailure("packingSucceeded for a key that is not packing")
        }
        clock += 1
        slots[key] = .ready(Entry(size: size, pins: waiters.count, lastUse: clock))
        totalBytes += size
        runningPackings -= 1
        let start = startQueued()
        return Completion(waiters: waiters, start: start, evict: evictIfNeeded())
    }

    /// The packing of `key` failed: its waiters get the error, nothing is cached.
    public mutating func packingFailed(_ key: Key) -> Completion {
        guard case .packing(let waiters)? = slots[key] else {
            preconditionFailure("packingFailed for a key that is not packing")
        }
        slots[key] = nil
        runningPackings -= 1
        return Completion(waiters: waiters, start: startQueued(), evict: [])
    }

    /// An initrd is done with `key`. Returns the entries to evict now.
    public mutating func release(_ key: Key) -> [Key] {
        guard case .ready(var entry)? = slots[key], entry.pins > 0 else {
            preconditionFailure("release of a key that is not pinned")
        }
        entry.pins -= 1
        slots[key] = .ready(entry)
        return evictIfNeeded()
    }

    /// Forgets a ready, unpinned entry whose file vanished. Returns whether it was there.
    public mutating func forget(_ key: Key) -> Bool {
        guard case .ready(let entry)? = slots[key], entry.pins == 0 else { return false }
        slots[key] = nil
        totalBytes -= entry.size
        return true
    }

    private mutating func startQueued() -> [Key] {
        var started: [Key] = []
        while runningPackings < maximumConcurrentPackings, !queue.isEmpty {
            var best = 0
            for index in queue.indices.dropFirst() {
                let candidate = queue[index], current = queue[best]
                if candidate.priority > current.priority || (candidate.priority == current.priority && candidate.arrival < current.arrival) {
                    best = index
                }
            }
            let key = queue.remove(at: best).key
            guard case .queued(let waiters)? = slots[key] else { continue }  // dropped by cancellation, or started already
            slots[key] = .packing(waiters: waiters)
            runningPackings += 1
            started.append(key)
        }
        return started
    }

    private mutating func evictIfNeeded() -> [Key] {
        guard totalBytes > capacity else { return [] }
        var candidates: [(key: Key, entry: Entry)] = []
        for (key, slot) in slots {
            if case .ready(let entry) = slot, entry.pins == 0 { candidates.append((key, entry)) }
        }
        candidates.sort { $0.entry.lastUse < $1.entry.lastUse }
        var evicted: [Key] = []
        for candidate in candidates {
            guard totalBytes > capacity else { break }
            slots[candidate.key] = nil
            totalBytes -= candidate.entry.size
            evicted.append(candidate.key)
        }
        return evicted
    }
}
