/// The codecs and boot sources this server was built with, registered by the executable.
///
/// The host knows modules only through this registry: `--compression` accepts exactly the names of
/// the registered codecs, and `/dispatch/NAME/` routes to the source registered as NAME.
package struct ModuleRegistry: Sendable {
    package private(set) var compressors: [any Compressor] = []
    package private(set) var sources: [any BootSource] = []

    package init() {}

    /// Adds a codec. Its name goes into cache file names and `--compression`: 1–16 lowercase letters
    /// or digits, not taken by another codec.
    package mutating func register(compressor: any Compressor) throws(ModuleRegistrationError) {
        let name = compressor.name
        guard (1...16).contains(name.utf8.count), name.utf8.allSatisfy(Self.isLowercaseAlphanumeric) else {
            throw .invalidName(kind: "codec", name: name, rule: "1 to 16 lowercase letters or digits")
        }
        guard self.compressor(named: name) == nil else { throw .duplicate(kind: "codec", name: name) }
        compressors.append(compressor)
    }

    /// Adds a boot source. Its name is the URL segment after `/dispatch/`: 1–32 lowercase letters,
    /// digits or hyphens, starting with a letter, not taken by another source.
    package mutating func register(source: any BootSource) throws(ModuleRegistrationError) {
        let name = source.name
        guard (1...32).contains(name.utf8.count), let first = name.utf8.first, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first),
              name.utf8.allSatisfy({ Self.isLowercaseAlphanumeric($0) || $0 == UInt8(ascii: "-") })
        else { throw .invalidName(kind: "source", name: name, rule: "1 to 32 lowercase letters, digits or hyphens, starting with a letter") }
        guard self.source(named: name) == nil else { throw .duplicate(kind: "source", name: name) }
        sources.append(source)
    }

    static func isLowercaseAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    package func compressor(named name: String) -> (any Compressor)? { compressors.first { $0.name == name } }
    package func source(named name: String) -> (any BootSource)? { sources.first { $0.name == name } }

    /// Codec names, as `--compression` lists them.
    package var compressorNames: [String] { compressors.map(\.name) }
}

/// A module that cannot be registered: the executable refuses to start.
package enum ModuleRegistrationError: Error, Equatable, CustomStringConvertible {
    case invalidName(kind: String, name: String, rule: String)
    case duplicate(kind: String, name: String)

    package var description: String {
        switch self {
        case .invalidName(let kind, let name, let rule): "\(kind) name '\(name)' is not \(rule)"
        case .duplicate(let kind, let name): "\(kind) '\(name)' is registered twice"
        }
    }
}
