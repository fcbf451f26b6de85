import Hummingbird
import Logging
import NIOCore

/// The request context of every route: Hummingbird's core storage plus the connection, which the
/// access log (client address) and the streaming writer (back-pressure) need.
package struct NetbootRequestContext: RequestContext, RemoteAddressRequestContext {
    package var coreContext: CoreRequestContextStorage
    /// The connection the request came on.
    package let channel: any Channel
    /// Who the request came from: the connection's peer, or the address a trusted proxy forwarded
    /// (set by ``ClientAddressMiddleware``).
    package var client: TrustedProxies.Client

    package init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
        self.client = .init(address: source.channel.remoteAddress?.ipAddress, forwarded: false)
    }

    package var remoteAddress: SocketAddress? { channel.remoteAddress }

    /// The client's address as the access log shows it: `IP:PORT` of the connection, or the
    /// forwarded address and the proxy's `IP:PORT`.
    package var clientLabel: String {
        let peer = remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "-"
        guard client.forwarded else { return peer }
        return "\(client.address ?? "-") via \(peer)"
    }
}
