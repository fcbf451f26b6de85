/// Identifies one cached archive: a store path packed by one codec at one level, in one archive format.
///
/// All four appear in the file name, so archives of other codecs, levels, format versions (or other
/// tools sharing the directory) are never mistaken for each other.
package struct CacheKey: Hashable, Sendable, CustomStringConvertible {
    package var path: StorePath
    package var codec: String
    package var level: Int
    package var formatVersion: Int

    package init(path: StorePath, codec: String, level: Int, formatVersion: Int = InitrdLayout.formatVersion) {
        self.path = path
        self.codec = codec
        self.level = level
        self.formatVersion = formatVersion
    }

    /// `NAME@nns-cpio-vN@CODEC-LEVEL` ('@' never occurs in a store path name).
    package var fileName: String { "\(path.name)@nns-cpio-v\(formatVersion)@\(codec)-\(level)" }

    /// Parses a file name written by ``fileName``; nil for anything else.
    package init?(fileName: String) {
        let parts = fileName.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[1].hasPrefix("nns-cpio-v"),
              let version = Int(parts[1].dropFirst("nns-cpio-v".count)),
              let dash = parts[2].lastIndex(of: "-"),
              let level = Int(parts[2][parts[2].index(after: dash)...]),
              let path = try? StorePath(name: String(parts[0]))
        else { return nil }
        let codec = String(parts[2][..<dash])
        guard !codec.isEmpty, codec.allSatisfy({ $0.isLetter || $0.isNumber }) else { return nil }
        self.init(path: path, codec: codec, level: level, formatVersion: version)
        guard self.fileName == fileName else { return nil }
    }

    package var description: String { fileName }
}
