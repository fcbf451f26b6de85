#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import HTTPTypes
import Logging

/// Why a file of a system's layout was not read: absent, or refused because of where it leads or
/// what it is.
///
/// The public reason names the store path asked for and the file, never where a symlink pointed;
/// that detail goes to the log.
package struct SystemLayoutError: Error, Equatable, CustomStringConvertible {
    /// What went wrong.
    package enum Reason: Equatable, Sendable {
        /// The file does not exist: the path is not a NixOS system.
        case missing
        /// A symlink on the way leads outside the store (an absolute target elsewhere, or `..` above it).
        case leavesStore(link: String, target: String)
        /// A symlink on the way leads into a store path that is not in the closure (or is no valid name).
        case outsideClosure(storePath: String, link: String, target: String)
        /// Too many symlinks or path components on the way.
        case tooManyLinks
        /// The file is a directory, a device, a socket, a FIFO…
        case notRegularFile(kind: String)
        /// The file is larger than the server reads for it.
        case tooLarge(size: UInt64, limit: Int)
        /// A system call failed on the server's side.
        case readFailed(operation: String, path: String, errno: Int32)
    }

    /// The store path asked for.
    package var root: StorePath
    /// The file of its layout.
    package var entry: SystemLayout.Entry
    package var reason: Reason

    package init(root: StorePath, entry: SystemLayout.Entry, reason: Reason) {
        self.root = root
        self.entry = entry
        self.reason = reason
    }

    /// 404 for everything the path's contents cause; 500 when the server itself failed to read.
    package var status: HTTPResponse.Status {
        if case .readFailed = reason { return .internalServerError }
        return .notFound
    }

    /// One line for the client: the store path and the file, no target, no server path.
    package var publicReason: String {
        let file = entry.rawValue
        switch reason {
        case .missing: return "\(root.shortName) has no \(file): it is not a NixOS system"
        case .leavesStore, .outsideClosure: return "refused: the \(file) of \(root.shortName) leads outside its closure"
        case .tooManyLinks: return "refused: the \(file) of \(root.shortName) goes through too many symlinks or path components"
        case .notRegularFile: return "refused: the \(file) of \(root.shortName) is not a regular file"
        case .tooLarge(_, let limit): return "refused: the \(file) of \(root.shortName) is larger than \(limit) bytes"
        case .readFailed: return "could not read the \(file) of \(root.shortName) (details in the server log)"
        }
    }

    /// Everything known, for the log (targets escaped, so a hostile link cannot forge log lines).
    package var logMetadata: Logger.Metadata {
        var metadata: Logger.Metadata = ["path": "\(root.name)", "file": "\(entry.rawValue)"]
        switch reason {
        case .missing:
            metadata["refusal"] = "missing"
        case .leavesStore(let link, let target):
            metadata["refusal"] = "symlink leaves the store"
            metadata["link"] = "\(link.debugDescription)"
            metadata["target"] = "\(target.debugDescription)"
        case .outsideClosure(let storePath, let link, let target):
            metadata["refusal"] = "symlink leads outside the closure"
            metadata["outside"] = "\(storePath.debugDescription)"
            metadata["link"] = "\(link.debugDescription)"
            metadata["target"] = "\(target.debugDescription)"
        case .tooManyLinks:
            metadata["refusal"] = "too many symlinks"
        case .notRegularFile(let kind):
            metadata["refusal"] = "not a regular file: \(kind)"
        case .tooLarge(let size, let limit):
            metadata["refusal"] = "too large: \(size) bytes, limit \(limit)"
        case .readFailed(let operation, let path, let code):
            metadata["error"] = "\(operation) \(path.debugDescription): \(String(cString: strerror(code)))"
        }
        return metadata
    }

    package var description: String { "\(publicReason) \(logMetadata)" }
}
