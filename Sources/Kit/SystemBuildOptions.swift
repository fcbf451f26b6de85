import ArgumentParser

/// The limits of a ``SystemBuildPipeline``, as the command line gives them.
///
/// Every source that evaluates and builds systems takes this group, so one `--build-timeout` (and
/// `--eval-timeout`, `--max-evaluations`) applies to all of them; each source keeps its own slots.
public struct SystemBuildOptions: ParsableArguments, Sendable {
    @Option(help: "Seconds a dispatch waits for a system's build (configuration, flake) before answering 503 Retry-After.")
    public var buildTimeout: Int = 60

    @Option(help: "Seconds an evaluation (configuration, flake) may take before it is ended (and the machine told why).")
    public var evalTimeout: Int = 120

    @Option(help: "Most evaluations running at once, per source, across all names (more wait, up to 32, then 503).")
    public var maxEvaluations: Int = 2

    public init() {}

    /// Refuses a negative build timeout, an evaluation timeout under one second and a cap under one.
    public func validate() throws {
        guard buildTimeout >= 0 else { throw ValidationError("--build-timeout must not be negative") }
        guard evalTimeout > 0 else { throw ValidationError("--eval-timeout must be positive") }
        guard maxEvaluations > 0 else { throw ValidationError("--max-evaluations must be positive") }
    }
}
