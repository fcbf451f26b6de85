#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging

/// Keeps what a dispatch redirected to alive while machines boot it.
///
/// One pin per store path: a real Nix GC root `GC_ROOT_DIR/pins/pin-NAME`, made by the first dispatch
/// of the path with `nix-store --realise --add-root` and kept alive by every later one, which only
/// moves its expiry forward (the root's mtime records the last use, so a restart keeps it). A pin
/// expires `lifetime` after its last use and is removed by ``sweep()``, at start-up and periodically.
/// At most `maximumPins` live at once; beyond that the least recently used is released (and logged).
/// The bookkeeping is ``PinTable``.
package actor GCRootPins {
    package let directory: String
    package let lifetime: Duration
    private let store: any NixStore
    private let logger: Logger
    private let clock: @Sendable () -> Int64
    private var table: PinTable<StorePath>
    /// Dispatches waiting for a root another dispatch is making.
    private var waiters: [StorePath: [CheckedContinuation<Void, any Error>]] = [:]
    /// Roots written by earlier versions (`pin-TIME-PID-N-NAME`, one per dispatch): swept by their time.
    private var legacy: [(name: String, created: Int64)] = []
    /// Nix calls made to create roots (for tests and the benchmark).
    package private(set) var rootsCreated = 0

    static let prefix = "pin-"

    package init(
        gcRootDirectory: String, lifetime: Duration, maximumPins: Int = 1024,
        store: any NixStore = NixStoreCLI(),
        logger: Logger, clock: @escaping @Sendable () -> Int64 = { Int64(time(nil)) }
    ) throws {
        self.directory = gcRootDirectory + "/pins"
        self.lifetime = lifetime
        self.store = store
        self.logger = logger
        self.clock = clock
        self.table = PinTable(lifetime: lifetime.components.seconds, capacity: max(1, maximumPins))
        try FileSystem.createDirectories(directory)
        let now = clock()
        var stale: [String] = []
        for name in try FileSystem.listDirectory(directory) where name.hasPrefix(Self.prefix) {
            let rest = name.dropFirst(Self.prefix.count)
            if let path = try? StorePath(name: String(rest)) {
                var info = stat()
                guard lstat(directory + "/" + name, &info) == 0 else { continue }
                stale += table.adopt(path, lastUse: Int64(info.st_mtim.tv_sec), now: now).map(Self.fileName)
            } else if let created = Self.legacyCreationTime(rest) {
                legacy.append((name, created))
            }
        }
        for name in stale { unlink(directory + "/" + name) }
    }

    /// The root's file name for `path`.
    static func fileName(_ path: StorePath) -> String { prefix + path.name }

    /// The creation time in a root name of the earlier one-per-dispatch scheme (`TIME-PID-N-NAME`).
    static func legacyCreationTime(_ rest: Substring) -> Int64? {
        let parts = rest.split(separator: "-", maxSplits: 3)
        guard parts.count == 4, let created = Int64(parts[0]), Int(parts[1]) != nil, Int(parts[2]) != nil else { return nil }
        return created
    }

    /// Number of live pins.
    package var count: Int { table.count }

    /// Whether `path` has a live pin (so it is valid and cannot be garbage-collected).
    package func isPinned(_ path: StorePath) -> Bool { table.isPinned(path, now: clock()) }

    /// Pins `path` for the lifetime from now: makes its root if it has none, else moves its expiry.
    package func pin(_ path: StorePath) async throws {
        while true {
            switch table.dispatch(path, now: clock()) {
            case .extended(let persist):
                if persist { touch(path) }
                return
            case .wait:
                // Woken when the other dispatch's root is made; if it failed, try again ourselves.
                do {
                    try await withCheckedThrowingContinuation { waiters[path, default: []].append($0) }
                    return
                } catch is PinCreationAbandoned {
                    continue
                }
            case .create(let evict):
                for old in evict {
                    unlink(directory + "/" + Self.fileName(old))
                    logger.notice("pin released early: --max-pins reached", metadata: ["path": "\(old.name)", "pins": "\(table.count)"])
                }
                do {
                    rootsCreated += 1
                    try await store.realise(path, root: directory + "/" + Self.fileName(path))
                } catch {
                    table.creationEnded(path, succeeded: false, now: clock())
                    for waiter in waiters.removeValue(forKey: path) ?? [] { waiter.resume(throwing: PinCreationAbandoned()) }
                    throw error
                }
                table.creationEnded(path, succeeded: true, now: clock())
                for waiter in waiters.removeValue(forKey: path) ?? [] { waiter.resume() }
                return
            }
        }
    }

    /// Writes the pin's last use to its root's mtime.
    private func touch(_ path: StorePath) {
        let now = clock()
        var times = [timespec(tv_sec: Int(now), tv_nsec: 0), timespec(tv_sec: Int(now), tv_nsec: 0)]
        if utimensat(AT_FDCWD, directory + "/" + Self.fileName(path), &times, AT_SYMLINK_NOFOLLOW) != 0 {
            logger.warning("could not record a pin's last use", metadata: ["path": "\(path.name)", "errno": "\(errno)"])
        }
    }

    /// Removes pins whose lifetime ended. Returns how many it removed.
    @discardableResult
    package func sweep() -> Int {
        let now = clock()
        var removed = 0
        for path in table.sweep(now: now) where unlink(directory + "/" + Self.fileName(path)) == 0 { removed += 1 }
        let seconds = table.lifetime
        legacy.removeAll { pin in
            guard now - pin.created >= seconds else { return false }
            if unlink(directory + "/" + pin.name) == 0 { removed += 1 }
            return true
        }
        if removed > 0 { logger.debug("expired pins removed", metadata: ["count": "\(removed)"]) }
        return removed
    }

    /// Sweeps every `interval` until cancelled.
    package func runSweeper(every interval: Duration) async {
        while !Task.isCancelled {
            sweep()
            try? await Task.sleep(for: interval)
        }
    }
}

/// The dispatch that was making a root failed: a waiting dispatch makes it itself.
struct PinCreationAbandoned: Error {}
