import ArgumentParser

extension HydraSource {
    /// The Hydra source's command-line options, an option group of the executable.
    public struct Options: ParsableArguments, Sendable {
        /// The allowlist: `NAME=BASE_URL` values, one per Hydra this server may contact.
        @Option(
            name: .customLong("hydra"),
            help: ArgumentHelp(
                "A Hydra this server may contact, as NAME=BASE_URL (http or https; repeatable). /dispatch/hydra/NAME/PROJECT/JOBSET/JOB boots that job's latest build; no other Hydra is ever contacted.",
                valueName: "name=base-url"))
        public var hydras: [String] = []

        /// Seconds a request waits for its job's lookup and realise before being told to retry.
        @Option(help: "Seconds a Hydra dispatch waits for the lookup and the download before answering 503 Retry-After; a lookup nobody waits for is cancelled, a download goes on and a retry joins it.")
        public var hydraTimeout: Int = 60

        /// Most Hydra lookups (HTTP requests) in flight at once, across all jobs.
        @Option(help: "Most Hydra lookups in flight at once, across all jobs (more wait, up to 64, then 503 Retry-After); one nobody waits for any more is cancelled.")
        public var maxHydraLookups: Int = 8

        /// Most `nix-store --realise` of Hydra builds running at once, across all jobs.
        @Option(help: "Most Hydra builds realised (downloaded) at once, across all jobs (more wait, up to 64, then 503 Retry-After); they go on when nobody waits.")
        public var maxHydraRealises: Int = 4

        public init() {}

        /// Refuses a malformed `--hydra` value (no `=`, a name unfit for a URL segment, a scheme other
        /// than http/https, a name given twice), a timeout under one second and a cap under one.
        public func validate() throws {
            _ = try HydraServer.parseAll(hydras)
            guard hydraTimeout > 0 else { throw ValidationError("--hydra-timeout must be at least 1 second") }
            guard maxHydraLookups > 0 else { throw ValidationError("--max-hydra-lookups must be at least 1") }
            guard maxHydraRealises > 0 else { throw ValidationError("--max-hydra-realises must be at least 1") }
        }
    }
}
