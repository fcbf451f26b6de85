import Hummingbird
import HummingbirdCore
import Logging
import NIOCore

/// Hummingbird's HTTP/1 connection with bounds: at most ``ConnectionLimiter/limit`` connections
/// are served at once (one more is answered 503 and closed as soon as it is accepted, see
/// ``ConnectionRefusalHandler``), and every served connection reads its requests through
/// ``RequestReadingHandler`` (deadlines, one-line answers to malformed requests).
package struct BoundedHTTP1Channel: ServerChildChannel {
    /// A served connection, or one refused at the cap.
    package enum Value: ServerChildChannelValue {
        case served(HTTP1Channel.Value)
        case refused(any Channel)

        package var channel: any Channel {
            switch self {
            case .served(let value): value.channel
            case .refused(let channel): channel
            }
        }
    }

    package let http: HTTP1Channel
    package let limiter: ConnectionLimiter

    package init(http: HTTP1Channel, limiter: ConnectionLimiter) {
        self.http = http
        self.limiter = limiter
    }

    package func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        guard limiter.tryAcquire() else {
            return channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(ConnectionRefusalHandler())
                return .refused(channel)
            }
        }
        let limiter = self.limiter
        channel.closeFuture.whenComplete { _ in limiter.release() }
        return http.setup(channel: channel, logger: logger).map { .served($0) }
    }

    package func handle(value: Value, logger: Logger) async {
        switch value {
        case .served(let value): await http.handle(value: value, logger: logger)
        case .refused: break
        }
    }
}

extension HTTPServerBuilder {
    /// HTTP/1 with the server's bounds (see ``BoundedHTTP1Channel`` and ``RequestReadingHandler``).
    package static func boundedHTTP1(
        limiter: ConnectionLimiter, headerTimeout: Double, idleTimeout: Double, maxHeaderBytes: Int, logger: Logger
    ) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            let configuration = HTTP1Channel.Configuration(
                additionalChannelHandlers: [
                    RequestReadingHandler(headerTimeout: headerTimeout, idleTimeout: idleTimeout, maxHeaderBytes: maxHeaderBytes, logger: logger)
                ],
                idleTimeout: nil,
                httpDecoderConfiguration: .init(maxHeaderFieldSize: maxHeaderBytes, maxHeaderListSize: maxHeaderBytes))
            return BoundedHTTP1Channel(http: HTTP1Channel(responder: responder, configuration: configuration), limiter: limiter)
        }
    }
}
