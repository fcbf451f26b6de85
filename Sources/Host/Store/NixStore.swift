/// What the server asks of the Nix store. One real implementation, ``NixStoreCLI``; the seam
/// exists so that the HTTP layer and the assembler depend on a small interface.
public protocol NixStore: Sendable {
    /// Whether `path` is a valid path in the Nix database (not merely present on disk).
    func isValid(_ path: StorePath) async throws -> Bool
    /// The closure of `path` (`nix-store --query --requisites`), including `path` itself.
    func requisites(of path: StorePath) async throws -> [StorePath]
    /// The database registration of each path (`nix-store --dump-db`), in one call.
    func registrations(of paths: [StorePath]) async throws -> [StorePath: [UInt8]]
}

/// ``NixStore`` through the `nix-store` command.
public struct NixStoreCLI: NixStore {
    /// How `nix-store` is run.
    public var command: NixCommand

    /// Paths per `nix-store --dump-db` call: far below the kernel's argument limit.
    static let dumpBatchSize = 2000

    public init(command: NixCommand = NixCommand(executable: "nix-store")) {
        self.command = command
    }

    public func isValid(_ path: StorePath) async throws -> Bool {
        let invalid = try await command.run(["--check-validity", "--print-invalid", path.absolutePath])
        return invalid.allSatisfy { $0 == UInt8(ascii: "\n") }
    }

    public func requisites(of path: StorePath) async throws -> [StorePath] {
        let output = try await command.run(["--query", "--requisites", path.absolutePath])
        return try output.split(separator: UInt8(ascii: "\n")).map { line in
            try StorePath(absolutePath: String(decoding: line, as: UTF8.self))
        }
    }

    public func registrations(of paths: [StorePath]) async throws -> [StorePath: [UInt8]] {
        var result: [StorePath: [UInt8]] = [:]
        var start = 0
        while start < paths.count {
            let batch = paths[start..<min(start + Self.dumpBatchSize, paths.count)]
            let dump = try await command.run(["--dump-db"] + batch.map(\.absolutePath))
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
