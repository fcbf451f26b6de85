/// The server's boot sources as one source sees the others: resolves `SOURCE/SEGMENTS` exactly as
/// `/dispatch/SOURCE/SEGMENTS` would (the source must exist, be on and be configured; every segment
/// is validated), so that a source can compose the others without depending on their modules.
///
/// The host hands one to every ``BootSource`` call that may need it.
public protocol DispatchRouter: Sendable {
    /// The names of the sources a dispatch may reach (registered, not turned off, configured), in
    /// registration order.
    var sourceNames: [String] { get }
    /// What `/dispatch/SOURCE/…` would answer for `request` (its segments and query). Throws
    /// ``DispatchError/notFound(_:)`` for a source that is absent, off or not configured.
    func resolve(source: String, _ request: DispatchRequest) async throws -> Resolution
}
