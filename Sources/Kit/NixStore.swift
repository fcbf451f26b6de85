/// What the server and its boot sources ask of Nix: typed calls returning typed results, every
/// failure a ``NixCommandError`` (the command, how it ended, the tail of its stderr).
///
/// One real implementation, ``NixStoreCLI``; the seam lets the HTTP layer, the assembler and the
/// sources depend on a small interface, and tests that are not about Nix use an in-memory double.
public protocol NixStore: Sendable {
    /// Whether `path` is a valid path in the Nix database (not merely present on disk).
    func isValid(_ path: StorePath) async throws -> Bool
    /// The closure of `path` (`nix-store --query --requisites`), including `path` itself.
    func requisites(of path: StorePath) async throws -> [StorePath]
    /// The database registration of each path (`nix-store --dump-db`), in one call.
    func registrations(of paths: [StorePath]) async throws -> [StorePath: [UInt8]]
    /// Makes `path` valid (substituting it as Nix's configuration allows) and makes `root` an
    /// indirect GC root for it (`nix-store --realise PATH --add-root ROOT --indirect`).
    func realise(_ path: StorePath, root: String) async throws
    /// Evaluates a Nix file that must give exactly one derivation (`nix-instantiate FILE`).
    func instantiate(file: String) async throws -> Derivation
    /// Evaluates the attribute at `attributePath` of the flake `reference` to exactly one derivation
    /// (`nix eval --raw REFERENCE#PATH.drvPath`), in pure evaluation, never writing its lock file.
    func instantiate(flake reference: String, attributePath: [String]) async throws -> Derivation
    /// Builds a derivation (`nix-store --realise DRV`) and returns its outputs.
    func build(_ derivation: Derivation) async throws -> [StorePath]
}

/// A derivation file (`/nix/store/…-NAME.drv`), as `nix-instantiate` prints it.
public struct Derivation: Sendable, Hashable, CustomStringConvertible {
    public var path: String

    public init(path: String) { self.path = path }

    public var description: String { path }
}

/// ``NixStore`` through Nix's command-line tools (`nix-store`, `nix-instantiate`).
public struct NixStoreCLI: NixStore {
    /// Runs a tool by name; every call goes through it.
    public var tool: @Sendable (String) -> NixCommand
    /// Bounds the Nix processes running at once: a flood of requests for distinct names waits for
    /// slots rather than forking a process each.
    public var processes: ConcurrencyLimit

    /// The default bound, shared by every `NixStoreCLI` of the process.
    public static let sharedProcessLimit = ConcurrencyLimit(32)

    /// Paths per `nix-store --dump-db` call: far below the kernel's argument limit.
    static let dumpBatchSize = 2000

    /// The tools as found on `PATH`, or as `tool` makes them (e.g. with an environment of their own).
    public init(tool: @escaping @Sendable (String) -> NixCommand = { NixCommand(executable: $0) }, processes: ConcurrencyLimit = sharedProcessLimit) {
        self.tool = tool
        self.processes = processes
    }

    /// `nix-store` runs as `command`; the other tools as found on `PATH`.
    public init(command: NixCommand) {
        self.tool = { $0 == "nix-store" ? command : NixCommand(executable: $0, environment: command.environment) }
        self.processes = Self.sharedProcessLimit
    }

    /// Runs `tool` with `arguments` within the process bound.
    func run(_ tool: String, _ arguments: [String]) async throws -> [UInt8] {
        let command = self.tool(tool)
        return try await processes.withSlot { try await command.run(arguments) }
    }

    /// How `nix-store` is run.
    public var command: NixCommand { tool("nix-store") }

    public func isValid(_ path: StorePath) async throws -> Bool {
        let invalid = try await run("nix-store", ["--check-validity", "--print-invalid", path.absolutePath])
        return invalid.allSatisfy { $0 == UInt8(ascii: "\n") }
    }

    public func requisites(of path: StorePath) async throws -> [StorePath] {
        let output = try await run("nix-store", ["--query", "--requisites", path.absolutePath])
        return try output.split(separator: UInt8(ascii: "\n")).map { line in
            try StorePath(absolutePath: String(decoding: line, as: UTF8.self))
        }
    }

    public func registrations(of paths: [StorePath]) async throws -> [StorePath: [UInt8]] {
        var result: [StorePath: [UInt8]] = [:]
        var start = 0
        while start < paths.count {
            let batch = paths[start..<min(start + Self.dumpBatchSize, paths.count)]
            let dump = try await run("nix-store", ["--dump-db"] + batch.map(\.absolutePath))
            for record in try NixDatabaseDump.split(dump) {
                result[record.path] = record.bytes
            }
            start += Self.dumpBatchSize
        }
        for path in paths where result[path] == nil {
            throw NixCommandError(
                command: ["nix-store", "--dump-db", path.absolutePath], status: "printed no registration for it",
                standardError: "")
        }
        return result
    }
}

extension NixStoreCLI {
    public func realise(_ path: StorePath, root: String) async throws {
        _ = try await run("nix-store", ["--realise", path.absolutePath, "--add-root", root, "--indirect"])
    }

    public func instantiate(file: String) async throws -> Derivation {
        let arguments = [file]
        let output = try await run("nix-instantiate", arguments)
        let lines = String(decoding: output, as: UTF8.self).split(separator: "\n").map(String.init)
        guard lines.count == 1, lines[0].hasPrefix(StorePath.storeDirectory + "/"), lines[0].hasSuffix(".drv") else {
            throw NixCommandError(
                command: ["nix-instantiate"] + arguments, status: "gave \(lines.count) results, not exactly one derivation",
                standardError: "")
        }
        return Derivation(path: lines[0])
    }

    public func instantiate(flake reference: String, attributePath: [String]) async throws -> Derivation {
        let installable = try FlakeInstallable(reference: reference, attributePath: attributePath + ["drvPath"])
        // Pure evaluation; no --impure, no --accept-flake-config (a flake may not change the server's
        // Nix settings), no substituter options, and the operator's lock file is never written.
        let arguments = [
            "--extra-experimental-features", "nix-command flakes", "eval", "--raw", "--no-write-lock-file", installable.text,
        ]
        let output = String(decoding: try await run("nix", arguments), as: UTF8.self)
        guard output.hasPrefix(StorePath.storeDirectory + "/"), output.hasSuffix(".drv"), !output.contains("\n") else {
            throw NixCommandError(command: ["nix"] + arguments, status: "did not print exactly one derivation", standardError: "")
        }
        return Derivation(path: output)
    }

    public func build(_ derivation: Derivation) async throws -> [StorePath] {
        let output = try await run("nix-store", ["--realise", derivation.path])
        do {
            return try output.split(separator: UInt8(ascii: "\n")).map { try StorePath(absolutePath: String(decoding: $0, as: UTF8.self)) }
        } catch {
            throw NixCommandError(command: ["nix-store", "--realise", derivation.path], status: "printed something that is not a store path", standardError: "")
        }
    }
}
