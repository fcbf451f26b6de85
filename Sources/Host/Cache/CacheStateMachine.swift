/// The bookkeeping of the CPIO cache, without any I/O.
///
/// It decides; the ``CPIOCache`` actor acts. Every mutating method returns what the caller must do
/// (pack, verify, delete files). It tracks:
/// - entries on disk with their size, a use counter for least-recently-used eviction, and pins held
///   by in-flight initrds (a pinned entry is never evicted, even over the byte limit);
/// - whether an entry's bytes are proven: an entry adopted at start-up is unverified and is never
///   pinned until a verification (a read of the file against its checksum) has passed;
/// - pins on entries dropped while pinned (their file vanished): released later without touching
///   a newer entry of the same key;
/// - requesters waiting for a packing of a key: the entry it produces is not evicted before each
///   of them has settled (pinned it, or given up).
///
/// Who packs what, when and how many at once is not decided here: packings run on the cache's
/// ``WorkCoordinator``.
package struct CacheStateMachine<Key: Hashable> {
    /// An archive on disk.
    package struct Entry: Equatable {
        package var size: UInt64
        package var pins: Int
        package var lastUse: UInt64
        /// Written by this process, or read and checked since start-up.
        package var verified: Bool
    }

    enum Slot {
        case ready(Entry)
        /// An adopted entry whose file is being read to check its checksum.
        case verifying(Entry)
    }

    /// What the caller of ``acquire(_:)`` does next.
    package enum AcquireAction: Equatable {
        /// On disk; the entry is now pinned for the caller.
        case ready(size: UInt64)
        /// Not on disk: pack it (or join its packing), then ``settle(_:pin:)``.
        case pack
        /// The entry is on disk but unverified (or being verified): verify it, then ask again.
        case verify
    }

    /// What follows a requester's wait for a packing.
    package struct Settlement: Equatable {
        /// The size of the entry now pinned for the requester; nil if it is not on disk (or not asked).
        package var size: UInt64?
        /// Entries to delete from disk.
        package var evict: [Key]
    }

    package let capacity: UInt64
    /// Bytes of all entries on disk.
    package private(set) var totalBytes: UInt64 = 0
    private var slots: [Key: Slot] = [:]
    /// Requesters of each key waiting for its packing.
    private var expected: [Key: Int] = [:]
    private var clock: UInt64 = 0
    /// Pins still held on entries that were dropped while pinned.
    private var orphanedPins: [Key: Int] = [:]

    package init(capacity: UInt64) {
        self.capacity = capacity
    }

    /// Bytes over the limit that cannot be evicted now because in-flight initrds pin them.
    package var overshoot: UInt64 { totalBytes > capacity ? totalBytes - capacity : 0 }

    /// The entry for `key`, if it is on disk (ready or being verified).
    package func entry(_ key: Key) -> Entry? {
        switch slots[key] {
        case .ready(let entry)?, .verifying(let entry)?: entry
        case nil: nil
        }
    }

    /// Number of entries on disk (ready or being verified).
    package var count: Int { slots.count }

    /// Every entry on disk with its size.
    package var entriesOnDisk: [(key: Key, size: UInt64)] {
        slots.map { key, slot in (key, Self.onDisk(slot).size) }
    }

    /// Requesters of `key` waiting for its packing.
    package func waiting(for key: Key) -> Int { expected[key] ?? 0 }

    private static func onDisk(_ slot: Slot) -> Entry {
        switch slot {
        case .ready(let entry), .verifying(let entry): entry
        }
    }

    /// Records an archive found on disk at start-up, unverified; call in least- to most-recently
    /// used order. Returns the entries to evict if the limit is exceeded.
    package mutating func adopt(_ key: Key, size: UInt64) -> [Key] {
        guard slots[key] == nil else { return [] }
        clock += 1
        slots[key] = .ready(Entry(size: size, pins: 0, lastUse: clock, verified: false))
        totalBytes += size
        return evictIfNeeded()
    }

    /// Starts verifying `key` if it is an unverified entry; returns its size, or nil if there is
    /// nothing to verify (absent, verified, or being verified already).
    package mutating func beginVerification(_ key: Key) -> UInt64? {
        guard case .ready(let entry)? = slots[key], !entry.verified else { return nil }
        slots[key] = .verifying(entry)
        return entry.size
    }

    /// Whether `key` is being verified.
    package func isVerifying(_ key: Key) -> Bool {
        if case .verifying? = slots[key] { return true }
        return false
    }

    /// The file of `key` matched its checksum: the entry is ready and may be pinned.
    package mutating func verificationSucceeded(_ key: Key) {
        guard case .verifying(var entry)? = slots[key] else { return }
        entry.verified = true
        slots[key] = .ready(entry)
    }

    /// The verification of `key` was cancelled (a shutdown): the entry stays, unverified.
    package mutating func verificationAbandoned(_ key: Key) {
        guard case .verifying(let entry)? = slots[key] else { return }
        slots[key] = .ready(entry)
    }

    /// Whether `key` is on disk but not proven yet (so it must be verified before it is pinned).
    package func needsVerification(_ key: Key) -> Bool {
        guard let entry = entry(key) else { return false }
        return !entry.verified
    }

    /// The file of `key` did not match (or could not be read): the entry is forgotten and its file
    /// must be removed; the next request packs it again.
    package mutating func verificationFailed(_ key: Key) {
        guard case .verifying(let entry)? = slots[key] else { return }
        slots[key] = nil
        totalBytes -= entry.size
    }

    /// Pins `key` for the caller if it is ready and verified, without waiting for anything otherwise.
    package mutating func pinIfReady(_ key: Key) -> UInt64? {
        guard case .ready(var entry) = slots[key], entry.verified else { return nil }
        clock += 1
        entry.pins += 1
        entry.lastUse = clock
        slots[key] = .ready(entry)
        return entry.size
    }

    /// A requester wants `key`: pinned if it is ready and verified; else it verifies it, or packs it
    /// (and then calls ``settle(_:pin:)`` once, whatever the packing's outcome).
    package mutating func acquire(_ key: Key) -> AcquireAction {
        if let size = pinIfReady(key) { return .ready(size: size) }
        if slots[key] != nil { return .verify }
        expected[key, default: 0] += 1
        return .pack
    }

    /// A requester's wait for the packing of `key` ended. With `pin`, the entry is pinned for it if
    /// it is on disk. Returns the entries to evict now that it no longer holds the entry back.
    package mutating func settle(_ key: Key, pin: Bool) -> Settlement {
        guard let waiting = expected[key], waiting > 0 else { preconditionFailure("settle without acquire") }
        expected[key] = waiting > 1 ? waiting - 1 : nil
        let size = pin ? pinIfReady(key) : nil
        return Settlement(size: size, evict: evictIfNeeded())
    }

    /// The packing of `key` wrote `size` bytes to disk: a verified entry, kept for the requesters
    /// waiting for it until they settle. Returns the entries to evict.
    package mutating func packingSucceeded(_ key: Key, size: UInt64) -> [Key] {
        clock += 1
        var entry = Entry(size: size, pins: 0, lastUse: clock, verified: true)
        if let old = slots[key] {
            let known = Self.onDisk(old)
            totalBytes -= known.size
            entry.pins = known.pins
        }
        slots[key] = .ready(entry)
        totalBytes += size
        return evictIfNeeded()
    }

    /// An initrd is done with `key`. Returns the entries to evict now.
    ///
    /// Pins on an entry dropped while pinned are released first, so a newer entry of the same key
    /// is at worst pinned a little longer than needed, never unpinned while in use.
    package mutating func release(_ key: Key) -> [Key] {
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
    package mutating func drop(_ key: Key) -> Bool {
        guard case .ready(let entry)? = slots[key] else { return false }
        slots[key] = nil
        totalBytes -= entry.size
        if entry.pins > 0 { orphanedPins[key, default: 0] += entry.pins }
        return true
    }

    /// Bytes of ready entries that no initrd pins (what eviction could free now).
    package var unpinnedBytes: UInt64 {
        unpinnedByAge().reduce(0) { $0 + $1.entry.size }
    }

    /// Evicts unpinned entries, least recently used first, until at least `bytes` are freed or none
    /// is left. Returns the evicted keys.
    package mutating func evictUnpinned(atLeast bytes: UInt64) -> [Key] {
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
            if case .ready(let entry) = slot, entry.pins == 0, expected[key] == nil { candidates.append((key, entry)) }
        }
        candidates.sort { $0.entry.lastUse < $1.entry.lastUse }
        return candidates
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
