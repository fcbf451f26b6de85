/// The bookkeeping of dispatch pins, without any I/O.
///
/// One pin per store path: the first dispatch of a path creates it (one Nix call), every later one
/// only moves its last use forward, and a pin expires `lifetime` seconds after its last use. It
/// decides; ``GCRootPins`` acts. Every mutating method returns what the caller must do.
package struct PinTable<Path: Hashable> {
    /// A pin's state.
    package enum Entry: Equatable {
        /// Its root is being made; dispatches of the path meanwhile wait for that.
        case creating
        /// Its root exists. `lastUse` is the newest dispatch; `persisted` what the root's mtime says.
        case pinned(lastUse: Int64, persisted: Int64)
    }

    /// What the caller of ``dispatch(_:now:)`` does next.
    package enum DispatchAction: Equatable {
        /// Pinned already; its last use moved forward. If `persist`, write the new time to the root
        /// (its mtime), so that a restart keeps it.
        case extended(persist: Bool)
        /// Another dispatch is making the root: wait for it.
        case wait
        /// Make the root now (the caller is the one to do it), after removing the roots of `evict`
        /// (the least recently used pins beyond the cap).
        case create(evict: [Path])
    }

    /// Seconds a pin lives after its last use.
    package let lifetime: Int64
    /// Most pins at once (creating ones included).
    package let capacity: Int
    private(set) var entries: [Path: Entry] = [:]

    package init(lifetime: Int64, capacity: Int) {
        precondition(capacity > 0)
        self.lifetime = lifetime
        self.capacity = capacity
    }

    /// Number of pins (creating ones included).
    package var count: Int { entries.count }

    /// The state of `path`'s pin, if any.
    package func entry(_ path: Path) -> Entry? { entries[path] }

    /// Whether `path` has a live root (so it is valid and cannot be collected).
    package func isPinned(_ path: Path, now: Int64) -> Bool {
        if case .pinned(let lastUse, _)? = entries[path] { return now - lastUse < lifetime }
        return false
    }

    /// Takes in a root found on disk at start-up, last used at `lastUse`. Returns the paths whose
    /// roots must be removed: this one if it expired already, or the least recently used beyond the cap.
    package mutating func adopt(_ path: Path, lastUse: Int64, now: Int64) -> [Path] {
        if now - lastUse >= lifetime { return [path] }
        if case .pinned(let known, _)? = entries[path], known >= lastUse { return [] }
        entries[path] = .pinned(lastUse: lastUse, persisted: lastUse)
        return evictBeyondCapacity(keeping: path)
    }

    /// A dispatch of `path` at `now`.
    package mutating func dispatch(_ path: Path, now: Int64) -> DispatchAction {
        switch entries[path] {
        case .creating?:
            return .wait
        case .pinned(let lastUse, let persisted)? where now - lastUse < lifetime:
            let newest = max(lastUse, now)
            // At most one write of the time per path per second.
            let persist = newest > persisted
            entries[path] = .pinned(lastUse: newest, persisted: persist ? newest : persisted)
            return .extended(persist: persist)
        case .pinned?, nil:
            // Expired (and not swept yet) or new: the root is made again, so Nix checks the path.
            entries[path] = .creating
            return .create(evict: evictBeyondCapacity(keeping: path))
        }
    }

    /// The root of `path` was made at `now` (or, if `succeeded` is false, could not be).
    package mutating func creationEnded(_ path: Path, succeeded: Bool, now: Int64) {
        guard entries[path] == .creating else { return }
        entries[path] = succeeded ? .pinned(lastUse: now, persisted: now) : nil
    }

    /// Pins whose lifetime ended by `now`: forgotten here, their roots to be removed by the caller.
    package mutating func sweep(now: Int64) -> [Path] {
        var expired: [Path] = []
        for (path, entry) in entries {
            if case .pinned(let lastUse, _) = entry, now - lastUse >= lifetime { expired.append(path) }
        }
        for path in expired { entries[path] = nil }
        return expired
    }

    /// Drops the least recently used pinned entries (never one being created, never `keeping`)
    /// until the table is within its capacity.
    private mutating func evictBeyondCapacity(keeping: Path) -> [Path] {
        guard entries.count > capacity else { return [] }
        var candidates: [(path: Path, lastUse: Int64)] = []
        for (path, entry) in entries where path != keeping {
            if case .pinned(let lastUse, _) = entry { candidates.append((path, lastUse)) }
        }
        candidates.sort { $0.lastUse < $1.lastUse }
        let evicted = candidates.prefix(entries.count - capacity).map(\.path)
        for path in evicted { entries[path] = nil }
        return evicted
    }
}
