import ArgumentParser
import NetbootKit

extension FlakeSource {
    /// The flake source's command-line options, an option group of the executable.
    public struct Options: ParsableArguments, Sendable {
        /// The allowlist: `NAME=FLAKEREF` values, one per flake this server may evaluate.
        @Option(
            name: .customLong("flake"),
            help: ArgumentHelp(
                "A flake this server may evaluate, as NAME=FLAKEREF (repeatable), e.g. infra=path:/srv/infra. /dispatch/flake/NAME/HOST builds FLAKEREF#nixosConfigurations.HOST.config.system.build.toplevel; no other flake is ever evaluated. --build-timeout, --eval-timeout and --max-evaluations apply as to configurations.",
                valueName: "name=flakeref"))
        public var flakes: [String] = []

        /// The same limits as the configuration source's (one `--build-timeout` for both), shown there.
        @OptionGroup(visibility: .hidden)
        public var builds: SystemBuildOptions

        public init() {}

        /// Refuses a malformed `--flake` value (no `=`, a name unfit for a URL segment, a reference
        /// that is empty, starts with `-`, names an attribute or holds spaces, a name given twice).
        public func validate() throws {
            _ = try AllowedFlake.parseAll(flakes)
        }
    }

    public static var optionsTitle: String { "Flake source" }
}
