/// The GC root of one flake host: `flake-NAME-HOST`, each part escaped so that different pairs never
/// share a root (`a-b`/`c` and `a`/`b-c`).
enum FlakeRootName {
    /// The longest a root name may be: one file name.
    static let maximumLength = 255
    /// The longest an escaped flake name may be, leaving room for hosts.
    static let maximumEscapedNameLength = 96

    /// `flake-` + escaped name + `-` + escaped host, or nil when that is longer than a file name may be.
    static func make(name: String, host: String) -> String? {
        let root = "flake-" + escape(name) + "-" + escape(host)
        return root.utf8.count <= maximumLength ? root : nil
    }

    /// Keeps ASCII letters, digits, `_` and `.`; writes every other byte (`-` and `%` among them) as
    /// `%XX`. The result holds no `-` and no `/`, and the mapping is injective, so the parts of a root
    /// name can be told apart again.
    static func escape(_ text: String) -> String {
        let digits = Array("0123456789ABCDEF".unicodeScalars)
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "_"), UInt8(ascii: "."):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                result.unicodeScalars.append(contentsOf: ["%", digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
            }
        }
        return result
    }
}
