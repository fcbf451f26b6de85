extension Task where Failure == any Error, Success: Sendable {
    /// Waits for the task's result for at most `timeout`; nil if it is still running then.
    ///
    /// The task itself is neither cancelled nor awaited past the deadline: it keeps running, and a
    /// later caller may wait for it again.
    public func result(within timeout: Duration) async -> Result<Success, any Error>? {
        let (stream, continuation) = AsyncStream.makeStream(of: Result<Success, any Error>?.self, bufferingPolicy: .bufferingNewest(1))
        let waiter = Task<Void, Never> {
            continuation.yield(await self.result)
            continuation.finish()
        }
        let timer = Task<Void, Never> {
            try? await Task<Never, Never>.sleep(for: timeout)
            continuation.yield(nil)
            continuation.finish()
        }
        var first: Result<Success, any Error>?? = nil
        for await outcome in stream {
            first = outcome
            break
        }
        timer.cancel()
        _ = waiter  // ends by itself when the task does
        return first ?? nil
    }
}
