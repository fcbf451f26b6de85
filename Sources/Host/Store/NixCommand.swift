import Subprocess
import SystemPackage

/// Runs one of Nix's command-line tools as a subprocess and collects what it prints.
///
/// stdout and stderr are captured together without deadlocks; a non-zero exit or a signal becomes a
/// ``NixCommandError`` that carries the command line and the tool's stderr.
public struct NixCommand: Sendable {
    /// The tool, looked up on `PATH` unless absolute (`nix-store`, `nix-build`, …).
    public var executable: String
    /// Extra environment entries for the child (e.g. `NIX_REMOTE`).
    public var environment: [String: String]
    /// The most a command may print on stdout before it is treated as a failure.
    public var outputLimit: Int

    public init(executable: String, environment: [String: String] = [:], outputLimit: Int = 1 << 30) {
        self.executable = executable
        self.environment = environment
        self.outputLimit = outputLimit
    }

    /// Runs the tool with `arguments` and returns its stdout.
    public func run(_ arguments: [String]) async throws -> [UInt8] {
        let executable: Executable =
            self.executable.hasPrefix("/") ? .path(FilePath(self.executable)) : .name(self.executable)
        var env: Environment = .inherit
        if !environment.isEmpty {
            var updates: [Environment.Key: String?] = [:]
            for (key, value) in environment { updates[Environment.Key(stringLiteral: key)] = value }
            env = .inherit.updating(updates)
        }
        let result: ExecutionResult<Void, BytesOutput, StringOutput<UTF8>>
        do {
            result = try await Subprocess.run(
                executable, arguments: Arguments(arguments), environment: env,
                output: .bytes(limit: outputLimit), error: .string(limit: 1 << 20))
        } catch {
            throw NixCommandError(command: [self.executable] + arguments, status: "could not run: \(error)", standardError: "")
        }
        guard case .exited(0) = result.terminationStatus else {
            throw NixCommandError(
                command: [self.executable] + arguments, status: "\(result.terminationStatus)",
                standardError: result.standardError)
        }
        return result.standardOutput
    }
}

/// A Nix tool that failed: the command, how it ended, and what it said on stderr.
public struct NixCommandError: Error, CustomStringConvertible {
    public var command: [String]
    public var status: String
    public var standardError: String

    public var description: String {
        let shown = command.count > 8 ? command.prefix(8).joined(separator: " ") + " … (\(command.count - 8) more)" : command.joined(separator: " ")
        let err = standardError.trimmingSuffixWhitespace()
        return "`\(shown)` \(status)" + (err.isEmpty ? "" : ": \(err)")
    }
}

extension String {
    /// The string without trailing whitespace and newlines.
    public func trimmingSuffixWhitespace() -> String {
        var s = Substring(self)
        while let last = s.last, last.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
