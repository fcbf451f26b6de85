/// The bookkeeping of the CPIO cache, without any I/O.
///
/// It decides; the ``CPIOCache`` actor acts. Every mutating method returns what the caller must do
/// (start a packing, resume waiters, delete files). It tracks:
/// - entries on disk with their size, a use counter for least-recently-used eviction, and pins held
///   by in-flight initrds (a pinned entry is never evicted, even over the byte limit);
/// - whether an entry's bytes are proven: an entry adopted at start-up is unverified and is never
///   pinned until a verification (a read of the file against its checksum) has passed;
/// - pins on entries dropped while pinned (their file vanished): released later without touching
///   a newer entry of the same key;
/// - packings in flight with the requesters waiting for them (single-flight: one packing per key);
/// - a bound on concurrent packings, with a queue for the rest that starts the highest priority
///   first (the assembler gives larger paths a higher priority, so the big ones do not end last).
public struct CacheStateMachine<Key: Hashable, Waiter: Hashable> {
    /// An archive on disk.
    public struct Entry: Equatable {
        public var size: UInt64
        public var pins: Int
        public var lastUse: UInt64
        /// Written by this process, or read and checked since start-up.
        public var verified: Bool
    }

    enum Slot {
        case ready(Entry)
        /// An adopted entry whose file is being read to check its checksum.
        case verifying(Entry)
        case packing(waiters: [Waiter])
        case queued(waiters: [Waiter])
    }

    /// What the caller of ``acquire(_:waiter:)`` does next.
    public enum AcquireAction: Equatable {
        /// On disk; the entry is now pinned for the caller.
        case ready(size: UInt64)
        /// Wait for a packing; `startPacking` says whether the caller must start it now.
        case wait(startPacking: Bool)
        /// The entry is on disk but unverified (or being verified): verify it, then ask again.
        case verify
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
    /// Pins still held on entries that were dropped while pinned.
    private var orphanedPins: [Key: Int] = [:]

    public init(capacity: UInt64, maximumConcurrentPackings: Int) {
        precondition(maximumConcurrentPackings > 0)
        self.capacity = capacity
        self.maximumConcurrentPackings = maximumConcurrentPackings
    }

    /// Bytes over the limit that cannot be evicted now because in-flight initrds pin them.
    public var overshoot: UInt64 { totalBytes > capacity ? totalBytes - capacity : 0 }

    /// The entry for `key`, if it is on disk (ready or being verified).
    public func entry(_ key: Key) -> Entry? {
        switch slots[key] {
        case .ready(let entry)?, .verifying(let entry)?: entry
        default: nil
        }
    }

    /// Number of entries on disk (ready or being verified).
    public var count: Int { slots.values.reduce(0) { $0 + (Self.onDisk($1) != nil ? 1 : 0) } }

    /// Every entry on disk with its size.
    public var entriesOnDisk: [(key: Key, size: UInt64)] {
        slots.compactMap { key, slot in Self.onDisk(slot).map { (key, $0.size) } }
    }

    private static func onDisk(_ slot: Slot) -> Entry? {
        switch slot {
        case .ready(let entry), .verifying(let entry): entry
        case .packing, .queued: nil
        }
    }

    /// Records an archive found on disk at start-up, unverified; call in least- to most-recently
    /// used order. Returns the entries to evict if the limit is exceeded.
    public mutating func adopt(_ key: Key, size: UInt64) -> [Key] {
        guard slots[key] == nil else { return [] }
        clock += 1
        slots[key] = .ready(Entry(size: size, pins: 0, lastUse: clock, verified: false))
        totalBytes += size
        return evictIfNeeded()
    }

    /// Starts verifying `key` if it is an unverified entry; returns its size, or nil if there is
    /// nothing to verify (absent, verified, or being verified already).
    public mutating func beginVerification(_ key: Key) -> UInt64? {
        guard case .ready(let entry)? = slots[key], !entry.verified else { return nil }
        slots[key] = .verifying(entry)
        return entry.size
    }

    /// Whether `key` is being verified.
    public func isVerifying(_ key: Key) -> Bool {
        if case .verifying? = slots[key] { return true }
        return false
    }

