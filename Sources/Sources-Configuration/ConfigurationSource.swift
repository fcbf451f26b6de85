import ArgumentParser
import Logging
import NetbootHost

/// `/dispatch/configuration/NAME`: evaluates and builds `CONFIG_DIR/NAME/default.nix`.
///
/// Each request is redirected to the store path *its own* evaluation produced (never to a shared
/// symlink read afterwards). Evaluations of one name run one at a time with at most one queued,
/// which later arrivals join; evaluations that give the same derivation share one build. A build
/// still running after `--build-timeout` answers 503 with `Retry-After: 5` and goes on, so the retry
/// joins it. A failure answers iPXE's retry script with one sanitised line of reason.
public struct ConfigurationSource: BootSource {
    /// The source's command-line options.
    public struct Options: ParsableArguments, Sendable {
        @Option(help: "Directory of configurations/NAME/default.nix (default: STATE_DIR/configurations; configuration booting is on when it exists or is given).")
        public var configDir: String?

        @Option(help: "Seconds a dispatch waits for a configuration's build before answering 503 Retry-After.")
        public var buildTimeout: Int = 60

        public init() {}
    }

    public let directory: String
    private let configured: Bool
    private let timeout: Duration
    private let context: SourceContext
    private let evaluations: EvaluationRunner<String, StorePath.Derivation>
    private let builds = SingleFlight<String, StorePath>()
    public let roots: ConfigurationRoots

    public init(options: Options, context: SourceContext) throws {
        guard options.buildTimeout >= 0 else { throw ValidationError("--build-timeout must not be negative") }
        let directory = context.directory(options.configDir, default: "configurations")
        self.directory = directory
        self.configured = options.configDir != nil
        self.timeout = .seconds(options.buildTimeout)
        self.context = context
        self.roots = ConfigurationRoots(context: context)
        let instantiate = context.tool("nix-instantiate")
        self.evaluations = EvaluationRunner { name, _ in
            let file = directory + "/" + name + "/default.nix"
            guard FileSystem.exists(file) else { throw DispatchError.notFound("no configuration named \(name) (\(file) does not exist)") }
            let output = try await instantiate.run([file])
            let lines = String(decoding: output, as: UTF8.self).split(separator: "\n").map(String.init)
            guard lines.count == 1, lines[0].hasSuffix(".drv") else {
                throw ConfigurationError.evaluation("\(file) must evaluate to exactly one derivation, not \(lines.count)")
            }
            return StorePath.Derivation(path: lines[0])
        }
    }

    public var name: String { "configuration" }

    public var notConfiguredReason: String? {
        configured || FileSystem.exists(directory) ? nil : "configuration booting is not configured on this server (no --config-dir, no \(directory))"
    }

    public func resolve(_ request: DispatchRequest) async throws -> Resolution {
        let name = try request.segments(1, usage: "/dispatch/configuration/NAME")[0]
        let evaluation: (id: UInt64, value: StorePath.Derivation)
        do {
            evaluation = try await evaluations.run(name)
        } catch let error as DispatchError {
            throw error
        } catch {
            return failure(name, "evaluating configuration \(name) failed", error)
        }
        let builds = self.builds, roots = self.roots, realise = context.tool("nix-store")
        let drv = evaluation.value.path
        // The build and the root update belong to the configuration, not to this request: they go on
        // after a timeout or a disconnect.
        let work = Task {
            let path = try await builds.run(drv) {
                let output = try await realise.run(["--realise", drv])
                let first = String(decoding: output, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
                return try StorePath(absolutePath: first)
            }
            await roots.update(name, evaluation: evaluation.id, path: path)
            return path
        }
        switch await work.result(within: timeout) {
        case .success(let path)?:
            return .storePath(path)
        case .failure(let error)?:
            return failure(name, "building configuration \(name) failed", error)
        case nil:
            return .retryLater(seconds: 5, reason: "configuration \(name) is still building; ask again in 5 seconds")
        }
    }

    private func failure(_ name: String, _ what: String, _ error: any Error) -> Resolution {
        let detail: String
        if let error = error as? NixCommandError {
            context.logger.error("\(what)", metadata: ["configuration": "\(name)", "stderr": "\(error.lastLines(25))"])
            detail = error.reason
        } else {
            context.logger.error("\(what)", metadata: ["configuration": "\(name)", "error": "\(error)"])
            detail = "\(error)"
        }
        return .failed(reason: "\(what): \(detail)")
    }
}

/// Why a configuration could not be used.
enum ConfigurationError: Error, CustomStringConvertible {
    case evaluation(String)
    var description: String {
        switch self { case .evaluation(let reason): reason }
    }
}

extension StorePath {
    /// A derivation file path as `nix-instantiate` printed it.
    public struct Derivation: Sendable, Equatable { public var path: String }
}
