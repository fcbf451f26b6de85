import CoreMetrics
import Logging
import ServiceLifecycle

/// Evaluates a system to a derivation, builds it and keeps its GC root on the newest evaluation: the
/// coordination every source that builds systems from Nix expressions shares (configurations, flakes).
///
/// Each request is answered with the store path *its own* evaluation produced (or a newer one's),
/// never a shared symlink read afterwards. Evaluations of one system run one at a time with at most
/// one queued, which later arrivals join; at most `--max-evaluations` run at once across all systems,
/// and one running longer than `--eval-timeout` is ended with everything it started. Evaluations that
/// give the same derivation share one build. A build still running after `--build-timeout` answers
/// 503 `Retry-After` and goes on, so the retry joins it. A failure answers iPXE's retry script with
/// one line of reason and logs the tail of Nix's stderr. It all runs on two ``WorkCoordinator``s,
/// which are the owning source's ``BootSource/services``. How long each evaluation and build took
/// goes to the context's metrics (``DurationMetric``).
public final class SystemBuildPipeline: Sendable {
    /// The timers of evaluations and builds, labelled `source` and `outcome` (`success`, `failure`).
    /// An evaluation cancelled because nobody waits for it any more is not recorded.
    public enum DurationMetric: String, CaseIterable, Sendable {
        case evaluation = "nns_evaluation_duration_seconds"
        case build = "nns_build_duration_seconds"
    }

    /// One system, as a source names it for the pipeline.
    public struct System: Sendable {
        /// The file name of its GC root under `GC_ROOT_DIR`, which also identifies it: evaluations of
        /// one root run one at a time. Distinct systems must have distinct roots.
        public var root: String
        /// How answers and log lines name it, e.g. `"configuration lab"`.
        public var subject: String
        /// Evaluates it to exactly one derivation.
        public var evaluate: @Sendable (any NixStore) async throws -> Derivation

        public init(root: String, subject: String, evaluate: @escaping @Sendable (any NixStore) async throws -> Derivation) {
            self.root = root
            self.subject = subject
            self.evaluate = evaluate
        }
    }

    /// The GC roots, each on the result of its system's newest evaluation.
    public let roots: NewestEvaluationRoots
    private let context: SourceContext
    /// The owning source's name, the `source` label of the duration metrics.
    private let source: String
    private let buildTimeout: Duration
    private let evaluationTimeout: Duration
    private let evaluations: WorkCoordinator<String, Derivation>
    private let builds: WorkCoordinator<String, StorePath>

    /// Checks `options` (`ValidationError` for limits that cannot work) and sets up the coordinators.
    /// `source` is the owning source's name, for its metrics.
    public init(source: String, options: SystemBuildOptions, context: SourceContext) throws {
        try options.validate()
        self.source = source
        self.context = context
        self.roots = NewestEvaluationRoots(context: context)
        self.buildTimeout = .seconds(options.buildTimeout)
        self.evaluationTimeout = .seconds(options.evalTimeout)
        self.evaluations = WorkCoordinator(policy: .init(
            joining: .notYetStarted, maximumRunning: options.maxEvaluations, maximumQueued: 32, whenAbandoned: .cancel))
        // Builds are shared per derivation and go on when nobody waits: the retry joins them.
        self.builds = WorkCoordinator(policy: .init(joining: .anyJob, maximumRunning: 8, maximumQueued: 64, whenAbandoned: .keepRunning))
    }

    /// The coordinators, to be run for as long as the server runs.
    public var services: [any Service] { [evaluations, builds] }

