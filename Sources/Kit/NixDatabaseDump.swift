/// Splits the output of `nix-store --dump-db` into one record per path.
///
/// A record is: the store path, the NAR hash, the NAR size, the deriver (an empty line if none), the
/// number of references, then one reference per line. Records follow each other with no separator.
public enum NixDatabaseDump {
    /// One path's registration, exactly the bytes `nix-store --load-db` reads for it.
    public struct Record: Equatable, Sendable {
        public var path: StorePath
        public var references: [String]
        public var bytes: [UInt8]
    }

    /// Why a dump could not be read.
    public struct FormatError: Error, CustomStringConvertible {
        public var description: String
    }

    public static func split(_ dump: [UInt8]) throws -> [Record] {
        var records: [Record] = []
        var cursor = 0
        func nextLine() throws -> Substring {
            guard cursor < dump.count else { throw FormatError(description: "nix-store --dump-db output ends mid-record") }
            let end = dump[cursor...].firstIndex(of: UInt8(ascii: "\n")) ?? dump.count
            defer { cursor = min(end + 1, dump.count) }
            return Substring(decoding: dump[cursor..<end], as: UTF8.self)
        }
        while cursor < dump.count {
            let start = cursor
            let pathLine = try nextLine()
            if pathLine.isEmpty { continue }
            let path: StorePath
            do { path = try StorePath(absolutePath: String(pathLine)) } catch {
                throw FormatError(description: "nix-store --dump-db printed '\(pathLine)' where a store path belongs")
            }
            _ = try nextLine()  // NAR hash
            _ = try nextLine()  // NAR size
            _ = try nextLine()  // deriver
            let countLine = try nextLine()
            guard let count = Int(countLine), count >= 0 else {
                throw FormatError(description: "bad reference count '\(countLine)' for \(path)")
            }
            var references: [String] = []
            for _ in 0..<count { references.append(String(try nextLine())) }
            var bytes = Array(dump[start..<cursor])
            if bytes.last != UInt8(ascii: "\n") { bytes.append(UInt8(ascii: "\n")) }
            records.append(Record(path: path, references: references, bytes: bytes))
        }
        return records
    }

    /// The NAR size (the third line) of one path's registration.
    public static func narSize(of registration: [UInt8]) -> UInt64? {
        let lines = registration.split(separator: UInt8(ascii: "\n"), maxSplits: 3, omittingEmptySubsequences: false)
        guard lines.count >= 3 else { return nil }
        return UInt64(String(decoding: lines[2], as: UTF8.self))
    }
}
