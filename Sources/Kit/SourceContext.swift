import CoreMetrics
import Logging

/// What the host hands every boot source when it is made: Nix, where state lives, the logger, and
/// where the source's metrics go.
public struct SourceContext: Sendable {
    /// Nix, through typed calls: validity, closures, realising with a GC root, evaluating, building.
    public var store: any NixStore
    /// The server's state directory.
    public var stateDirectory: String
    /// Where GC roots live (`--gc-root-dir`).
    public var gcRootDirectory: String
    public var logger: Logger
    /// Where the source's metrics go (swift-metrics' API; the host serves them on `/metrics`). Pass it
    /// as `factory:` to each metric: the process-wide `MetricsSystem` is never bootstrapped.
    public var metrics: any MetricsFactory

    public init(
        store: any NixStore, stateDirectory: String, gcRootDirectory: String, logger: Logger,
        metrics: any MetricsFactory = NOOPMetricsHandler.instance
    ) {
        self.store = store
        self.stateDirectory = stateDirectory
        self.gcRootDirectory = gcRootDirectory
        self.logger = logger
        self.metrics = metrics
    }

    /// `explicit`, or `name` under the state directory.
    public func directory(_ explicit: String?, default name: String) -> String {
        explicit ?? (stateDirectory.hasSuffix("/") ? stateDirectory + name : stateDirectory + "/" + name)
    }

    /// Makes (or moves) the GC root `root` to `path`, realising it first: a valid path is kept, a
    /// missing one is substituted as Nix's configuration allows.
    public func addRoot(_ root: String, for path: StorePath) async throws {
        try await store.realise(path, root: root)
    }
}
