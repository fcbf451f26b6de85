import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// Guards the reading of every request on a connection, after HTTP decoding and before Hummingbird:
///
/// - the header deadline: a request's headers must be complete within ``headerTimeout`` of accept,
///   or of the end of the previous response (not per byte: a trickle is cut too);
/// - the idle deadline: a waiting connection that receives nothing for ``idleTimeout`` is closed;
/// - parser failures (malformed, oversized, unsupported version) and a request cut short by the
///   client get a one-line plain-text answer instead of an empty 400.
///
/// A connection cut while nothing of a next request had arrived is closed silently; one holding
/// part of a request gets 408. Deadlines never run while a response is under way.
final class RequestReadingHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let headerTimeout: Double
    let idleTimeout: Double
    let maxHeaderBytes: Int
    let logger: Logger
    private var state = RequestReadingStateMachine()
    private var headerDeadline: Scheduled<Void>?
    private var idleDeadline: Scheduled<Void>?
    private var lingerDeadline: Scheduled<Void>?
    /// The connection ends with the next response: a `CONNECT` was asked (NIO's encoder sends its
    /// answer without a body or a length), or the parser failed while a request was being answered.
    private var closeAfterResponse = false
    /// Parts were decoded since the last end of a read.
    private var decodedParts = false

    /// The longest the connection stays open after an answer of ours, reading and dropping what the
    /// client still sends (closing with unread bytes would reset the connection and destroy the answer).
    static let lingerTime = TimeAmount.seconds(1)

    init(headerTimeout: Double, idleTimeout: Double, maxHeaderBytes: Int, logger: Logger) {
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
        self.maxHeaderBytes = maxHeaderBytes
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { perform(state.connectionActive(), context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelDeadlines()
    }

    func channelActive(context: ChannelHandlerContext) {
        perform(state.connectionActive(), context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelDeadlines()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !state.closing else { return }
        decodedParts = true
        switch unwrapInboundIn(data) {
        case .head(let head):
            if head.method == .connect { closeAfterResponse = true }
            perform(state.headRead(), context)
        case .body: break
        case .end: state.endRead()
        }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        perform(state.bytesArrived(decodedParts: decodedParts), context)
        decodedParts = false
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            context.write(data, promise: promise)
            if closeAfterResponse {
                context.flush()
                end(.close, context, event: nil)
                return
            }
            perform(state.responseEnded(), context)
        } else {
            context.write(data, promise: promise)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if state.closing { return }
        guard let answer = Self.answer(for: error, maxHeaderBytes: maxHeaderBytes) else {
            context.fireErrorCaught(error)
            return
        }
        end(state.parserFailed(answer), context, event: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event as? ChannelEvent == .inputClosed else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        if state.closing {
            // After an answer of ours: done. While a request is still being answered: after that.
            if !closeAfterResponse { context.close(promise: nil) }
            return
        }
        end(state.inputClosed(), context, event: event)
    }

    /// The answer to an error of the HTTP layer; nil for errors that are not about the request's bytes.
    static func answer(for error: any Error, maxHeaderBytes: Int) -> RequestReadingStateMachine.Answer? {
        if error is ByteToMessageDecoderError.PayloadTooLargeError {
            return .init(status: .requestHeaderFieldsTooLarge, text: "request too large")
        }
        if case ByteToMessageDecoderError.dataReceivedInErrorState = error {
            return .init(status: .badRequest, text: "malformed request")
        }
        if error is HTTP1TypeConversionError {
            return .init(status: .badRequest, text: "malformed request: unsupported method or request target")
        }
        guard let error = error as? HTTPParserError else { return nil }
        switch error {
        case .headerOverflow:
            return .init(status: .requestHeaderFieldsTooLarge, text: "request line and headers longer than \(maxHeaderBytes) bytes")
        case .invalidVersion:
            // 505 would be a 5xx for a client's mistake: this server speaks HTTP/1.0 and 1.1.
            return .init(status: .badRequest, text: "unsupported HTTP version: use HTTP/1.1")
        case .invalidEOFState:
            return .init(status: .badRequest, text: "incomplete request: the connection was closed before its end")
        case .invalidMethod:
            return .init(status: .badRequest, text: "malformed request: unknown method")
        case .invalidURL, .invalidPath, .invalidQueryString, .invalidFragment, .invalidHost, .invalidPort:
            return .init(status: .badRequest, text: "malformed request target")
        case .invalidHeaderToken, .invalidContentLength, .unexpectedContentLength, .invalidChunkSize:
            return .init(status: .badRequest, text: "malformed request header")
        default:
            return .init(status: .badRequest, text: "malformed request")
        }
    }

    private func end(_ ending: RequestReadingStateMachine.Ending, _ context: ChannelHandlerContext, event: Any?) {
        switch ending {
        case .answer(let answer):
            cancelDeadlines()
            logger.debug("answered before routing", metadata: [
                "status": "\(answer.status.code)", "reason": "\(answer.text)",
                "client": "\(context.channel.remoteAddress.map { "\($0)" } ?? "-")",
            ])
            let body = ByteBuffer(string: PlainTextError.oneLine(answer.text) + "\n")
            let head = HTTPResponse(status: answer.status, headerFields: [
                .contentType: "text/plain; charset=utf-8", .contentLength: "\(body.readableBytes)", .connection: "close",
            ])
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(body)), promise: nil)
            let written = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
            written.futureResult.assumeIsolated().whenComplete { _ in context.close(mode: .output, promise: nil) }
            lingerDeadline = context.eventLoop.assumeIsolated().scheduleTask(in: Self.lingerTime) { context.close(promise: nil) }
        case .close:
            cancelDeadlines()
            context.close(promise: nil)
        case .closeAfterResponse:
            closeAfterResponse = true
        case .passOn:
            if let event { context.fireUserInboundEventTriggered(event) }
        case .ignore:
            break
        }
    }

    private func perform(_ action: RequestReadingStateMachine.TimerAction, _ context: ChannelHandlerContext) {
        switch action {
        case .startBoth:
            cancelDeadlines()
            headerDeadline = schedule(.header, after: headerTimeout, context)
            idleDeadline = schedule(.idle, after: idleTimeout, context)
        case .restartIdle:
            idleDeadline?.cancel()
            idleDeadline = schedule(.idle, after: idleTimeout, context)
        case .cancelBoth:
            cancelDeadlines()
        case .none:
            break
        }
    }

    private func schedule(_ deadline: RequestReadingStateMachine.Deadline, after seconds: Double, _ context: ChannelHandlerContext) -> Scheduled<Void> {
        context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(seconds * 1_000_000_000))) {
            self.end(self.state.deadlinePassed(deadline, seconds: seconds), context, event: nil)
        }
    }

    private func cancelDeadlines() {
        lingerDeadline?.cancel()
        lingerDeadline = nil
        headerDeadline?.cancel()
        idleDeadline?.cancel()
        headerDeadline = nil
        idleDeadline = nil
    }
}
