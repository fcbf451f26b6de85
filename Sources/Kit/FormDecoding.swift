/// `application/x-www-form-urlencoded` decoding of one query name or value: `+` is a space, `%XX`
/// a byte, and the bytes must be UTF-8.
public enum FormDecoding {
    /// Why a value does not decode.
    public enum Failure: Error, Equatable {
        /// A `%` not followed by two hex digits.
        case badPercentEncoding
        /// The decoded bytes are not UTF-8.
        case notUTF8
    }

    /// The decoded text of `text`.
    public static func decode(_ text: Substring) throws(Failure) -> String {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"): bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    throw .badPercentEncoding
                }
                bytes.append(high << 4 | low)
            default: bytes.append(byte)
            }
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else { throw .notUTF8 }
        return decoded
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
