/// Percent-escaping for text that goes into a URL path or a file name.
enum PercentEscaping {
    /// Keeps ASCII letters, digits, `-`, `_` and `.`; writes every other byte as `%XX` (upper-case hex).
    ///
    /// The result never contains `/`, `+`, `~` or a control character, and the mapping is injective,
    /// so escaped parts joined with `+` can be told apart again.
    static func escape(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                result += "%" + hexDigit(byte >> 4) + hexDigit(byte & 0xF)
            }
        }
        return result
    }

    private static func hexDigit(_ nibble: UInt8) -> String {
        String(UnicodeScalar(nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "A") + nibble - 10))
    }
}
