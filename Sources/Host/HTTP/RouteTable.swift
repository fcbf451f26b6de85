import HTTPTypes
import Hummingbird
import Synchronization

/// The paths the server answers and the methods each takes, recorded as routes are added.
///
/// Hummingbird's router answers a known path requested with another method exactly as an unknown
/// path (404); the error middleware asks this table to tell the two apart and answer 405 with `Allow`.
package final class RouteTable: Sendable {
    private let routes = Mutex<[(path: RouterPath, methods: Set<HTTPRequest.Method>)]>([])

    package init() {}

    /// Records that `path` answers `method`.
    package func record(_ path: RouterPath, _ method: HTTPRequest.Method) {
        routes.withLock { routes in
            if let index = routes.firstIndex(where: { $0.path == path }) {
                routes[index].methods.insert(method)
            } else {
                routes.append((path, [method]))
            }
        }
    }

    /// The methods some route takes at `path`, sorted; empty when no route matches the path.
    package func allowedMethods(for path: String) -> [HTTPRequest.Method] {
        let components = path.split(separator: "/", omittingEmptySubsequences: true)
        let methods = routes.withLock { routes in
            routes.filter { Self.matches($0.path, components) }.reduce(into: Set<HTTPRequest.Method>()) { $0.formUnion($1.methods) }
        }
        return methods.sorted { $0.rawValue < $1.rawValue }
    }

    /// Matches as Hummingbird's trie does for the patterns we use: one element per component, and a
    /// trailing `**` takes one or more components.
    static func matches(_ pattern: RouterPath, _ components: [Substring]) -> Bool {
        var index = 0
        for (position, element) in pattern.enumerated() {
            if element == .recursiveWildcard && position == pattern.count - 1 { return index < components.count }
            guard index < components.count, element ~= components[index] else { return false }
            index += 1
        }
        return index == components.count
    }
}

extension Router where Context == NetbootRequestContext {
    /// Adds `handler` for `GET` at `path` and for `HEAD` (the same handler, its response's headers —
    /// `Content-Length` included — without the body, which is never read), recording both in `table`.
    /// A handler that holds resources until its body is written must check for `HEAD` itself.
    package func getAndHead(
        _ path: RouterPath, recordingIn table: RouteTable,
        use handler: @escaping @Sendable (Request, Context) async throws -> some ResponseGenerator
    ) {
        get(path, use: handler)
        head(path) { request, context in
            let response = try await handler(request, context).response(from: request, context: context)
            return Response(status: response.status, headers: response.headers, body: .init())
        }
        table.record(path, .get)
        table.record(path, .head)
    }
}
