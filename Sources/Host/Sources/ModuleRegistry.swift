/// The codecs and boot sources this server was built with, registered by the executable.
///
/// The host knows modules only through this registry: `--compression` accepts exactly the names of
/// the registered codecs, and `/dispatch/NAME/` routes to the source registered as NAME.
public struct ModuleRegistry: Sendable {
    public private(set) var compressors: [any Compressor] = []
    public private(set) var sources: [any BootSource] = []

    public init() {}

    /// Adds a codec; a second codec with the same name is a programming error.
    public mutating func register(compressor: any Compressor) {
        precondition(self.compressor(named: compressor.name) == nil, "codec \(compressor.name) registered twice")
        compressors.append(compressor)
    }

    /// Adds a boot source; a second source with the same name is a programming error.
    public mutating func register(source: any BootSource) {
        precondition(self.source(named: source.name) == nil, "source \(source.name) registered twice")
        sources.append(source)
    }

    public func compressor(named name: String) -> (any Compressor)? { compressors.first { $0.name == name } }
    public func source(named name: String) -> (any BootSource)? { sources.first { $0.name == name } }

    /// Codec names, as `--compression` lists them.
    public var compressorNames: [String] { compressors.map(\.name) }
}
