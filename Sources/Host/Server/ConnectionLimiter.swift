import Logging
import Synchronization

/// Counts open connections against a cap shared by every event loop.
package final class ConnectionLimiter: Sendable {
    package let limit: Int
    private let open = Atomic<Int>(0)
    /// Whether the last connection offered was refused (so a run of refusals logs once).
    private let refusing = Atomic<Bool>(false)
    private let logger: Logger

    package init(limit: Int, logger: Logger) {
        self.limit = max(1, limit)
        self.logger = logger
    }

    /// The connections open now.
    package var openConnections: Int { open.load(ordering: .relaxed) }

    /// Takes a place for a new connection; false when all ``limit`` places are taken.
    package func tryAcquire() -> Bool {
        var current = open.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = open.compareExchange(expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged {
                if refusing.exchange(false, ordering: .relaxed) {
                    logger.notice("accepting connections again", metadata: ["open": "\(current + 1)", "limit": "\(limit)"])
                }
                return true
            }
            current = original
        }
        if !refusing.exchange(true, ordering: .relaxed) {
            logger.warning("at the connection limit; refusing new connections with 503", metadata: ["limit": "\(limit)"])
        }
        return false
    }

    /// Gives back the place of a connection that closed.
    package func release() {
        open.subtract(1, ordering: .relaxed)
    }
}
