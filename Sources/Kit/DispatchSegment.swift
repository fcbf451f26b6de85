/// The one validator for every URL segment a boot source receives.
///
/// A segment may become a file name or part of one (a profile, a configuration directory, a GC root),
/// so it must not be able to leave the directory it names something in.
public enum DispatchSegment {
    /// The longest segment accepted.
    public static let maximumLength = 200

    /// Throws a 400-mapped ``DispatchError`` with the reason unless `segment` is safe.
    public static func validate(_ segment: String) throws(DispatchError) {
        if segment.isEmpty { throw .badRequest("empty path segment") }
        if segment.utf8.count > maximumLength {
            throw .badRequest("path segment longer than \(maximumLength) bytes")
        }
        if segment.hasPrefix(".") { throw .badRequest("path segment '\(segment)' may not start with '.'") }
        if segment.contains("/") { throw .badRequest("path segment may not contain '/'") }
        if segment.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            throw .badRequest("path segment may not contain control characters")
        }
    }
}
