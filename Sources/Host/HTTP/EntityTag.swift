import HTTPTypes

/// Strong entity tags for immutable responses, and `If-None-Match` matching.
package enum EntityTag {
    /// Whether an `If-None-Match` header value matches `tag` (weak comparison, as RFC 9110 asks).
    package static func matches(_ ifNoneMatch: String?, _ tag: String) -> Bool {
        guard let ifNoneMatch else { return false }
        let opaque = tag.hasPrefix("W/") ? String(tag.dropFirst(2)) : tag
        for candidate in ifNoneMatch.split(separator: ",") {
            var value = candidate.trimmingSpaces()
            if value == "*" { return true }
            if value.hasPrefix("W/") { value = String(value.dropFirst(2)) }
            if value == opaque { return true }
        }
        return false
    }

    /// Headers every immutable store-path response carries.
    package static func immutableHeaders(_ tag: String) -> HTTPFields {
        [.eTag: tag, .cacheControl: "public, max-age=31536000, immutable"]
    }
}

extension Substring {
    func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
