import HTTPTypes
import Hummingbird
import NIOCore

/// An error answered as one line of plain text, readable on an iPXE console.
///
/// Thrown from anywhere below a route; Hummingbird renders it once. 5xx errors are also logged by
/// the access log with their reason.
public struct PlainTextError: HTTPResponseError, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var message: String
    public var headers: HTTPFields

    public init(_ status: HTTPResponse.Status, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.headers = headers
    }

    public var description: String { "\(status.code) \(message)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = self.headers
        headers[.contentType] = "text/plain; charset=utf-8"
        let body = ByteBuffer(string: message + "\n")
        headers[.contentLength] = "\(body.readableBytes)"
        return Response(status: status, headers: headers, body: request.method == .head ? .init() : .init(byteBuffer: body))
    }
}

extension PlainTextError {
    /// Maps the host's own errors to statuses: bad names are 400, failing Nix is 502.
    public static func from(_ error: any Error) -> PlainTextError {
        switch error {
        case let error as PlainTextError: error
        case let error as StorePathError: PlainTextError(.badRequest, "not a store path name: \(error)")
        case let error as DispatchError:
            switch error {
            case .badRequest(let reason): PlainTextError(.badRequest, reason)
            case .notFound(let reason): PlainTextError(.notFound, reason)
            case .upstreamFailed(let reason): PlainTextError(.badGateway, reason)
            }
        case CacheError.outOfSpace:
            PlainTextError(.init(code: 507, reasonPhrase: "Insufficient Storage"), "the server's cpio cache is out of disk space; try again later")
        case let error as NixCommandError: PlainTextError(.badGateway, "nix failed: \(error.command.first ?? "nix") \(error.status) (details in the server log)")
        default: PlainTextError(.internalServerError, "internal error (details in the server log)")
        }
    }
}
