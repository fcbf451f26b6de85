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
        @Option(help: "Seconds a Hydra dispatch waits for the lookup and the download before answering 503 Retry-After; the work goes on and a retry joins it.")
        public var hydraTimeout: Int = 60

        public init() {}

        /// Refuses a malformed `--hydra` value (no `=`, a name unfit for a URL segment, a scheme other
        /// than http/https, a name given twice) and a timeout under one second.
        public func validate() throws {
            _ = try HydraServer.parseAll(hydras)
            guard hydraTimeout > 0 else { throw ValidationError("--hydra-timeout must be at least 1 second") }
        }
    }
}
