import ArgumentParser
import ClosureSource
import ConfigurationSource
import Codecs
import Hummingbird
import Logging
import NetbootHost
import ProfileSource

/// The composition root: the one place that knows every module.
@main
struct NixNetbootServe: AsyncParsableCommand {
    /// Every codec and source this build offers. Adding one is one line here.
    func makeRegistry(context: SourceContext) throws -> ModuleRegistry {
        var registry = ModuleRegistry()
        registry.register(compressor: ZstdCompressor())
        registry.register(compressor: XzCompressor())
        registry.register(compressor: GzipCompressor())
        registry.register(compressor: NoneCompressor())
        registry.register(source: ClosureSource(context: context))
        registry.register(source: ProfileSource(options: profile, context: context))
        registry.register(source: try ConfigurationSource(options: configuration, context: context))
        return registry
    }

    static let configuration = CommandConfiguration(
        commandName: "nix-netboot-serve",
        abstract: "Netboots NixOS systems over HTTP to iPXE, packing each store path once.",
        discussion: "--compression takes: zstd, xz, gzip, none."
    )

    @OptionGroup(title: "Server")
    var server: ServerOptions

    @OptionGroup(title: "Profile source")
    var profile: ProfileSource.Options

    @OptionGroup(title: "Configuration source")
    var configuration: ConfigurationSource.Options

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func run() async throws {
        var logger = Logger(label: "nix-netboot-serve")
        logger.logLevel = logLevel
        let files = NetbootServer.raiseOpenFileLimit(to: server.openFiles)
        let store = NixStoreCLI()
        let context = NetbootServer.sourceContext(options: server, store: store, logger: logger)
        let netboot = try NetbootServer(options: server, registry: try makeRegistry(context: context), store: store, logger: logger)
        logger.info("starting", metadata: [
            "listen": "\(server.listen)", "compression": "\(netboot.assembler.packer.compressor.name)",
            "level": "\(netboot.assembler.packer.level)", "open-files": "\(files)",
        ])
        try await netboot.makeApplication().runService()
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
