#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NetbootKit

/// Follows a chain of symlinks from a profile to the store path it names.
enum ProfileLink {
    /// Why a profile does not name a store path: a public reason without server paths, and the
    /// details (the links followed) for the log.
    struct Failure: Error {
        var reason: String
        var detail: String
    }

    /// The most links followed before giving up (a loop, or a silly chain).
    static let maximumHops = 40

    /// Resolves `link`: the chain must end at exactly `/nix/store/NAME`.
    static func resolve(_ link: String, profile: String) throws(Failure) -> StorePath {
        var current = link
        for _ in 0..<maximumHops {
            if let path = try? StorePath(absolutePath: current) { return path }
            if current.hasPrefix(StorePath.storeDirectory + "/") {
                throw Failure(reason: "profile \(profile) points inside a store path rather than at one", detail: current)
            }
            var info = stat()
            guard lstat(current, &info) == 0 else {
                throw Failure(
                    reason: current == link ? "no profile named \(profile)" : "profile \(profile) leads to a link target that does not exist",
                    detail: current)
            }
            guard info.st_mode & S_IFMT == S_IFLNK else {
                throw Failure(reason: "profile \(profile) leads outside \(StorePath.storeDirectory)", detail: current)
            }
            guard let target = readLink(current) else {
                throw Failure(reason: "cannot read a link of profile \(profile)", detail: current)
            }
            if target.hasPrefix("/") {
                current = target
            } else {
                let parent = current.lastIndex(of: "/").map { String(current[..<$0]) } ?? "."
                current = normalise(parent + "/" + target)
            }
        }
        throw Failure(reason: "profile \(profile): more than \(maximumHops) links (a loop?)", detail: current)
    }

    static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4097)
        let count = readlink(path, &buffer, 4096)
        guard count >= 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Removes `.` and `..` components (textually, as the kernel would for a link's parent that is a directory).
    static func normalise(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            if part == "." { continue }
            if part == ".." { _ = parts.popLast(); continue }
            parts.append(part)
        }
        return (path.hasPrefix("/") ? "/" : "") + parts.joined(separator: "/")
    }
}
