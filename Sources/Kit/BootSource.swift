import ServiceLifecycle

/// A way to find the system a machine should boot, served under `/dispatch/NAME/…`.
///
/// A source turns the rest of the URL into a store path. The host pins that path against garbage
/// collection and redirects the machine to `/boot/PATH/netboot.ipxe`, keeping the tuning query.
/// Sources live in their own modules and are registered by the executable.
public protocol BootSource: Sendable {
    /// The URL segment after `/dispatch/`, e.g. `"profile"`.
    var name: String { get }
    /// Why this source cannot serve on this server (nil when it can): answered as a 404.
    var notConfiguredReason: String? { get }
    /// Turns the request into a store path to boot. Throw ``DispatchError`` for refusals.
    func resolve(_ request: DispatchRequest) async throws -> Resolution
    /// The background work the source owns (its ``WorkCoordinator``s): the host runs these services
    /// for as long as the server runs, and their jobs end with them.
    var services: [any Service] { get }
}

extension BootSource {
    public var notConfiguredReason: String? { nil }
    public var services: [any Service] { [] }
}

/// What a source is asked to resolve.
public struct DispatchRequest: Sendable {
    /// The validated, percent-decoded URL segments after `/dispatch/SOURCE/`.
    public var segments: [String]
    /// The raw query string (without `?`), passed on to the redirect.
    public var query: String?

    public init(segments: [String], query: String?) {
        self.segments = segments
        self.query = query
    }

    /// The segments, or a 400 if there are not exactly `count` of them.
    public func segments(_ count: Int, usage: String) throws(DispatchError) -> [String] {
        guard segments.count == count else { throw .badRequest("expected \(usage)") }
        return segments
    }
}

/// The answer of a ``BootSource``.
public enum Resolution: Sendable, Equatable {
    /// Boot this store path.
    case storePath(StorePath)
    /// Still working on it: answered `503` with `Retry-After`, which iPXE honours by itself.
    case retryLater(seconds: Int, reason: String)
    /// It failed, but may work later (e.g. a configuration being edited): answered with an iPXE
    /// script that shows the reason, waits, and asks again.
    case failed(reason: String)
}

extension Resolution {
    /// Seconds a machine waits before it asks again: the `Retry-After` of a 503 and the pause of the
    /// retry script.
    public static let retryDelay = 5

    /// Still working on it (a build, a lookup): ask again after ``retryDelay`` seconds.
    public static func stillWorking(_ reason: String) -> Resolution { .retryLater(seconds: retryDelay, reason: reason) }
}
