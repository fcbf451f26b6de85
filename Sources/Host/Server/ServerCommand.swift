#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import ArgumentParser
import Logging

/// The server's command line: the host's options and every registered module's, from one argv.
///
/// ArgumentParser composes option groups statically; modules are only known at run time (the
/// executable lists them), so each set of options is parsed from the whole command line, tolerating
/// what belongs to the others, and an argument that no set takes is an error. `--help` prints every
/// set under its title.
package enum ServerCommand {
    /// The host's own options, as the command line gives them.
    package struct HostOptions: ParsableArguments {
        @OptionGroup(title: "Server")
        var server: ServerOptions

        @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
        var logLevel: Logger.Level = .info

        package init() {}
    }

    /// A set of options parsed while leaving the arguments it does not know for the others.
    struct Tolerant<Options: ParsableArguments>: ParsableCommand {
        static var configuration: CommandConfiguration { CommandConfiguration(commandName: "nix-netboot-serve") }

        @OptionGroup var options: Options
        @Argument(parsing: .allUnrecognized, help: .hidden) var unrecognized: [String] = []
    }

    /// A module with the options parsed for it, ready to be made.
    struct ParsedSource {
        let make: (SourceContext) throws -> any BootSource
    }

    /// Parses `arguments`, builds the registry and runs the server until SIGTERM or SIGINT. Never returns.
    package static func main(
        name: String, abstract: String, codecs: [any Compressor], sources: [any BootSourceModule.Type],
        arguments: [String] = Array(CommandLine.arguments.dropFirst())
    ) async -> Never {
        do {
            if arguments.contains("--help") || arguments.contains("-h") {
                print(help(name: name, abstract: abstract, codecs: codecs, sources: sources))
                exit(0)
            }
            let host = try Tolerant<HostOptions>.parse(arguments)
            var leftovers = [host.unrecognized]
            var parsed: [ParsedSource] = []
            for module in sources {
                let (source, rest) = try parse(module, arguments)
                parsed.append(source)
                leftovers.append(rest)
            }
            if let unknown = unclaimed(leftovers) {
                throw ValidationError("unknown option or argument '\(unknown)' (see --help)")
            }
            try await run(host.options, codecs: codecs, sources: parsed)
            exit(0)
        } catch {
            Tolerant<HostOptions>.exit(withError: error)
        }
    }

    static func parse<Module: BootSourceModule>(_ module: Module.Type, _ arguments: [String]) throws -> (ParsedSource, [String]) {
        let parsed = try Tolerant<Module.Options>.parse(arguments)
        let options = parsed.options
        return (ParsedSource { context in try Module(options: options, context: context) }, parsed.unrecognized)
    }

    /// The first argument left over by every parser (counting repeats), if any.
    static func unclaimed(_ leftovers: [[String]]) -> String? {
        guard let first = leftovers.first else { return nil }
        var counts: [String: Int] = [:]
        for argument in first { counts[argument, default: 0] += 1 }
        for rest in leftovers.dropFirst() {
            var seen: [String: Int] = [:]
            for argument in rest { seen[argument, default: 0] += 1 }
            for (argument, count) in counts { counts[argument] = min(count, seen[argument] ?? 0) }
        }
        return first.first { (counts[$0] ?? 0) > 0 }
    }

    static func run(_ options: HostOptions, codecs: [any Compressor], sources: [ParsedSource]) async throws {
        var logger = Logger(label: "nix-netboot-serve")
        logger.logLevel = options.logLevel
        let server = options.server
        let files = NetbootServer.raiseOpenFileLimit(to: server.openFiles)
        let store = NixStoreCLI()
        let metrics = ServerMetrics()
        let context = NetbootServer.sourceContext(options: server, store: store, logger: logger, metrics: metrics)
        var registry = ModuleRegistry()
        for codec in codecs { try registry.register(compressor: codec) }
        for source in sources { try registry.register(source: try source.make(context)) }
        let netboot = try NetbootServer(options: server, registry: registry, store: store, logger: logger, metrics: metrics)
        logger.info("starting", metadata: [
            "listen": "\(server.listen)", "compression": "\(netboot.assembler.packer.compressor.name)",
            "level": "\(netboot.assembler.packer.level)", "open-files": "\(files)", "max-connections": "\(netboot.connectionLimit)",
        ])
        try await netboot.makeApplication().runService()
    }

    /// The host's help, then each module's options under its title.
    static func help(name: String, abstract: String, codecs: [any Compressor], sources: [any BootSourceModule.Type]) -> String {
        var text = "OVERVIEW: \(abstract)\n\nUSAGE: \(name) [<options>]\n\n"
        text += optionsSection(HostOptions.helpMessage(columns: 100))
        text += "\n  --compression takes: \(codecs.map(\.name).joined(separator: ", ")).\n"
        for module in sources {
            let section = optionsSection(moduleHelp(module))
            guard section.split(separator: "\n").contains(where: { $0.hasPrefix("  -") }) else { continue }
            text += "\n\(module.optionsTitle.uppercased()):\n" + section.split(separator: "\n", omittingEmptySubsequences: false).dropFirst().joined(separator: "\n")
        }
        return text
    }

    static func moduleHelp<Module: BootSourceModule>(_ module: Module.Type) -> String {
        Module.Options.helpMessage(columns: 100)
    }

    /// The help message from its first section heading on (without the usage line).
    static func optionsSection(_ help: String) -> String {
        let lines = help.split(separator: "\n", omittingEmptySubsequences: false)
        guard let start = lines.firstIndex(where: { $0.hasSuffix(":") && !$0.hasPrefix(" ") && !$0.hasPrefix("USAGE") }) else { return "" }
        return lines[start...].filter { !$0.contains("-h, --help") }.joined(separator: "\n")
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
