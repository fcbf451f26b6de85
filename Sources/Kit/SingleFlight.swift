/// Runs one piece of async work per key at a time; everyone asking for the key meanwhile shares it.
///
/// The work runs in a task of its own, so a requester that goes away (or stops waiting after a
/// timeout) does not cancel it: the next requester for the key joins it instead.
public actor SingleFlight<Key: Hashable & Sendable, Value: Sendable> {
    private var inFlight: [Key: (id: UInt64, task: Task<Value, any Error>)] = [:]
    private var nextID: UInt64 = 0

    public init() {}

    /// What a bounded wait found.
    public enum Outcome: Sendable {
        case finished(Result<Value, any Error>)
        /// Still running when the wait ended; it keeps running.
        case stillRunning
    }

    /// Joins (or starts) the work for `key` and waits for it.
    public func run(_ key: Key, _ work: @escaping @Sendable () async throws -> Value) async throws -> Value {
        try await task(for: key, work).value
    }

    /// Joins (or starts) the work for `key` and waits at most `timeout`.
    public func run(_ key: Key, timeout: Duration, _ work: @escaping @Sendable () async throws -> Value) async -> Outcome {
        let task = task(for: key, work)
        guard let result = await task.result(within: timeout) else { return .stillRunning }
        return .finished(result)
    }

    /// Whether work for `key` is running.
    public func isRunning(_ key: Key) -> Bool { inFlight[key] != nil }

    private func task(for key: Key, _ work: @escaping @Sendable () async throws -> Value) -> Task<Value, any Error> {
        if let running = inFlight[key] { return running.task }
        nextID += 1
        let id = nextID
        let task = Task {
            defer { self.finished(key, id) }
            return try await work()
        }
        inFlight[key] = (id, task)
        return task
    }

    private func finished(_ key: Key, _ id: UInt64) {
        if inFlight[key]?.id == id { inFlight[key] = nil }
    }
}
