/// A map that keeps at most `capacity` entries, forgetting the least recently used ones first.
///
/// Memos of the server (closures of systems, paths known valid) are filled by what clients ask for,
/// and anyone can ask for anything: each is bounded by count. Lookups and inserts are O(1); when the
/// map grows past its capacity, the oldest eighth is dropped at once (amortised O(log n) per insert).
package struct RecentlyUsed<Key: Hashable, Value> {
    package let capacity: Int
    private var entries: [Key: (value: Value, stamp: UInt64)] = [:]
    private var clock: UInt64 = 0

    package init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    package var count: Int { entries.count }

    /// The value of `key`, which becomes the most recently used.
    package mutating func value(_ key: Key) -> Value? {
        guard let entry = entries[key] else { return nil }
        clock += 1
        entries[key] = (entry.value, clock)
        return entry.value
    }

    /// Whether `key` is present (without making it more recent).
    package func contains(_ key: Key) -> Bool { entries[key] != nil }

    /// Sets `key` to `value`, the most recently used; drops the oldest entries beyond the capacity.
    package mutating func insert(_ key: Key, _ value: Value) {
        clock += 1
        entries[key] = (value, clock)
        guard entries.count > capacity else { return }
        let drop = max(1, capacity / 8) + entries.count - capacity - 1
        let oldest = entries.sorted { $0.value.stamp < $1.value.stamp }.prefix(drop)
        for (key, _) in oldest { entries[key] = nil }
    }

    /// Forgets `key`.
    package mutating func remove(_ key: Key) { entries[key] = nil }
}
