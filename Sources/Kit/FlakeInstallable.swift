/// `REFERENCE#ATTRIBUTE.PATH` as Nix's command line takes it, with every attribute name quoted and
/// percent-encoded so that no name can add attribute-path or URL syntax of its own.
///
/// Nix percent-decodes the fragment, then splits it on `.` outside double quotes; a quoted name can
/// hold anything but `"`, which no attribute path on the command line can express.
public struct FlakeInstallable: Sendable, Equatable, CustomStringConvertible {
    /// The installable as one command-line argument.
    public let text: String

    /// Throws ``FlakeInstallableError`` for a reference that is empty, has a fragment of its own or
    /// starts with `-` (an option to Nix), and for an attribute name that is empty or holds `"`.
    public init(reference: String, attributePath: [String]) throws(FlakeInstallableError) {
        guard !reference.isEmpty, !reference.hasPrefix("-"), !reference.contains("#") else { throw .reference(reference) }
        var fragment = ""
        for name in attributePath {
            guard !name.isEmpty, !name.contains("\"") else { throw .attributeName(name) }
            if !fragment.isEmpty { fragment += "." }
            fragment += Self.percentEncoded("\"" + name + "\"")
        }
        text = reference + "#" + fragment
    }

    public var description: String { text }

    /// Keeps URL-unreserved ASCII (letters, digits, `-`, `.`, `_`, `~`); every other byte as `%XX`.
    static func percentEncoded(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let digits = Array("0123456789ABCDEF".unicodeScalars)
                result.unicodeScalars.append(contentsOf: ["%", digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
            }
        }
        return result
    }
}

/// Why a flake reference and attribute path cannot form an installable.
public enum FlakeInstallableError: Error, Equatable, CustomStringConvertible {
    /// Empty, starting with `-`, or with a `#` fragment of its own.
    case reference(String)
    /// Empty, or holding `"`.
    case attributeName(String)

    public var description: String {
        switch self {
        case .reference(let reference): "'\(reference)' is not a flake reference (empty, an option, or with a fragment)"
        case .attributeName(let name): "'\(name)' cannot be named in a flake attribute path (empty, or holding '\"')"
        }
    }
}
