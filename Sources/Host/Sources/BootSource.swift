/// A way to find the system a machine should boot, served under `/dispatch/NAME/…`.
///
/// A source turns the rest of the URL into a store path. The host then redirects the machine to
/// `/boot/PATH/netboot.ipxe`, keeping the tuning query. Sources live in their own modules and are
/// registered by the executable.
public protocol BootSource: Sendable {
    /// The URL segment after `/dispatch/`, e.g. `"profile"`.
    var name: String { get }
    /// Turns the request into a store path to boot.
    func resolve(_ request: DispatchRequest) async throws -> Resolution
}

/// What a source is asked to resolve.
public struct DispatchRequest: Sendable {
    /// The validated URL segments after `/dispatch/SOURCE/`.
    public var segments: [String]
    /// The raw query string (without `?`), passed on to the redirect.
    public var query: String?

    public init(segments: [String], query: String?) {
        self.segments = segments
        self.query = query
    }
}

/// The answer of a ``BootSource``.
public enum Resolution: Sendable, Equatable {
    /// Boot this store path.
    case storePath(StorePath)
    /// Not ready yet: the machine should ask again after the given number of seconds.
    case retry(after: Int, reason: String)
}
