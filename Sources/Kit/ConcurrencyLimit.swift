import Synchronization

/// At most `limit` holders at once; the others wait in arrival order (an async counting semaphore).
///
/// Bounds what each request may start on the machine, e.g. Nix processes: a client asking for
/// thousands of distinct names at once then waits for slots instead of forking thousands of
/// `nix-store`s. A waiter that is cancelled leaves the queue and gets `CancellationError`.
public final class ConcurrencyLimit: Sendable {
    struct State {
        var available: Int
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        var lastID: UInt64 = 0
        var highWater = 0
    }

    public let limit: Int
    private let state: Mutex<State>

    public init(_ limit: Int) {
        precondition(limit > 0)
        self.limit = limit
        self.state = Mutex(State(available: limit))
    }

    /// The most holders seen at once (for tests and logs).
    public var highWater: Int { state.withLock { $0.highWater } }

    /// Runs `body` holding one slot, waiting for it first if all are taken.
    public func withSlot<Result: Sendable>(_ body: () async throws -> Result) async throws -> Result {
        try await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async throws {
        let id = state.withLock { state in
            state.lastID += 1
            return state.lastID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                if Task.isCancelled { return continuation.resume(throwing: CancellationError()) }
                let granted = state.withLock { state in
                    if state.available > 0 && state.waiters.isEmpty {
                        state.available -= 1
                        state.highWater = max(state.highWater, limit - state.available)
                        return true
                    }
                    state.waiters.append((id, continuation))
                    return false
                }
                if granted { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    private func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            guard !state.waiters.isEmpty else {
                state.available += 1
                return nil
            }
            // The slot passes straight to the oldest waiter.
            return state.waiters.removeFirst().continuation
        }
        next?.resume()
    }
}
