#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The files of a NixOS system the server reads — `init`, `kernel`, `kernel-params`, `initrd` —
/// with every symlink on the way confined to the system's closure.
///
/// In a NixOS toplevel `kernel` is a symlink into the kernel's own store path, which is in the
/// closure: that is followed. A symlink to anything else — outside the store, `..` above it, an
/// invalid or unknown store path, a path of another closure — is refused, and so is a final object
/// that is not a regular file (a directory, a device, a socket, a FIFO). Nothing is opened before it
/// has been resolved inside the closure and seen (`lstat`) to be a regular file; it is then opened
/// with `O_NOFOLLOW | O_NONBLOCK` and checked again (`fstat`) to be that same regular file.
package struct SystemLayout: Sendable {
    /// A file of a NixOS toplevel.
    package enum Entry: String, Sendable, CaseIterable {
        /// The stage-2 init, named by `rdinit=` on the kernel line.
        case `init`
        /// The kernel image (`bzImage`).
        case kernel
        /// The system's own kernel command line.
        case kernelParameters = "kernel-params"
        /// The system's own initrd (not served yet).
        case initrd
    }

    /// The most bytes of `kernel-params` read: far above what fits on a kernel line.
    package static let kernelParametersLimit = 16 * 1024

    /// The store path asked for.
    package let root: StorePath
    private let resolver: ConfinedPathResolver

    /// A layout reader for `root`, confined to `closure` (which must hold `root` itself).
    /// `storeDirectory` is the store's directory; tests point it elsewhere to make what Nix refuses.
    package init(root: StorePath, closure: some Sequence<StorePath>, storeDirectory: String = StorePath.storeDirectory) {
        self.init(root: root, sortedClosure: closure.sorted(), storeDirectory: storeDirectory)
    }

    /// The same for a closure already sorted byte-wise, as ``InitrdAssembler/closure(of:)`` keeps it.
    init(root: StorePath, sortedClosure: [StorePath], storeDirectory: String = StorePath.storeDirectory) {
        self.root = root
        self.resolver = ConfinedPathResolver(storeDirectory: storeDirectory, allowed: sortedClosure)
    }

    /// Throws unless `root` is a NixOS system: `init` and `kernel` are regular files in the closure,
    /// and so is `kernel-params` unless the system has none.
    package func requireSystem() throws(SystemLayoutError) {
        _ = try locate(.`init`)
        _ = try locate(.kernel)
        do { _ = try locate(.kernelParameters) } catch {
            if error.reason != .missing { throw error }
        }
    }

    /// The resolved path and size of `entry`, a regular file in the closure; nothing is opened.
    package func locate(_ entry: Entry) throws(SystemLayoutError) -> (path: String, size: UInt64) {
        let resolved = try resolve(entry)
        return (resolved.path, UInt64(resolved.status.st_size))
    }

    /// Opens `entry`, which must be a regular file in the closure of at most `limit` bytes.
    package func open(_ entry: Entry, limit: Int? = nil) throws(SystemLayoutError) -> LayoutFile {
        let resolved = try resolve(entry)
        if let limit, resolved.status.st_size > limit {
            throw SystemLayoutError(root: root, entry: entry, reason: .tooLarge(size: UInt64(resolved.status.st_size), limit: limit))
        }
        let fd = openWithoutFollowing(resolved.path)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT { throw SystemLayoutError(root: root, entry: entry, reason: .missing) }
            if code == ELOOP { throw SystemLayoutError(root: root, entry: entry, reason: .notRegularFile(kind: "a symlink (appeared after it was resolved)")) }
            throw SystemLayoutError(root: root, entry: entry, reason: .readFailed(operation: "open", path: resolved.path, errno: code))
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            close(fd)
            throw SystemLayoutError(root: root, entry: entry, reason: .readFailed(operation: "fstat", path: resolved.path, errno: code))
        }
        guard info.st_mode & S_IFMT == S_IFREG, info.st_dev == resolved.status.st_dev, info.st_ino == resolved.status.st_ino else {
            close(fd)
            throw SystemLayoutError(root: root, entry: entry, reason: .notRegularFile(kind: "replaced after it was resolved"))
        }
        if let limit, info.st_size > limit {
            close(fd)
            throw SystemLayoutError(root: root, entry: entry, reason: .tooLarge(size: UInt64(info.st_size), limit: limit))
        }
        return LayoutFile(descriptor: fd, path: resolved.path, size: UInt64(info.st_size))
    }

    /// The bytes of `entry` (at most `limit`), or nil if the system has no such file.
    package func read(_ entry: Entry, limit: Int) throws(SystemLayoutError) -> [UInt8]? {
        let file: LayoutFile
        do { file = try open(entry, limit: limit) } catch {
            if error.reason == .missing { return nil }
            throw error
        }
        do { return try file.readAll() } catch {
            throw SystemLayoutError(root: root, entry: entry, reason: .readFailed(operation: error.operation, path: file.path, errno: error.errno))
        }
    }

    /// The raw bytes of `kernel-params`: empty when the system has none.
    package func kernelParameters() throws(SystemLayoutError) -> [UInt8] {
        try read(.kernelParameters, limit: Self.kernelParametersLimit) ?? []
    }

    /// Resolves `entry` inside the closure and requires a regular file (seen with `lstat`).
    private func resolve(_ entry: Entry) throws(SystemLayoutError) -> ConfinedPathResolver.Resolved {
        let resolved: ConfinedPathResolver.Resolved
        do { resolved = try resolver.resolve(root.name + "/" + entry.rawValue) } catch {
            let reason: SystemLayoutError.Reason =
                switch error {
                case .missing: .missing
                case .leavesStore(let link, let target): .leavesStore(link: link, target: target)
                case .outsideClosure(let storePath, let link, let target): .outsideClosure(storePath: storePath, link: link, target: target)
                case .tooManyLinks: .tooManyLinks
                case .systemCall(let operation, let path, let code):
                    code == ENAMETOOLONG || code == ELOOP ? .tooManyLinks : .readFailed(operation: operation, path: path, errno: code)
                }
            throw SystemLayoutError(root: root, entry: entry, reason: reason)
        }
        let type = resolved.status.st_mode & S_IFMT
        guard type == S_IFREG else {
            throw SystemLayoutError(root: root, entry: entry, reason: .notRegularFile(kind: Self.kind(type)))
        }
        return resolved
    }

    private static func kind(_ type: mode_t) -> String {
        switch type {
        case S_IFDIR: "a directory"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFIFO: "a FIFO"
        case S_IFSOCK: "a socket"
        default: "not a regular file"
        }
    }
}

/// `open(2)` read-only without following a final symlink and without blocking on a FIFO.
private func openWithoutFollowing(_ path: String) -> Int32 {
    open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
}

extension InitrdAssembler {
    /// The layout reader of `root`, confined to its closure (asked of Nix once, then remembered), in
    /// the store directory the packer reads.
    package func systemLayout(of root: StorePath) async throws -> SystemLayout {
        SystemLayout(root: root, sortedClosure: try await closure(of: root), storeDirectory: packer.storeDirectory)
    }
}
