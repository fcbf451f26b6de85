import HTTPTypes
import Hummingbird

/// Sets each request's client (``NetbootRequestContext/client``) from `X-Forwarded-For` when its
/// connection comes from a `--trusted-proxy` (see ``TrustedProxies``); otherwise it stays the peer.
package struct ClientAddressMiddleware: RouterMiddleware {
    package typealias Context = NetbootRequestContext

    package let proxies: TrustedProxies

    package init(proxies: TrustedProxies) { self.proxies = proxies }

    static let forwardedFor = HTTPField.Name("X-Forwarded-For")

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard !proxies.isEmpty, let name = Self.forwardedFor else { return try await next(request, context) }
        var context = context
        context.client = proxies.client(peer: context.remoteAddress?.ipAddress, forwardedFor: request.headers[values: name])
        return try await next(request, context)
    }
}
