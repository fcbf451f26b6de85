import NetbootKit

/// A rule's `files` and `directories` as overlay entries: paths checked, every parent directory
/// present (with the mode NixOS gives it, 0755 unless the rule says otherwise), parents before
/// children, limits enforced.
public enum OverlayPlan {
    /// Directories NixOS keeps at another mode than 0755. The kernel applies an entry's mode to a
    /// directory that exists already, and NixOS's activation does not always set it back, so a parent
    /// the rule names no mode for gets the system's.
    public static let systemDirectoryModes: [String: UInt32] = ["root": 0o700, "root/.ssh": 0o700, "tmp": 0o1777, "var/tmp": 0o1777]

    /// The entries for `files` (path → text and mode, 0644 by default) and `directories` (path → mode).
    static func entries(files: [String: RuleFile.FileSpec], directories: [String: String], limits: RuleLimits) throws(RuleProblem) -> [OverlayEntry] {
        guard files.count <= limits.files else { throw RuleProblem("\(files.count) files; a rule may have at most \(limits.files)") }
        let content = files.values.reduce(0) { $0 + $1.text.utf8.count }
        guard content <= limits.contentBytes else { throw RuleProblem("files hold \(content) bytes; a rule may hold at most \(limits.contentBytes)") }
        var fileEntries: [String: OverlayEntry] = [:]
        for (path, spec) in files {
            let relative = try checkPath(path, limits: limits)
            let mode = try parseMode(spec.mode, default: 0o644, for: path)
            fileEntries[relative] = .file(path: relative, mode: mode, contents: Array(spec.text.utf8))
        }
        var directoryModes: [String: UInt32] = [:]
        for (path, mode) in directories {
            directoryModes[try checkPath(path, limits: limits)] = try parseMode(mode, default: 0o755, for: path)
        }
        var all: [String: OverlayEntry] = [:]
        for (path, mode) in directoryModes { all[path] = .directory(path: path, mode: mode) }
        for path in Array(fileEntries.keys) + Array(directoryModes.keys) {
            var parent = path
            while let slash = parent.lastIndex(of: "/") {
                parent = String(parent[..<slash])
                if fileEntries[parent] != nil { throw RuleProblem("/\(parent) is a file and also the parent of /\(path)") }
                if all[parent] == nil { all[parent] = .directory(path: parent, mode: systemDirectoryModes[parent] ?? 0o755) }
            }
        }
        for (path, entry) in fileEntries {
            guard all[path] == nil else { throw RuleProblem("/\(path) is both a file and a directory") }
            all[path] = entry
        }
        // Byte-wise order puts every directory before what it holds.
        return all.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }.compactMap { all[$0] }
    }

    /// `path` without its leading `/`, or why it cannot be in an overlay: it must be absolute and
    /// normalised (no empty, `.` or `..` component, no trailing `/`), not `/`, and outside `/nix`.
    static func checkPath(_ path: String, limits: RuleLimits) throws(RuleProblem) -> String {
        let shown = String(path.prefix(80))
        guard path.hasPrefix("/") else { throw RuleProblem("path '\(shown)' is not absolute") }
        guard path != "/" else { throw RuleProblem("path '/' would replace the root directory") }
        guard path.utf8.count <= limits.pathBytes else { throw RuleProblem("path '\(shown)…' is longer than \(limits.pathBytes) bytes") }
        guard !path.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw RuleProblem("path '\(shown)' holds a control character")
        }
        let components = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        guard components.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
            throw RuleProblem("path '\(shown)' is not normalised (empty, '.' or '..' component, or a trailing '/')")
        }
        guard components[0] != "nix" else { throw RuleProblem("path '\(shown)' is /nix or inside it (the store and its registrations are not for rules)") }
        return String(path.dropFirst())
    }

    /// An octal mode string (`"0600"`, `"755"`) of permission bits.
    static func parseMode(_ text: String?, default value: UInt32, for path: String) throws(RuleProblem) -> UInt32 {
        guard let text else { return value }
        guard (1...5).contains(text.count), let mode = UInt32(text, radix: 8), mode <= 0o7777 else {
            throw RuleProblem("mode '\(text.prefix(20))' of \(path.prefix(80)) is not an octal mode such as \"0644\"")
        }
        return mode
    }
}
