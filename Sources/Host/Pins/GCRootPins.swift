#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging

/// Keeps what a dispatch redirected to alive while machines boot it.
///
/// A pin is a real Nix GC root (`nix-store --realise --add-root`), one per dispatch, in
/// `GC_ROOT_DIR/pins/`. Its name carries its creation time; pins older than the lifetime are removed
/// by ``sweep()``, which runs at start-up and then periodically.
public actor GCRootPins {
    public let directory: String
    public let lifetime: Duration
    private let tool: NixCommand
    private let logger: Logger
    private var counter: UInt64 = 0
    private let clock: @Sendable () -> Int64

    public init(
        gcRootDirectory: String, lifetime: Duration, tool: NixCommand = NixCommand(executable: "nix-store"),
        logger: Logger, clock: @escaping @Sendable () -> Int64 = { Int64(time(nil)) }
    ) throws {
        self.directory = gcRootDirectory + "/pins"
        self.lifetime = lifetime
        self.tool = tool
        self.logger = logger
        self.clock = clock
        try FileSystem.createDirectories(directory)
    }

    /// Pins `path` for the lifetime; returns the root's file name.
    @discardableResult
    public func pin(_ path: StorePath) async throws -> String {
        counter += 1
        let name = "pin-\(clock())-\(getpid())-\(counter)-\(path.name)"
        _ = try await tool.run(["--realise", path.absolutePath, "--add-root", directory + "/" + name, "--indirect"])
        return name
    }

    /// Removes pins older than the lifetime. Returns how many it removed.
    @discardableResult
    public func sweep() -> Int {
        let now = clock()
        let seconds = lifetime.components.seconds
        var removed = 0
        for name in (try? FileSystem.listDirectory(directory)) ?? [] {
            let parts = name.split(separator: "-", maxSplits: 2)
            guard parts.count == 3, parts[0] == "pin", let created = Int64(parts[1]) else { continue }
            if now - created >= seconds {
                if unlink(directory + "/" + name) == 0 { removed += 1 }
            }
        }
        if removed > 0 { logger.debug("expired pins removed", metadata: ["count": "\(removed)"]) }
        return removed
    }

    /// Sweeps every `interval` until cancelled.
    public func runSweeper(every interval: Duration) async {
        while !Task.isCancelled {
            sweep()
            try? await Task.sleep(for: interval)
        }
    }
}
