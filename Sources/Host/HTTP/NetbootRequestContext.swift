import Hummingbird
import Logging
import NIOCore

/// The request context of every route: Hummingbird's core storage plus the connection, which the
/// access log (client address) and the streaming writer (back-pressure) need.
package struct NetbootRequestContext: RequestContext, RemoteAddressRequestContext {
    package var coreContext: CoreRequestContextStorage
    /// The connection the request came on.
    package let channel: any Channel

    package init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }

    package var remoteAddress: SocketAddress? { channel.remoteAddress }
}
