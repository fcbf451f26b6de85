import ArgumentParser
import NetbootKit
import ServiceLifecycle

/// `/dispatch/configuration/NAME`: evaluates and builds `CONFIG_DIR/NAME/default.nix`.
///
/// Each request is redirected to the store path *its own* evaluation produced (never to a shared
/// symlink read afterwards), and `GC_ROOT_DIR/configuration-NAME` follows the newest evaluation
/// started. The evaluation, build, root and their bounds (`--eval-timeout`, `--max-evaluations`,
/// `--build-timeout`) are the kit's ``SystemBuildPipeline``; this source says what to evaluate.
public struct ConfigurationSource: BootSourceModule {
    /// The source's command-line options.
    public struct Options: ParsableArguments, Sendable {
        @Option(help: "Directory of configurations/NAME/default.nix (default: STATE_DIR/configurations; configuration booting is on when it exists or is given).")
        public var configDir: String?

        @OptionGroup
        public var builds: SystemBuildOptions

        public init() {}
    }

    public let directory: String
    private let configured: Bool
    private let pipeline: SystemBuildPipeline

    public init(options: Options, context: SourceContext) throws {
        self.directory = context.directory(options.configDir, default: "configurations")
        self.configured = options.configDir != nil
        self.pipeline = try SystemBuildPipeline(source: "configuration", options: options.builds, context: context)
    }

    public var name: String { "configuration" }

    public var services: [any Service] { pipeline.services }

    public var notConfiguredReason: String? {
        configured || FileSystem.exists(directory) ? nil : "configuration booting is not configured on this server"
    }

    public func resolve(_ request: DispatchRequest) async throws -> Resolution {
        let name = try request.segments(1, usage: "/dispatch/configuration/NAME")[0]
        let file = directory + "/" + name + "/default.nix"
        guard FileSystem.exists(file) else { throw DispatchError.notFound("no configuration named \(name)") }
        return try await pipeline.resolve(SystemBuildPipeline.System(root: "configuration-" + name, subject: "configuration \(name)") { store in
            try await store.instantiate(file: file)
        })
    }
}

extension ConfigurationSource {
    public static var optionsTitle: String { "Configuration source" }
}
