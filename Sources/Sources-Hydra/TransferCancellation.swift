import Synchronization

/// Set when the task waiting for a transfer is cancelled; read by the transfer's progress callback.
final class TransferCancellation: Sendable {
    /// The failure's message for a transfer stopped this way.
    static let message = "the transfer was cancelled (nobody waits for it any more)"

    private let cancelled = Atomic<Bool>(false)

    var isCancelled: Bool { cancelled.load(ordering: .acquiring) }

    func cancel() { cancelled.store(true, ordering: .releasing) }
}
