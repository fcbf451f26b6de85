import NetbootKit
import ServiceLifecycle

/// `/dispatch/flake/NAME/HOST`: builds `FLAKEREF#nixosConfigurations.HOST.config.system.build.toplevel`
/// of a flake the operator allowed with `--flake NAME=FLAKEREF`.
///
/// Any other NAME is a 404 before anything is evaluated. The evaluation (`nix eval`, pure, never
/// writing the lock file, never accepting the flake's Nix settings), the build, the GC root
/// `GC_ROOT_DIR/flake-NAME-HOST` following the newest evaluation, and their bounds are the kit's
/// ``SystemBuildPipeline``, as for the configuration source. What Nix says goes to the machine with
/// the flake's reference and path replaced by its NAME.
public struct FlakeSource: BootSourceModule {
    private let flakes: [String: AllowedFlake]
    private let pipeline: SystemBuildPipeline

    /// Checks the options (`ValidationError` for a bad `--flake` value or limit) and keeps the context.
    public init(options: Options, context: SourceContext) throws {
        self.flakes = try AllowedFlake.parseAll(options.flakes)
        self.pipeline = try SystemBuildPipeline(source: "flake", options: options.builds, context: context)
    }

    public var name: String { "flake" }

    public var services: [any Service] { pipeline.services }

    public var notConfiguredReason: String? {
        flakes.isEmpty ? "flake booting is not configured on this server (no --flake)" : nil
    }

    /// The attribute a host's system is: `nixosConfigurations.HOST.config.system.build.toplevel`.
    static func attributePath(host: String) -> [String] {
        ["nixosConfigurations", host, "config", "system", "build", "toplevel"]
    }

    public func resolve(_ request: DispatchRequest) async throws -> Resolution {
        let segments = try request.segments(2, usage: "/dispatch/flake/NAME/HOST")
        guard let flake = flakes[segments[0]] else {
            throw DispatchError.notFound("no flake named '\(segments[0])' on this server (see --flake)")
        }
        let host = segments[1]
        try DispatchSegment.validate(host)
        guard !host.contains("\"") else { throw DispatchError.badRequest("a flake host name cannot contain '\"'") }
        guard let root = FlakeRootName.make(name: flake.name, host: host) else {
            throw DispatchError.badRequest("the host name is too long for its GC root")
        }
        let reference = flake.reference, attributePath = Self.attributePath(host: host)
        let system = SystemBuildPipeline.System(root: root, subject: "flake \(flake.name) host \(host)") { store in
            try await store.instantiate(flake: reference, attributePath: attributePath)
        }
        let resolution = try await pipeline.resolve(system)
        if case .failed(let reason) = resolution { return .failed(reason: flake.redacting(reason)) }
        return resolution
    }
}
