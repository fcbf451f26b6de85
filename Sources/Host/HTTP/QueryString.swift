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
        do { return try FormDecoding.decode(text) } catch {
            switch error {
            case .badPercentEncoding: throw PlainTextError(.badRequest, "bad percent-encoding in the query")
            case .notUTF8: throw PlainTextError(.badRequest, "the query is not UTF-8 once decoded")
            }
        }
    }
}
