import ArgumentParser
import ClosureSource
import ConfigurationSource
import Codecs
import Hummingbird
import HydraSource
import Logging
import NetbootHost
import ProfileSource

/// The composition root: the one place that knows every module.
@main
struct NixNetbootServe: AsyncParsableCommand {
    /// Every codec this build offers, the default first. Adding one is one line here.
    static let codecs: [any Compressor] = [
        ZstdCompressor(),
        XzCompressor(),
        GzipCompressor(),
        NoneCompressor(),
    ]

    /// Every codec and source this build offers. Adding a source is one line here (and its options below).
    func makeRegistry(context: SourceContext) throws -> ModuleRegistry {
        var registry = ModuleRegistry()
        for codec in Self.codecs { try registry.register(compressor: codec) }
        try registry.register(source: ClosureSource(context: context))
        try registry.register(source: ProfileSource(options: profile, context: context))
        try registry.register(source: try ConfigurationSource(options: configuration, context: context))
        try registry.register(source: try HydraSource(options: hydra, context: context))
        return registry
    }

    static let configuration = CommandConfiguration(
        commandName: "nix-netboot-serve",
        abstract: "Netboots NixOS systems over HTTP to iPXE, packing each store path once.",
        discussion: "--compression takes: \(codecs.map(\.name).joined(separator: ", "))."
    )

    @OptionGroup(title: "Server")
    var server: ServerOptions

    @OptionGroup(title: "Profile source")
    var profile: ProfileSource.Options

    @OptionGroup(title: "Configuration source")
    var configuration: ConfigurationSource.Options

    @OptionGroup(title: "Hydra source")
    var hydra: HydraSource.Options

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
            "level": "\(netboot.assembler.packer.level)", "open-files": "\(files)", "max-connections": "\(netboot.connectionLimit)",
        ])
        try await netboot.makeApplication().runService()
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
