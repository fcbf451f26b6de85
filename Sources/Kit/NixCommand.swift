import Subprocess
import SystemPackage

/// Runs one of Nix's command-line tools as a subprocess and collects what it prints.
///
/// stdout is collected (it is the answer: paths, derivations, dumps); stderr is drained as it comes
/// and only its tail is kept (``StandardErrorTail``), so a builder that writes megabytes of log never
/// fails the command. A non-zero exit or a signal becomes a ``NixCommandError`` that carries the
/// command line and that tail. Cancelling the calling task ends the tool and every process it started.
public struct NixCommand: Sendable {
    /// The tool, looked up on `PATH` unless absolute (`nix-store`, `nix-build`, …).
    public var executable: String
    /// Extra environment entries for the child (e.g. `NIX_REMOTE`).
    public var environment: [String: String]
    /// The most a command may print on stdout before it is treated as a failure.
    public var outputLimit: Int
    /// Bytes of stderr kept (the end of it) for the log and the error's reason.
    public var errorTailBytes: Int

    public init(executable: String, environment: [String: String] = [:], outputLimit: Int = 1 << 30, errorTailBytes: Int = 64 << 10) {
        self.executable = executable
        self.environment = environment
        self.outputLimit = outputLimit
        self.errorTailBytes = errorTailBytes
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
        let tailBytes = errorTailBytes
        // A session (and process group) of its own: cancelling the caller ends the tool and whatever it
        // started (SIGTERM to the group, SIGKILL two seconds later), never this server's own group.
        var options = PlatformOptions()
        options.createSession = true
        options.teardownSequence = [.gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: .seconds(2))]
        let result: ExecutionResult<StandardErrorTail, BytesOutput, SequenceOutput>
        do {
            result = try await Subprocess.run(
                executable, arguments: Arguments(arguments), environment: env, platformOptions: options, input: .none,
                output: .bytes(limit: outputLimit), error: .sequence
            ) { execution in
                var tail = StandardErrorTail(capacity: tailBytes)
                for try await buffer in execution.standardError {
                    buffer.withUnsafeBytes { tail.append($0) }
                }
                return tail
            }
        } catch {
            throw NixCommandError(command: [self.executable] + arguments, status: "could not run: \(error)", standardError: "")
        }
        guard case .exited(0) = result.terminationStatus else {
            throw NixCommandError(
                command: [self.executable] + arguments, status: "\(result.terminationStatus)",
                standardError: result.closureResult.text)
        }
        return result.standardOutput
    }
}

/// A Nix tool that failed: the command, how it ended, and the tail of what it said on stderr.
public struct NixCommandError: Error, CustomStringConvertible {
    public var command: [String]
    public var status: String
    /// The last part of stderr (see ``NixCommand/errorTailBytes``).
    public var standardError: String

    public init(command: [String], status: String, standardError: String) {
        self.command = command
        self.status = status
        self.standardError = standardError
    }

    public var description: String {
        let shown = command.count > 8 ? command.prefix(8).joined(separator: " ") + " … (\(command.count - 8) more)" : command.joined(separator: " ")
        let err = standardError.trimmingSuffixWhitespace()
        return "`\(shown)` \(status)" + (err.isEmpty ? "" : ": \(err)")
    }

    /// The line that says what went wrong: Nix's last `error:` line (not the source excerpt or the
    /// `^` under it that follow), else the last non-blank line, else how the command ended.
    public var reason: String {
        let lines = standardError.split(whereSeparator: \.isNewline)
            .map { $0.drop(while: { $0 == " " || $0 == "\t" }) }
            .map { String($0).trimmingSuffixWhitespace() }
            .filter { !$0.isEmpty }
        return lines.last(where: { $0.hasPrefix("error:") }) ?? lines.last(where: { $0.contains("error:") })
            ?? lines.last(where: { $0.contains(where: \.isLetter) }) ?? status
    }

    /// The last `count` lines of stderr, for the log.
    public func lastLines(_ count: Int) -> String {
        standardError.split(separator: "\n", omittingEmptySubsequences: false).suffix(count).joined(separator: "\n")
    }
}

/// The end of a stream of bytes: keeps the last `capacity` bytes, drops the rest as it goes.
public struct StandardErrorTail: Sendable {
    public let capacity: Int
    private var bytes: [UInt8] = []
    /// Bytes seen in all, kept or not.
    public private(set) var total = 0

    public init(capacity: Int) { self.capacity = max(1, capacity) }

    public mutating func append(_ chunk: UnsafeRawBufferPointer) {
        total += chunk.count
        if chunk.count >= capacity {
            bytes = Array(chunk.suffix(capacity))
            return
        }
        bytes.append(contentsOf: chunk)
        if bytes.count > 2 * capacity { bytes.removeFirst(bytes.count - capacity) }
    }

    /// The kept bytes as text, starting at a line boundary when anything was dropped.
    public var text: String {
        var kept = bytes.suffix(capacity)
        if total > kept.count, let newline = kept.firstIndex(of: UInt8(ascii: "\n")) {
            kept = kept[kept.index(after: newline)...]
        }
        return String(decoding: kept, as: UTF8.self)
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
