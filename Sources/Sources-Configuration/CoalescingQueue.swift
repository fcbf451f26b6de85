/// Per key, at most one job running and one queued; arrivals while one runs join the queued one.
///
/// This is how configuration evaluations are bounded: a request must see the file as it was when it
/// asked (or newer), so it may not join an evaluation that started before it; but any number of
/// requests arriving during one evaluation can share the next. Pure bookkeeping, no I/O: the caller
/// starts the jobs the methods name and resumes the waiters they return.
public struct CoalescingQueue<Key: Hashable, Waiter: Hashable> {
    /// One job and the requesters waiting for it. Ids grow in the order jobs are created, which per
    /// key is also the order they start.
    public struct Batch: Equatable {
        public var id: UInt64
        public var waiters: [Waiter]
    }

    struct Slot {
        var running: Batch
        var queued: Batch?
    }

    /// What an arriving requester does.
    public enum Arrival: Equatable {
        /// Start job `id` now; the requester waits for it.
        case start(id: UInt64)
        /// Wait for the queued job `id`, which starts when the running one ends.
        case wait(id: UInt64)
    }

    private var slots: [Key: Slot] = [:]
    private var lastID: UInt64 = 0

    public init() {}

    /// The running and queued jobs of `key`.
    public func state(_ key: Key) -> (running: Batch?, queued: Batch?) { (slots[key]?.running, slots[key]?.queued) }

    public mutating func arrive(_ key: Key, waiter: Waiter) -> Arrival {
        guard var slot = slots[key] else {
            lastID += 1
            slots[key] = Slot(running: Batch(id: lastID, waiters: [waiter]))
            return .start(id: lastID)
        }
        if slot.queued == nil {
            lastID += 1
            slot.queued = Batch(id: lastID, waiters: [])
        }
        slot.queued!.waiters.append(waiter)
        slots[key] = slot
        return .wait(id: slot.queued!.id)
    }

    /// The running job of `key` ended: its waiters get the result, and the queued job (if any) starts.
    public mutating func finished(_ key: Key) -> (waiters: [Waiter], start: UInt64?) {
        guard let slot = slots[key] else { preconditionFailure("finished without a running job") }
        if let queued = slot.queued {
            slots[key] = Slot(running: queued)
            return (slot.running.waiters, queued.id)
        }
        slots[key] = nil
        return (slot.running.waiters, nil)
    }

    /// A waiter went away. Returns true if it was waiting. A queued job nobody waits for is dropped;
    /// a running one goes on (its result still counts).
    public mutating func cancel(_ key: Key, waiter: Waiter) -> Bool {
        guard var slot = slots[key] else { return false }
        if let index = slot.running.waiters.firstIndex(of: waiter) {
            slot.running.waiters.remove(at: index)
            slots[key] = slot
            return true
        }
        if var queued = slot.queued, let index = queued.waiters.firstIndex(of: waiter) {
            queued.waiters.remove(at: index)
            slot.queued = queued.waiters.isEmpty ? nil : queued
            slots[key] = slot
            return true
        }
        return false
    }
}
