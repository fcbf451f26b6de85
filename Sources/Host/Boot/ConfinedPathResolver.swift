#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Follows a path below the store one component at a time and refuses to leave a set of store paths.
///
/// Each component is looked at with `lstat`; a symlink is read with `readlink` and its target takes
/// the place of the link (an absolute target must lie under the store directory, a relative one is
/// taken against the link's directory). `..` removes the last component already resolved, which is a
/// real directory by then (every symlink before it was replaced by its target), so the lexical step
/// is the physical one; `..` at the store directory itself leaves the store and is refused. After
/// every step the first component must be the name of an allowed store path, so nothing outside the
/// store, in an unknown or invalid path, or in a path of another closure is ever looked at twice,
/// and nothing at all is opened here.
struct ConfinedPathResolver: Sendable {
    /// The most symlinks one resolution follows (Linux's own limit, `MAXSYMLINKS`).
    static let maximumLinks = 40
    /// The most components (names and `..`) one resolution walks: a NixOS kernel takes about five;
    /// this bounds the work a hostile chain of `dir/../dir/..` links can cause.
    static let maximumSteps = 1024

    /// The store directory, e.g. `/nix/store`.
    let storeDirectory: String
    /// The store paths a resolution may end in or pass through, sorted byte-wise (as
    /// ``InitrdAssembler/closure(of:)`` returns them: shared, not copied into a set per request).
    let allowed: [StorePath]

    /// Where a path led: real directories all the way, then an object that is not a symlink.
    struct Resolved: Sendable {
        /// Components below the store directory; the first is an allowed store path name.
        var components: [String]
        /// The absolute path, without symlinks.
        var path: String
        /// `lstat` of the object.
        var status: stat
    }

    /// Why a path could not be resolved inside the allowed store paths.
    enum Failure: Error, Equatable {
        /// A component does not exist (or a non-directory has more components after it).
        case missing(at: String)
        /// A symlink points outside the store directory (or `..` climbs out of it).
        case leavesStore(link: String, target: String)
        /// The path reaches a store path name that is not allowed (or no valid name at all).
        case outsideClosure(storePath: String, link: String, target: String)
        /// More than ``ConfinedPathResolver/maximumLinks`` symlinks or
        /// ``ConfinedPathResolver/maximumSteps`` components.
        case tooManyLinks
        /// A system call failed for another reason than absence.
        case systemCall(operation: String, path: String, errno: Int32)
    }

    /// Resolves `relative`, a path below the store directory whose first component is allowed.
    func resolve(_ relative: String) throws(Failure) -> Resolved {
        var pending = Self.components(of: relative)
        pending.reverse()  // consumed from the end: the next component is `pending.last`
        var resolved: [String] = []
        var links = 0, steps = 0
        // The last symlink followed and its target, for the log.
        var link = (path: "", target: relative)
        while let component = pending.popLast() {
            switch component {
            case "", ".":
                continue
            case "..":
                steps += 1
                guard steps <= Self.maximumSteps else { throw .tooManyLinks }
                guard resolved.popLast() != nil else { throw .leavesStore(link: link.path, target: link.target) }
                continue
            default:
                steps += 1
                guard steps <= Self.maximumSteps else { throw .tooManyLinks }
                resolved.append(component)
            }
            guard let first = resolved.first, isAllowed(first) else {
                throw .outsideClosure(storePath: resolved.first ?? "", link: link.path, target: link.target)
            }
            let path = absolutePath(resolved)
            var info = stat()
            guard lstat(path, &info) == 0 else {
                let code = errno
                if code == ENOENT || code == ENOTDIR { throw .missing(at: path) }
                throw .systemCall(operation: "lstat", path: path, errno: code)
            }
            switch info.st_mode & S_IFMT {
            case S_IFLNK:
                links += 1
                guard links <= Self.maximumLinks else { throw .tooManyLinks }
                let target = try readLink(path)
                resolved.removeLast()
                link = (path, target)
                if target.hasPrefix("/") {
                    let absolute = Self.components(of: target).filter { $0 != "." && !$0.isEmpty }
                    let store = Self.components(of: storeDirectory).filter { !$0.isEmpty }
                    guard absolute.count > store.count, zip(absolute, store).allSatisfy({ $0.utf8.elementsEqual($1.utf8) }) else {
                        throw .leavesStore(link: path, target: target)
                    }
                    resolved = []
                    pending.append(contentsOf: absolute.dropFirst(store.count).reversed())
                } else {
                    pending.append(contentsOf: Self.components(of: target).reversed())
                }
            case S_IFDIR:
                continue
            default:
                // Not a directory: nothing may come after it.
                if pending.contains(where: { $0 != "" && $0 != "." }) { throw .missing(at: path) }
                return Resolved(components: resolved, path: path, status: info)
            }
            if pending.isEmpty { return Resolved(components: resolved, path: path, status: info) }
        }
        // Ended on `.` or `..`: the directory reached (already checked) is the answer.
        guard !resolved.isEmpty else { throw .leavesStore(link: link.path, target: link.target) }
        let path = absolutePath(resolved)
        var info = stat()
        guard lstat(path, &info) == 0 else { throw .systemCall(operation: "lstat", path: path, errno: errno) }
        return Resolved(components: resolved, path: path, status: info)
    }

    /// Binary search of `name` in ``allowed``.
    func isAllowed(_ name: String) -> Bool {
        var low = 0, high = allowed.count
        while low < high {
            let middle = (low + high) / 2
            let candidate = allowed[middle].name
            if candidate.utf8.elementsEqual(name.utf8) { return true }  // bytes, not canonical equivalence
            if candidate.utf8.lexicographicallyPrecedes(name.utf8) { low = middle + 1 } else { high = middle }
        }
        return false
    }

    private func absolutePath(_ components: [String]) -> String {
        storeDirectory + "/" + components.joined(separator: "/")
    }

    private func readLink(_ path: String) throws(Failure) -> String {
        var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = buffer.withUnsafeMutableBufferPointer { raw in
            raw.baseAddress!.withMemoryRebound(to: CChar.self, capacity: raw.count) { readlink(path, $0, raw.count) }
        }
        guard count >= 0 else { throw .systemCall(operation: "readlink", path: path, errno: errno) }
        guard count <= Int(PATH_MAX) else { throw .systemCall(operation: "readlink", path: path, errno: ENAMETOOLONG) }
        return String(decoding: buffer[..<count], as: UTF8.self)
    }

    private static func components(of path: String) -> [String] {
        path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
    }
}
