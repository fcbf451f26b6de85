import HTTPTypes
import Hummingbird
import NIOCore

/// An error answered as one line of plain text, readable on an iPXE console.
///
/// Thrown from anywhere below a route; ``HTTPErrorMiddleware`` renders it once. The message is
/// public: it never names a server path, and it is cut to ``maximumLineBytes`` with control
/// characters replaced, whatever the thrower put in it. Details belong in the log.
package struct PlainTextError: HTTPResponseError, CustomStringConvertible {
    package var status: HTTPResponse.Status
    package var message: String
    package var headers: HTTPFields

    /// The longest answer line, newline included.
    package static let maximumLineBytes = 200

    package init(_ status: HTTPResponse.Status, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.headers = headers
    }

    package var description: String { "\(status.code) \(message)" }

    /// The message as it is sent: one line of at most ``maximumLineBytes`` bytes with its newline.
    package var publicLine: String { Self.oneLine(message) + "\n" }

    package func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = self.headers
        headers[.contentType] = "text/plain; charset=utf-8"
        let body = ByteBuffer(string: publicLine)
        headers[.contentLength] = "\(body.readableBytes)"
        return Response(status: status, headers: headers, body: request.method == .head ? .init() : .init(byteBuffer: body))
    }

    /// `text` with every control character replaced by a space, cut (at a character boundary, with
    /// an ellipsis) so that it and a newline fit ``maximumLineBytes``.
    package static func oneLine(_ text: String) -> String {
        var line = String(text.unicodeScalars.map { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) ? " " : Character($0) })
        let limit = maximumLineBytes - 1
        guard line.utf8.count > limit else { return line }
        let ellipsis = "…"
        var cut = ""
        for character in line {
            if cut.utf8.count + character.utf8.count + ellipsis.utf8.count > limit { break }
            cut.append(character)
        }
        line = cut + ellipsis
        return line
    }
}

extension PlainTextError {
    /// 503 with `Retry-After`, which iPXE honours by waiting and asking again: the work goes on.
    package static func retryLater(_ reason: String, seconds: Int = Resolution.retryDelay) -> PlainTextError {
        PlainTextError(.serviceUnavailable, reason, headers: [.retryAfter: "\(seconds)"])
    }

    /// 503 for a request whose work was cancelled because the server is stopping.
    package static let shuttingDown = PlainTextError(.serviceUnavailable, "the server is shutting down; try again later")

    /// Maps the host's own errors to statuses: bad names are 400, failing Nix is 502, anything else 500.
    package static func from(_ error: any Error) -> PlainTextError {
        switch error {
        case let error as PlainTextError: error
        case let error as StorePathError: PlainTextError(.badRequest, "not a store path name: it \(error.reason)")
        case let error as DispatchError:
            switch error {
            case .badRequest(let reason): PlainTextError(.badRequest, reason)
            case .notFound(let reason): PlainTextError(.notFound, reason)
            case .upstreamFailed(let reason): PlainTextError(.badGateway, reason)
            }
        case CacheError.outOfSpace:
            PlainTextError(.init(code: 507, reasonPhrase: "Insufficient Storage"), "the server's cpio cache is out of disk space; try again later")
        case CacheError.stopped: shuttingDown
        case let error as NixCommandError:
            PlainTextError(.badGateway, "nix failed: \((error.command.first ?? "nix").split(separator: "/").last ?? "nix") (details in the server log)")
        default: PlainTextError(.internalServerError, "internal error (details in the server log)")
        }
    }
}
