import ArgumentParser
import Logging
import NetbootKit
import ServiceLifecycle

/// `/dispatch/configuration/NAME`: evaluates and builds `CONFIG_DIR/NAME/default.nix`.
///
/// Each request is redirected to the store path *its own* evaluation produced (never to a shared
/// symlink read afterwards). Evaluations of one name run one at a time with at most one queued,
/// which later arrivals join; at most `--max-evaluations` run at once across all names, and one
/// running longer than `--eval-timeout` is ended with everything it started. Evaluations that give
/// the same derivation share one build. A build still running after `--build-timeout` answers 503
/// `Retry-After` and goes on, so the retry joins it. A failure answers iPXE's retry script with one
/// sanitised line of reason. All of it runs on two ``WorkCoordinator``s, the source's services.
public struct ConfigurationSource: BootSourceModule {
    /// The source's command-line options.
    public struct Options: ParsableArguments, Sendable {
        @Option(help: "Directory of configurations/NAME/default.nix (default: STATE_DIR/configurations; configuration booting is on when it exists or is given).")
        public var configDir: String?

        @Option(help: "Seconds a dispatch waits for a configuration's build before answering 503 Retry-After.")
        public var buildTimeout: Int = 60

        @Option(help: "Seconds an evaluation may take before it is ended (and the machine told why).")
        public var evalTimeout: Int = 120

        @Option(help: "Most evaluations running at once, across all configurations (more wait, up to 32, then 503).")
        public var maxEvaluations: Int = 2

        public init() {}
    }

    public let directory: String
    private let configured: Bool
    private let buildTimeout: Duration
    private let evaluationTimeout: Duration
    private let context: SourceContext
    private let evaluations: WorkCoordinator<String, Derivation>
    private let builds: WorkCoordinator<String, StorePath>
    public let roots: ConfigurationRoots

    public init(options: Options, context: SourceContext) throws {
        guard options.buildTimeout >= 0 else { throw ValidationError("--build-timeout must not be negative") }
        guard options.evalTimeout > 0 else { throw ValidationError("--eval-timeout must be positive") }
        guard options.maxEvaluations > 0 else { throw ValidationError("--max-evaluations must be positive") }
        self.directory = context.directory(options.configDir, default: "configurations")
        self.configured = options.configDir != nil
        self.buildTimeout = .seconds(options.buildTimeout)
        self.context = context
        self.roots = ConfigurationRoots(context: context)
        self.evaluations = WorkCoordinator(policy: .init(
            joining: .notYetStarted, maximumRunning: options.maxEvaluations, maximumQueued: 32, whenAbandoned: .cancel))
        // Builds are shared per derivation and go on when nobody waits: the retry joins them.
        self.builds = WorkCoordinator(policy: .init(joining: .anyJob, maximumRunning: 8, maximumQueued: 64, whenAbandoned: .keepRunning))
        self.evaluationTimeout = .seconds(options.evalTimeout)
    }

    public var name: String { "configuration" }

    public var services: [any Service] { [evaluations, builds] }

    public var notConfiguredReason: String? {
        configured || FileSystem.exists(directory) ? nil : "configuration booting is not configured on this server"
    }

    public func resolve(_ request: DispatchRequest) async throws -> Resolution {
        let name = try request.segments(1, usage: "/dispatch/configuration/NAME")[0]
        let file = directory + "/" + name + "/default.nix"
        guard FileSystem.exists(file) else { throw DispatchError.notFound("no configuration named \(name)") }
        let store = context.store, limit = evaluationTimeout
        let evaluation: (id: UInt64, drv: Derivation)
        switch await evaluations.run(name, { _ in try await Self.evaluate(file, in: store, within: limit) }) {
        case .finished(let id, .success(let drv)):
            evaluation = (id, drv)
        case .finished(_, .failure(let error)):
            return failure(name, "evaluating configuration \(name) failed", error)
        case .stillRunning:
            throw CancellationError()
        case .refused:
            return .stillWorking("too many configurations are being evaluated; configuration \(name) waits its turn")
        }
        await roots.want(name, evaluation: evaluation.id, derivation: evaluation.drv)
        let roots = self.roots, drv = evaluation.drv
        // The build and the root update belong to the configuration, not to this request: they go on
        // after a timeout or a disconnect.
        switch await builds.run(drv.path, deadline: buildTimeout, { _ in
            guard let path = try await store.build(drv).first else {
                throw ConfigurationError.evaluation("\(drv) has no outputs")
            }
            await roots.built(drv, path: path)
            return path
        }) {
        case .finished(_, .success(let path)):
            return .storePath(path)
        case .finished(_, .failure(let error)):
            return failure(name, "building configuration \(name) failed", error)
        case .stillRunning:
            return .stillWorking("configuration \(name) is still building; ask again in \(Resolution.retryDelay) seconds")
        case .refused:
            return .stillWorking("too many builds are running; configuration \(name) waits its turn")
        }
    }

    /// `nix-instantiate FILE`, which must give exactly one derivation, ended (with what it started)
    /// after `limit`.
    static func evaluate(_ file: String, in store: any NixStore, within limit: Duration) async throws -> Derivation {
        try await withThrowingTaskGroup(of: Derivation?.self) { group in
            group.addTask { try await store.instantiate(file: file) }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let derivation = first else { throw ConfigurationError.timedOut(limit) }
            return derivation
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
    case timedOut(Duration)

    var description: String {
        switch self {
        case .evaluation(let reason): reason
        case .timedOut(let limit): "the evaluation took longer than \(limit.components.seconds) seconds (--eval-timeout) and was ended"
        }
    }
}

extension ConfigurationSource {
    public static var optionsTitle: String { "Configuration source" }
}
