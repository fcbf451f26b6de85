/// A validated Nix store path name: 32 nix-base32 characters, a dash, then a name.
///
/// The name is everything after `/nix/store/`. Validation follows Nix's own rules, so any value of
/// this type is safe to put into a file name, a command line or a URL.
public struct StorePath: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The store directory this server serves from; the initrd layout is built around it.
    public static let storeDirectory = "/nix/store"

    /// The base name, e.g. `"0c8z…-hello-2.12"`.
    public let name: String

    /// Validates a base name.
    public init(name: String) throws(StorePathError) {
        try Self.validate(name)
        self.name = name
    }

    /// Validates an absolute path such as `/nix/store/HASH-name` (no trailing components).
    public init(absolutePath: String) throws(StorePathError) {
        let prefix = Self.storeDirectory + "/"
        guard absolutePath.hasPrefix(prefix) else {
            throw StorePathError(value: absolutePath, reason: "is not in \(Self.storeDirectory)")
        }
        try self.init(name: String(absolutePath.dropFirst(prefix.count)))
    }

    /// `/nix/store/NAME`.
    public var absolutePath: String { Self.storeDirectory + "/" + name }

    /// The name as one URL path segment: every character a name may hold is safe there but `?`.
    public var urlSegment: String { String(name.flatMap { $0 == "?" ? Array("%3F") : [$0] }) }

    /// The 32-character hash part.
    public var hashPart: Substring { name.prefix(32) }

    public var description: String { absolutePath }

    public static func < (lhs: StorePath, rhs: StorePath) -> Bool {
        lhs.name.utf8.lexicographicallyPrecedes(rhs.name.utf8)
    }

    /// The characters of Nix's base-32 alphabet (no e, o, u, t).
    static let base32Alphabet = Set("0123456789abcdfghijklmnpqrsvwxyz".utf8)

    static func isNameCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "?"), UInt8(ascii: "="):
            return true
        default:
            return false
        }
    }

    static func validate(_ name: String) throws(StorePathError) {
        let bytes = Array(name.utf8)
        guard bytes.count >= 34 else {
            throw StorePathError(value: name, reason: "is too short to be a store path name (HASH-name)")
        }
        guard bytes.count <= 211 else {
            throw StorePathError(value: name, reason: "is longer than a store path name may be (211)")
        }
        guard bytes[0..<32].allSatisfy(base32Alphabet.contains) else {
            throw StorePathError(value: name, reason: "does not start with a 32-character nix-base32 hash")
        }
        guard bytes[32] == UInt8(ascii: "-") else {
            throw StorePathError(value: name, reason: "has no '-' after its hash")
        }
        let rest = bytes[33...]
        guard rest.first != UInt8(ascii: ".") else {
            throw StorePathError(value: name, reason: "has a name starting with '.'")
        }
        guard rest.allSatisfy(isNameCharacter) else {
            throw StorePathError(value: name, reason: "has characters a store path name may not contain")
        }
    }
}

/// Why a string is not a store path name.
public struct StorePathError: Error, Equatable, CustomStringConvertible {
    /// The rejected input.
    public var value: String
    /// A human-readable reason.
    public var reason: String

    /// The value (its first 64 characters when longer) and the reason: short enough for a log line
    /// or an answer, however long the input was.
    public var description: String {
        let shown = value.count > 64 ? value.prefix(64) + "…" : Substring(value)
        return "'\(shown)' \(reason)"
    }
}
