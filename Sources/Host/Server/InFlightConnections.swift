import Hummingbird
import NIOCore
import Synchronization

/// The connections that have sent a request, until they close: what a shutdown closes once its
/// grace period is over (a client that stops reading would otherwise hold the server forever).
package final class InFlightConnections: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])

    package init() {}

    /// Connections open now that have sent a request.
    package var count: Int { channels.withLock { $0.count } }

    /// Tracks `channel` until it closes (once per connection, however many requests it carries).
    package func track(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        let added = channels.withLock { channels in
            guard channels[id] == nil else { return false }
            channels[id] = channel
            return true
        }
        guard added else { return }
        channel.closeFuture.whenComplete { _ in
            _ = self.channels.withLock { $0.removeValue(forKey: id) }
        }
    }

    /// Closes every tracked connection; returns how many there were.
    @discardableResult
    package func closeAll() -> Int {
        let open = channels.withLock { Array($0.values) }
        for channel in open { channel.close(promise: nil) }
        return open.count
    }
}

/// Tracks the connection of every request in ``InFlightConnections``.
package struct InFlightConnectionsMiddleware: RouterMiddleware {
    package typealias Context = NetbootRequestContext
    package let connections: InFlightConnections

    package init(connections: InFlightConnections) { self.connections = connections }

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        connections.track(context.channel)
        return try await next(request, context)
    }
}
