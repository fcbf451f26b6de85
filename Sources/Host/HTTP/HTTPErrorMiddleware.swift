import HTTPTypes
import Hummingbird
import Logging

/// Renders every error thrown below it exactly once, as one line of plain text.
///
/// - ``PlainTextError`` (and the host's errors it maps) keep their status and public message.
/// - Hummingbird's `HTTPError` keeps its status; the router's 404 for a path that some route takes
///   with another method becomes 405 with `Allow` (see ``RouteTable``).
/// - Anything else is a 500 whose details go to the log, never to the client.
///
/// Added to the router before any route, so it answers alike in memory and on a live server, for
/// matched and unmatched requests.
package struct HTTPErrorMiddleware: RouterMiddleware {
    package typealias Context = NetbootRequestContext

    package let routes: RouteTable
    /// Where server failures (5xx but 503) are noted for the status page.
    package let activity: ServerActivity?

    package init(routes: RouteTable, activity: ServerActivity? = nil) {
        self.routes = routes
        self.activity = activity
    }

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let rendered = render(error, for: request)
            // 503 is "still working, ask again": not a failure.
            if rendered.status.code >= 500 && rendered.status != .serviceUnavailable {
                context.logger.error("request failed", metadata: ["status": "\(rendered.status.code)", "error": "\(error)"])
                activity?.failed("\(request.method.rawValue) \(request.uri.path): \(rendered.status.code) \(rendered.message)")
            } else {
                context.logger.debug("request refused", metadata: ["status": "\(rendered.status.code)", "reason": "\(rendered.message)"])
            }
            return try rendered.response(from: request, context: context)
        }
    }

    /// The answer for `error`.
    package func render(_ error: any Error, for request: Request) -> PlainTextError {
        guard let error = error as? HTTPError else { return PlainTextError.from(error) }
        if error.status == .notFound {
            let allowed = routes.allowedMethods(for: request.uri.path)
            if !allowed.isEmpty && !allowed.contains(request.method) {
                let list = allowed.map(\.rawValue).joined(separator: ", ")
                return PlainTextError(.methodNotAllowed, "\(request.method.rawValue) is not allowed here; use \(list)", headers: [.allow: list])
            }
            return PlainTextError(.notFound, error.body ?? "no such page on this server", headers: error.headers)
        }
        return PlainTextError(error.status, error.body ?? error.status.reasonPhrase.lowercased(), headers: error.headers)
    }
}
