import HTTPTypes

/// Decodes an `application/x-www-form-urlencoded` query: `+` is a space, `%XX` a byte.
package enum QueryString {
    /// The decoded value of the first `name=…` pair, nil if absent.
    package static func value(_ name: String, in query: String?) throws(PlainTextError) -> String? {
        guard let query, !query.isEmpty else { return nil }
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard try decode(parts[0]) == name else { continue }
            return parts.count > 1 ? try decode(parts[1]) : ""
        }
        return nil
    }

    static func decode(_ text: Substring) throws(PlainTextError) -> String {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"): bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    throw PlainTextError(.badRequest, "bad percent-encoding in the query")
                }
                bytes.append(high << 4 | low)
            default: bytes.append(byte)
            }
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw PlainTextError(.badRequest, "the query is not UTF-8 once decoded")
        }
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
