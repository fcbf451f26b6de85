import Logging

/// What the host hands every boot source when it is made: the store, Nix's tools, where state lives.
public struct SourceContext: Sendable {
    /// The Nix store (validity, closures).
    public var store: any NixStore
    /// Runs `nix-store`, `nix-build`, `nix-instantiate`… by name, with the host's environment.
    public var tool: @Sendable (String) -> NixCommand
    /// The server's state directory.
    public var stateDirectory: String
    /// Where GC roots live (`--gc-root-dir`).
    public var gcRootDirectory: String
    public var logger: Logger

    public init(
        store: any NixStore, tool: @escaping @Sendable (String) -> NixCommand = { NixCommand(executable: $0) },
        stateDirectory: String, gcRootDirectory: String, logger: Logger
    ) {
        self.store = store
        self.tool = tool
        self.stateDirectory = stateDirectory
        self.gcRootDirectory = gcRootDirectory
        self.logger = logger
    }

    /// `explicit`, or `name` under the state directory.
    public func directory(_ explicit: String?, default name: String) -> String {
        explicit ?? (stateDirectory.hasSuffix("/") ? stateDirectory + name : stateDirectory + "/" + name)
    }

    /// Makes (or moves) the GC root `root` to `path`, realising it first: a valid path is kept, a
    /// missing one is substituted as Nix's configuration allows.
    public func addRoot(_ root: String, for path: StorePath) async throws {
        _ = try await tool("nix-store").run(["--realise", path.absolutePath, "--add-root", root, "--indirect"])
    }
}