    /// The file of `key` matched its checksum: the entry is ready and may be pinned.
    public mutating func verificationSucceeded(_ key: Key) {
        guard case .verifying(var entry)? = slots[key] else { return }
        entry.verified = true
        slots[key] = .ready(entry)
    }

    /// The file of `key` did not match (or could not be read): the entry is forgotten and its file
    /// must be removed; the next request packs it again.
    public mutating func verificationFailed(_ key: Key) {
        guard case .verifying(let entry)? = slots[key] else { return }
        slots[key] = nil
        totalBytes -= entry.size
    }

    /// Pins `key` for the caller if it is ready and verified, without waiting for anything otherwise.
    public mutating func pinIfReady(_ key: Key) -> UInt64? {
        guard case .ready(var entry) = slots[key], entry.verified else { return nil }
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
        case .ready?, .verifying?:
            return .verify
        case .packing(var waiters)?:
            waiters.append(waiter)
            slots[key] = .packing(waiters: waiters)
            return .wait(startPacking: false)
        case .queued(var waiters)?:
            waiters.append(waiter)
            slots[key] = .queued(waiters: waiters)
            return .wait(startPacking: false)
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
        slots[key] = .ready(Entry(size: size, pins: waiters.count, lastUse: clock, verified: true))
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
    ///
    /// Pins on an entry dropped while pinned are released first, so a newer entry of the same key
    /// is at worst pinned a little longer than needed, never unpinned while in use.
    public mutating func release(_ key: Key) -> [Key] {
        if let orphaned = orphanedPins[key] {
            orphanedPins[key] = orphaned > 1 ? orphaned - 1 : nil
            return []
        }
        guard case .ready(var entry)? = slots[key], entry.pins > 0 else {
            preconditionFailure("release of a key that is not pinned")
        }
        entry.pins -= 1
        slots[key] = .ready(entry)
        return evictIfNeeded()
    }

    /// Forgets a ready entry whose file vanished or changed, pinned or not (its pins are released
    /// later through ``release(_:)``). Returns whether it was there.
    public mutating func drop(_ key: Key) -> Bool {
        guard case .ready(let entry)? = slots[key] else { return false }
        slots[key] = nil
        totalBytes -= entry.size
        if entry.pins > 0 { orphanedPins[key, default: 0] += entry.pins }
        return true
    }

    /// Fails every queued packing (they never started): returns their keys and waiters. For a full disk,
    /// where starting them would only fill it again.
    public mutating func failQueued() -> (keys: [Key], waiters: [Waiter]) {
        var keys: [Key] = []
        var waiters: [Waiter] = []
        for item in queue {
            if case .queued(let queued)? = slots[item.key] {
                keys.append(item.key)
                waiters += queued
                slots[item.key] = nil
            }
        }
        queue.removeAll()
        return (keys, waiters)
    }

    /// Bytes of ready entries that no initrd pins (what eviction could free now).
    public var unpinnedBytes: UInt64 {
        slots.values.reduce(0) { if case .ready(let entry) = $1, entry.pins == 0 { $0 + entry.size } else { $0 } }
    }

    /// Evicts unpinned entries, least recently used first, until at least `bytes` are freed or none
    /// is left. Returns the evicted keys.
    public mutating func evictUnpinned(atLeast bytes: UInt64) -> [Key] {
        var freed: UInt64 = 0
        var evicted: [Key] = []
        for candidate in unpinnedByAge() {
            guard freed < bytes else { break }
            slots[candidate.key] = nil
            totalBytes -= candidate.entry.size
            freed += candidate.entry.size
            evicted.append(candidate.key)
        }
        return evicted
    }

    private func unpinnedByAge() -> [(key: Key, entry: Entry)] {
        var candidates: [(key: Key, entry: Entry)] = []
        for (key, slot) in slots {
            if case .ready(let entry) = slot, entry.pins == 0 { candidates.append((key, entry)) }
        }
        candidates.sort { $0.entry.lastUse < $1.entry.lastUse }
        return candidates
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
        var evicted: [Key] = []
        for candidate in unpinnedByAge() {
            guard totalBytes > capacity else { break }
            slots[candidate.key] = nil
            totalBytes -= candidate.entry.size
            evicted.append(candidate.key)
        }
        return evicted
    }
}
