import Synchronization

/// Shares a fixed amount of buffer memory among the response bodies streaming at the same moment.
///
/// Each body reads chunks of the budget divided by the number of bodies in flight (a power of two
/// between ``minimumChunk`` and its own maximum), so a lone download uses large chunks (cheapest
/// per byte) and a rack powering on at once holds a bounded amount of memory: each connection has
/// at most about two chunks in memory (one queued on the socket, one just read).
package final class StreamingBudget: Sendable {
    /// The smallest chunk, whatever the number of bodies.
    package static let minimumChunk = 64 << 10

    /// Bytes of chunks all bodies together aim to hold at once.
    package let bytes: Int
    private let streams = Atomic<Int>(0)

    package init(bytes: Int) { self.bytes = bytes }

    /// Bodies streaming now.
    package var activeStreams: Int { streams.load(ordering: .relaxed) }

    /// A body starts streaming.
    package func enter() { streams.add(1, ordering: .relaxed) }

    /// A body ended (finished or failed).
    package func leave() { streams.subtract(1, ordering: .relaxed) }

    /// The chunk size for the next read of a body whose largest chunk is `maximum`.
    package func chunkSize(maximum: Int) -> Int {
        let share = bytes / max(1, activeStreams)
        var size = maximum
        while size > Self.minimumChunk && size > share { size >>= 1 }
        return size
    }
}
