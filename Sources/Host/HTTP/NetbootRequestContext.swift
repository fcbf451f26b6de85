import Hummingbird
import Logging
import NIOCore

/// The request context of every route: Hummingbird's core storage plus the connection, which the
/// access log (client address) and the streaming writer (back-pressure) need.
public struct NetbootRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The connection the request came on.
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }

    public var remoteAddress: SocketAddress? { channel.remoteAddress }
}
