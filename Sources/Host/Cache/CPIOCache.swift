#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging
import NIOPosix

/// The persistent cache of packed archives, one read-only file per ``CacheKey``.
///
/// Files are written to a temporary name in the same directory, fsynced, made read-only and renamed
/// into place, then the directory is fsynced: a crash leaves either the whole file or a temporary
/// that the next start removes. Each key is packed once however many requesters want it at the same
/// moment; a requester that goes away does not stop a packing that others (or the cache) want.
/// Packings run on a thread pool, at most `jobs` at once. Bookkeeping is ``CacheStateMachine``.
public actor CPIOCache {
    /// Produces an archive into an open file. Runs on a blocking thread.
    public typealias Producer = @Sendable (inout FileDescriptorSink) throws -> Void

    public let directory: String
    private var state: CacheStateMachine<CacheKey, UInt64>
    private var producers: [CacheKey: Producer] = [:]
    private var continuations: [UInt64: CheckedContinuation<UInt64, any Error>] = [:]
    private var nextWaiter: UInt64 = 0
    private let threadPool: NIOThreadPool
    private let logger: Logger
    /// How many archives this process has packed (for logs, tests and benchmarks).
    public private(set) var packedCount = 0

    static let temporaryPrefix = ".nns-tmp-"

    /// Opens (creating if needed) the cache directory and rebuilds the index from the files in it.
    ///
    /// Packings run on `threadPool`, or on a pool of `jobs` threads of the cache's own, so that they
    /// never hold up the threads that read files for responses.
    public init(directory: String, capacity: UInt64, jobs: Int, threadPool: NIOThreadPool? = nil, logger: Logger) throws {
        self.directory = directory
        self.state = CacheStateMachine(capacity: capacity, maximumConcurrentPackings: max(1, jobs))
        if let threadPool {
            self.threadPool = threadPool
        } else {
            let pool = NIOThreadPool(numberOfThreads: max(1, jobs))
            pool.start()
            self.threadPool = pool
        }
        self.logger = logger
        try FileSystem.createDirectories(directory)
        let (found, evicted) = try Self.rebuildIndex(directory: directory, into: &state, logger: logger)
        for key in evicted { Self.remove(directory + "/" + key.fileName) }
        let bytes = state.totalBytes
        logger.info("cpio cache ready", metadata: [
            "directory": "\(directory)", "archives": "\(found - evicted.count)", "bytes": "\(bytes)",
            "capacity": "\(capacity)", "evicted": "\(evicted.count)",
        ])
    }

    /// The file holding `key` (valid while the caller holds a pin).
    public nonisolated func filePath(_ key: CacheKey) -> String { directory + "/" + key.fileName }

    /// Bytes of all archives in the index.
    public var totalBytes: UInt64 { state.totalBytes }
    /// Number of archives in the index.
    public var entryCount: Int { state.count }

    /// Pins `key` if it is on disk already; returns its size, or nil without waiting.
    public func pinIfReady(_ key: CacheKey) -> UInt64? { state.pinIfReady(key) }

    /// ``pinIfReady(_:)`` for many keys in one call.
    public func pinIfReady(_ keys: [CacheKey]) -> [UInt64?] { keys.map { state.pinIfReady($0) } }

    /// Returns the size of the archive for `key`, packing it with `producer` if it is missing, and
    /// pins it until ``release(_:)``. Cancelling the caller abandons only its own wait. When packings
    /// queue, a higher `priority` starts first.
    public func acquire(_ key: CacheKey, priority: UInt64 = 0, producer: @escaping Producer) async throws -> UInt64 {
        if let size = state.pinIfReady(key) { return size }
        nextWaiter += 1
        let waiter = nextWaiter
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<UInt64, any Error>) in
                continuations[waiter] = continuation
                switch state.acquire(key, waiter: waiter, priority: priority) {
                case .ready(let size):
                    continuations[waiter] = nil
                    continuation.resume(returning: size)
                case .wait(let startPacking):
                    if producers[key] == nil { producers[key] = producer }
                    if startPacking { self.startPacking(key) }
                    if Task.isCancelled { cancelWaiter(key, waiter) }
                }
            }
        } onCancel: {
            Task { await self.cancelWaiter(key, waiter) }
        }
    }

    /// Ends a pin taken by ``acquire(_:producer:)`` or ``pinIfReady(_:)``.
    public func release(_ key: CacheKey) {
        let evicted = state.release(key)
        evict(evicted)
    }

    /// Releases many pins at once.
    public func release(_ keys: [CacheKey]) {
        for key in keys { evict(state.release(key)) }
    }

    private func cancelWaiter(_ key: CacheKey, _ waiter: UInt64) {
        guard state.cancel(key, waiter: waiter), let continuation = continuations.removeValue(forKey: waiter) else { return }
        continuation.resume(throwing: CancellationError())
    }

    private func startPacking(_ key: CacheKey) {
        guard let producer = producers[key] else { preconditionFailure("no producer for \(key)") }
        let directory = self.directory
        let pool = threadPool
        let logger = self.logger
        // Unstructured on purpose: the packing belongs to the cache, not to whoever asked first.
        Task {
            let clock = ContinuousClock()
            let started = clock.now
            let result: Result<UInt64, any Error>
            do {
                let size = try await pool.runIfActive {
                    try Self.writeAtomically(directory: directory, name: key.fileName, producer: producer)
                }
                result = .success(size)
                logger.debug("packed", metadata: ["path": "\(key.path.name)", "bytes": "\(size)", "duration": "\(clock.now - started)"])
            } catch {
                result = .failure(error)
                logger.error("packing failed", metadata: ["path": "\(key.path.name)", "error": "\(error)"])
            }
            self.packingEnded(key, result)
        }
    }

    private func packingEnded(_ key: CacheKey, _ result: Result<UInt64, any Error>) {
        producers[key] = nil
        let completion: CacheStateMachine<CacheKey, UInt64>.Completion
        switch result {
        case .success(let size):
            packedCount += 1
            completion = state.packingSucceeded(key, size: size)
            for waiter in completion.waiters { continuations.removeValue(forKey: waiter)?.resume(returning: size) }
        case .failure(let error):
            completion = state.packingFailed(key)
            for waiter in completion.waiters { continuations.removeValue(forKey: waiter)?.resume(throwing: error) }
        }
        for next in completion.start { startPacking(next) }
        evict(completion.evict)
    }

    private func evict(_ keys: [CacheKey]) {
        guard !keys.isEmpty || state.overshoot > 0 else { return }
        for key in keys { Self.remove(filePath(key)) }
        if !keys.isEmpty {
            logger.debug("evicted", metadata: ["archives": "\(keys.count)", "bytes": "\(state.totalBytes)"])
        }
        if state.overshoot > 0 {
            logger.notice("cpio cache over its limit while initrds in flight pin it", metadata: [
                "bytes": "\(state.totalBytes)", "capacity": "\(state.capacity)", "overshoot": "\(state.overshoot)",
            ])
        }
    }

    // MARK: - Disk

    /// Writes one archive under a temporary name and renames it into place. Returns its size.
    static func writeAtomically(directory: String, name: String, producer: Producer) throws -> UInt64 {
        let temporary = directory + "/" + temporaryPrefix + name + "." + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemError(operation: "create \(temporary)", errno: errno) }
        var committed = false
        defer {
            close(fd)
            if !committed { unlink(temporary) }
        }
        var sink = FileDescriptorSink(descriptor: fd)
        try producer(&sink)
        guard fsync(fd) == 0 else { throw SystemError(operation: "fsync \(temporary)", errno: errno) }
        guard fchmod(fd, 0o444) == 0 else { throw SystemError(operation: "chmod \(temporary)", errno: errno) }
        let final = directory + "/" + name
        guard rename(temporary, final) == 0 else { throw SystemError(operation: "rename \(temporary)", errno: errno) }
        committed = true
        try FileSystem.syncDirectory(directory)
        return sink.bytesWritten
    }

    static func remove(_ path: String) {
        if unlink(path) != 0 && errno != ENOENT {
            // Nothing else to do: the index already forgot it; the next start sees the file again.
            _ = errno
        }
    }

    /// Scans the directory: removes temporaries, adopts our archives oldest first, leaves other files alone.
    static func rebuildIndex(
        directory: String, into state: inout CacheStateMachine<CacheKey, UInt64>, logger: Logger
    ) throws -> (found: Int, evicted: [CacheKey]) {
        var found: [(key: CacheKey, size: UInt64, mtime: Int)] = []
        var removed = 0
        for name in try FileSystem.listDirectory(directory) {
            let path = directory + "/" + name
            if name.hasPrefix(temporaryPrefix) {
                unlink(path)
                removed += 1
                continue
            }
            guard let key = CacheKey(fileName: name), key.formatVersion == InitrdLayout.formatVersion else { continue }
            var info = stat()
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue }
            found.append((key, UInt64(info.st_size), info.st_mtim.tv_sec))
        }
        if removed > 0 { logger.notice("removed half-written archives", metadata: ["count": "\(removed)"]) }
        found.sort { ($0.mtime, $0.key.fileName) < ($1.mtime, $1.key.fileName) }
        var evicted: [CacheKey] = []
        for item in found { evicted += state.adopt(item.key, size: item.size) }
        return (found.count, evicted)
    }
}