    /// Evaluates `system` (joining a queued evaluation if there is one), builds the result and answers.
    public func resolve(_ system: System) async throws -> Resolution {
        let store = context.store, limit = evaluationTimeout, evaluate = system.evaluate
        let evaluationTimer = timer(.evaluation), buildTimer = timer(.build)
        let evaluation: (id: UInt64, drv: Derivation)
        switch await evaluations.run(system.root, { _ in
            try await Self.timed(evaluationTimer) { try await Self.evaluate(within: limit) { try await evaluate(store) } }
        }) {
        case .finished(let id, .success(let drv)):
            evaluation = (id, drv)
        case .finished(_, .failure(let error)):
            return failure(system, "evaluating \(system.subject) failed", error)
        case .stillRunning:
            throw CancellationError()
        case .refused:
            return .stillWorking("too many evaluations are running; \(system.subject) waits its turn")
        }
        await roots.want(system.root, evaluation: evaluation.id, derivation: evaluation.drv)
        let roots = self.roots, drv = evaluation.drv
        // The build and the root update belong to the system, not to this request: they go on after
        // a timeout or a disconnect.
        switch await builds.run(drv.path, deadline: buildTimeout, { _ in
            let path = try await Self.timed(buildTimer) {
                guard let path = try await store.build(drv).first else { throw SystemBuildError.noOutputs(drv) }
                return path
            }
            await roots.built(drv, path: path)
            return path
        }) {
        case .finished(_, .success(let path)):
            return .storePath(path)
        case .finished(_, .failure(let error)):
            return failure(system, "building \(system.subject) failed", error)
        case .stillRunning:
            return .stillWorking("\(system.subject) is still building; ask again in \(Resolution.retryDelay) seconds")
        case .refused:
            return .stillWorking("too many builds are running; \(system.subject) waits its turn")
        }
    }

    /// Records into `timer` how long `work` took and how it ended (`success` or `failure`); nothing
    /// when it was cancelled.
    static func timed<Value>(_ timer: @escaping @Sendable (_ outcome: String) -> Timer, _ work: () async throws -> Value) async throws -> Value {
        let started = ContinuousClock.now
        do {
            let result = try await work()
            timer("success").recordNanoseconds((ContinuousClock.now - started).nanoseconds)
            return result
        } catch {
            if !Task.isCancelled { timer("failure").recordNanoseconds((ContinuousClock.now - started).nanoseconds) }
            throw error
        }
    }

    /// The timer of `metric` for an outcome, in the context's metrics.
    private func timer(_ metric: DurationMetric) -> @Sendable (String) -> Timer {
        let factory = context.metrics, source = self.source
        return { outcome in
            Timer(label: metric.rawValue, dimensions: [("source", source), ("outcome", outcome)], factory: factory)
        }
    }

    /// Runs `evaluate`, ending it (with what it started) after `limit`.
    static func evaluate(within limit: Duration, _ evaluate: @escaping @Sendable () async throws -> Derivation) async throws -> Derivation {
        try await withThrowingTaskGroup(of: Derivation?.self) { group in
            group.addTask { try await evaluate() }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let derivation = first else { throw SystemBuildError.timedOut(limit) }
            return derivation
        }
    }

    /// The retry answer: Nix's `error:` line for the machine, the tail of its stderr for the log.
    private func failure(_ system: System, _ what: String, _ error: any Error) -> Resolution {
        let detail: String
        if let error = error as? NixCommandError {
            context.logger.error("\(what)", metadata: ["system": "\(system.subject)", "stderr": "\(error.lastLines(25))"])
            detail = error.reason
        } else {
            context.logger.error("\(what)", metadata: ["system": "\(system.subject)", "error": "\(error)"])
            detail = "\(error)"
        }
        return .failed(reason: "\(what): \(detail)")
    }
}

/// Why a system could not be evaluated or built, beside what Nix said.
public enum SystemBuildError: Error, CustomStringConvertible {
    /// The derivation was built but gave no output paths.
    case noOutputs(Derivation)
    /// The evaluation ran past `--eval-timeout` and was ended.
    case timedOut(Duration)

    public var description: String {
        switch self {
        case .noOutputs(let drv): "\(drv) has no outputs"
        case .timedOut(let limit): "the evaluation took longer than \(limit.components.seconds) seconds (--eval-timeout) and was ended"
        }
    }
}
