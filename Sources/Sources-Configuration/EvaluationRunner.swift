/// Runs jobs through a ``CoalescingQueue``: one running and one queued per key.
///
/// The job gets its id, which grows with the order jobs start (per key); the caller gets the id of
/// the job that answered it together with the result.
public actor EvaluationRunner<Key: Hashable & Sendable, Value: Sendable> {
    public typealias Job = @Sendable (Key, UInt64) async throws -> Value

    private var queue = CoalescingQueue<Key, UInt64>()
    private var continuations: [UInt64: CheckedContinuation<(UInt64, Value), any Error>] = [:]
    private var nextWaiter: UInt64 = 0
    private let job: Job

    public init(job: @escaping Job) { self.job = job }

    /// Waits for a job of `key` that started after this call, and returns its id and result.
    public func run(_ key: Key) async throws -> (id: UInt64, value: Value) {
        nextWaiter += 1
        let waiter = nextWaiter
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<(UInt64, Value), any Error>) in
                continuations[waiter] = continuation
                if case .start(let id) = queue.arrive(key, waiter: waiter) { start(key, id) }
            }
        } onCancel: {
            Task { await self.cancel(key, waiter) }
        }
    }

    private func start(_ key: Key, _ id: UInt64) {
        let job = self.job
        Task {
            let result: Result<Value, any Error>
            do { result = .success(try await job(key, id)) } catch { result = .failure(error) }
            self.finish(key, id, result)
        }
    }

    private func finish(_ key: Key, _ id: UInt64, _ result: Result<Value, any Error>) {
        let (waiters, next) = queue.finished(key)
        for waiter in waiters {
            continuations.removeValue(forKey: waiter)?.resume(with: result.map { (id, $0) })
        }
        if let next { start(key, next) }
    }

    private func cancel(_ key: Key, _ waiter: UInt64) {
        guard queue.cancel(key, waiter: waiter) else { return }
        continuations.removeValue(forKey: waiter)?.resume(throwing: CancellationError())
    }
}
