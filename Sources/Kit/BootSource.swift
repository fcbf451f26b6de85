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
    /// Whether `/dispatch/NAME` (no segment, e.g. `/dispatch/machine?mac=…`) reaches ``resolve(_:)``
    /// with empty segments; otherwise that path is no route (404).
    var acceptsEmptyPath: Bool { get }
    /// Scripts the source serves at top-level paths of its own (e.g. `/boot.ipxe`).
    var scripts: [SourceScript] { get }
    /// The additions this source returned under `key`, as they are now (nil when they are gone):
    /// asked when the boot script or the overlay of a ``Resolution/boot(_:additions:)`` is fetched.
    func additions(forKey key: String, router: any DispatchRouter) async throws -> BootAdditions?
    /// Lines the source adds to `/status` after the host's (one line each, no newline).
    func statusLines(router: any DispatchRouter) async -> [String]
}

extension BootSource {
    public var notConfiguredReason: String? { nil }
    public var services: [any Service] { [] }
    public var acceptsEmptyPath: Bool { false }
    public var scripts: [SourceScript] { [] }
    public func additions(forKey key: String, router: any DispatchRouter) async throws -> BootAdditions? { nil }
    public func statusLines(router: any DispatchRouter) async -> [String] { [] }
}

/// What a source is asked to resolve.
public struct DispatchRequest: Sendable {
    /// The validated, percent-decoded URL segments after `/dispatch/SOURCE/`.
    public var segments: [String]
    /// The raw query string (without `?`), passed on to the redirect.
    public var query: String?
    /// The client's IP address, when known (for the source's own records; not authentication).
    public var client: String?
    /// The other sources, for a source that composes them (nil where no host is, e.g. in a unit test).
    public var router: (any DispatchRouter)?

    public init(segments: [String], query: String?, client: String? = nil, router: (any DispatchRouter)? = nil) {
        self.segments = segments
        self.query = query
        self.client = client
        self.router = router
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
    /// Boot this store path with per-machine additions (kernel arguments, an overlay archive).
    case boot(StorePath, additions: BootAdditions)
    /// Still working on it: answered `503` with `Retry-After`, which iPXE honours by itself.
    case retryLater(seconds: Int, reason: String)
    /// It failed, but may work later (e.g. a configuration being edited): answered with an iPXE
    /// script that shows the reason, waits, and asks again.
    case failed(reason: String)
    /// Nothing to boot yet (e.g. an unknown machine): answered with an iPXE script that shows
    /// `lines`, waits `seconds` and asks the same URL again.
    case waitAndRetry(lines: [String], seconds: Int)
}

extension Resolution {
    /// Seconds a machine waits before it asks again: the `Retry-After` of a 503 and the pause of the
    /// retry script.
    public static let retryDelay = 5

    /// Still working on it (a build, a lookup): ask again after ``retryDelay`` seconds.
    public static func stillWorking(_ reason: String) -> Resolution { .retryLater(seconds: retryDelay, reason: reason) }
}
