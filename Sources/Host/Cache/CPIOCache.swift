#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The persistent cache of packed archives, one read-only file per ``CacheKey``.
///
/// Files are written to a temporary name in the same directory, fsynced, made read-only and renamed
/// into place under a name that carries their size and CRC-32 (computed while writing), then the
/// directory is fsynced: a crash leaves either the whole file or a temporary that the next start
/// removes. Bookkeeping (entries, pins, LRU, verification) is ``CacheStateMachine``.
///
/// Packings and verifications run on two ``WorkCoordinator``s, which belong to the cache's service
/// (``run()``), as does the thread pool their blocking work runs on: each key is packed once however
/// many requesters want it at the same moment, at most `jobs` at once, the largest first; a
/// requester that goes away does not stop a packing that others (or the cache) want, and queued
/// packings nobody waits for any more start after those somebody waits for. When the service stops,
/// running packings are cancelled (the producer stops at its next write, the temporary is removed)
/// and the pool is shut down.
///
/// Trust: archives this process wrote are served as they are. Archives found at start-up are
/// adopted only if their size matches their name, and are read once against their CRC-32 the first
/// time something pins them (``pin(_:)-([CacheKey])`` or ``acquire(_:priority:estimatedSize:producer:)``), before
/// any byte of them is sent; one that fails is removed and packed again. A full disk evicts the least
/// recently used unpinned archives and retries once, then fails with ``CacheError/outOfSpace``, and
/// the packings queued at that moment are not started (they fail the same way).
package actor CPIOCache: Service {
    /// Produces an archive (or one part of it) into an open file. Runs on a blocking thread.
    package typealias Producer = @Sendable (inout PackingSink) throws -> Void
    /// Lists the parts of an archive, each written by its own producer: the archive is their outputs
    /// joined in order. Parts are written at the same time on the cache's threads (one large store
    /// path on every core). Runs on a blocking thread.
    package typealias Planner = @Sendable () throws -> [Producer]

    package let directory: String
    private var state: CacheStateMachine<CacheKey>
    /// The checksum of every entry on disk (ready or being verified).
    private var checksums: [CacheKey: ArchiveChecksum] = [:]
    /// Grows each time the disk was found full: packings queued before that are not started.
    private var outOfSpaceGeneration: UInt64 = 0
    private let packings: WorkCoordinator<CacheKey, ArchiveChecksum>
    private let verifications: WorkCoordinator<CacheKey, Void>
    private let threadPool: NIOThreadPool
    /// Pins given back without waiting (``releaseSoon(_:)``), applied at the next operation.
    private let releasedSoon = Mutex<[CacheKey]>([])
    private let logger: Logger
    /// How many archives this process has packed (for logs, tests and benchmarks).
    package private(set) var packedCount = 0
    /// How many adopted archives were read and matched their checksum, and their bytes.
    package private(set) var verifiedCount = 0
    package private(set) var verifiedBytes: UInt64 = 0
    /// How many entries were dropped because their file vanished, changed size or failed verification.
    package private(set) var droppedCount = 0
    /// The most bytes of archives kept (`--max-cpio-cache-bytes`).
    package nonisolated let capacity: UInt64
    /// Where packings, evictions and verifications are counted.
    package nonisolated let metrics: ServerMetrics?

    static let temporaryPrefix = ".nns-tmp-"

    /// Opens (creating if needed) the cache directory, checks that it is writable, and rebuilds the
    /// index from the files in it.
    ///
    /// Packings run on a pool of `jobs` threads of the cache's own (started and shut down by
    /// ``run()``), so that they never hold up the threads that read files for responses.
    ///
    /// - Throws: ``CacheError/notWritable(directory:reason:)`` if the directory cannot be created or
    ///   written: the server refuses to start rather than fail every boot that needs a packing.
    package init(directory: String, capacity: UInt64, jobs: Int, logger: Logger, metrics: ServerMetrics? = nil) throws {
        self.directory = directory
        self.capacity = capacity
        self.metrics = metrics
        self.state = CacheStateMachine(capacity: capacity)
        self.logger = logger
        let jobs = max(1, jobs)
        self.packings = WorkCoordinator(policy: .init(joining: .anyJob, maximumRunning: jobs, whenAbandoned: .keepRunning))
        self.verifications = WorkCoordinator(policy: .init(joining: .anyJob, maximumRunning: jobs, whenAbandoned: .keepRunning))
        self.threadPool = NIOThreadPool(numberOfThreads: jobs)
        do {
            try FileSystem.createDirectories(directory)
        } catch let error as SystemError where [EACCES, EPERM, EROFS].contains(error.errno) {
            throw CacheError.notWritable(directory: directory, reason: String(cString: strerror(error.errno)))
        }
        try Self.requireWritable(directory)
        let scan = try Self.rebuildIndex(directory: directory, into: &state, logger: logger)
        checksums = scan.adopted
        for key in scan.evicted {
            if let checksum = checksums.removeValue(forKey: key) { Self.remove(directory + "/" + key.fileName(checksum: checksum)) }
        }
        let bytes = state.totalBytes, count = state.count
        logger.info("cpio cache ready", metadata: [
            "directory": "\(directory)", "archives": "\(count)", "bytes": "\(bytes)",
            "capacity": "\(capacity)", "evicted": "\(scan.evicted.count)", "removed": "\(scan.removed)",
        ])
    }

    /// The cache's service: starts the thread pool, runs packings and verifications until shutdown
    /// (then cancels those still running), and shuts the pool down.
    package nonisolated func run() async throws {
        threadPool.start()
        await withDiscardingTaskGroup { group in
            group.addTask { try? await self.packings.run() }
            group.addTask { try? await self.verifications.run() }
        }
        try await threadPool.shutdownGracefully()
    }

    /// Packings running now, and waiting to start.
    package nonisolated var packingLoad: (running: Int, queued: Int) { packings.load }

    /// The file holding `key` with `checksum` (valid while the caller holds a pin).
    package nonisolated func filePath(_ key: CacheKey, _ checksum: ArchiveChecksum) -> String {
        directory + "/" + key.fileName(checksum: checksum)
    }

    private func archive(_ key: CacheKey, size: UInt64) -> CachedArchive {
        // The state machine and `checksums` change together; a missing CRC only makes a name that is
        // not on disk, which the initrd's check before sending finds and repairs.
        let checksum = ArchiveChecksum(size: size, crc32: checksums[key]?.crc32 ?? 0)
        return CachedArchive(key: key, checksum: checksum, path: filePath(key, checksum))
    }

    /// Number of archives on disk, after dropping entries whose file vanished or changed size (one
    /// `stat` each, and the directory recreated if it is gone).
    package var entryCount: Int {
        applyReleasedSoon()
        audit()
        return state.count
    }

    /// Archives and their bytes as the index has them now, without checking the disk (for metrics).
    package var indexedUsage: (archives: Int, bytes: UInt64) {
        applyReleasedSoon()
        return (state.count, state.totalBytes)
    }

    /// Bytes of the archives on disk, checked like ``entryCount``.
    package var totalBytes: UInt64 {
        applyReleasedSoon()
        audit()
        return state.totalBytes
    }

    /// Pins each key whose archive is on disk and proven, verifying adopted archives first (a read
    /// each, once per process). Nil for keys that are missing, being packed, or failed verification.
    /// Waits for nothing else.
    package func pin(_ keys: [CacheKey]) async -> [CachedArchive?] {
        applyReleasedSoon()
        let unproven = Array(Set(keys.filter { state.needsVerification($0) }))
        if !unproven.isEmpty {
            await withDiscardingTaskGroup { group in
                for key in unproven { group.addTask { _ = await self.verify(key) } }
            }
        }
        return keys.map { key in state.pinIfReady(key).map { archive(key, size: $0) } }
    }

    /// ``pin(_:)-([CacheKey])`` for one key.
    package func pin(_ key: CacheKey) async -> CachedArchive? { await pin([key])[0] }

    /// Returns the archive for `key`, packing it with `producer` if it is missing (or failed its
    /// verification), and pins it until ``release(_:)-(CacheKey)``. Cancelling the caller abandons only its own
    /// wait. When packings queue, a higher `priority` starts first. `estimatedSize` (the uncompressed
    /// size) is the room a retry after a full disk makes.
    package func acquire(
        _ key: CacheKey, priority: UInt64 = 0, estimatedSize: UInt64 = 0, producer: @escaping Producer
    ) async throws -> CachedArchive {
        try await acquire(key, priority: priority, estimatedSize: estimatedSize, planner: { [producer] })
    }

    /// ``acquire(_:priority:estimatedSize:producer:)`` for an archive made of parts that are written
    /// at the same time and joined in order.
    package func acquire(
        _ key: CacheKey, priority: UInt64 = 0, estimatedSize: UInt64 = 0, planner: @escaping Planner
    ) async throws -> CachedArchive {
        applyReleasedSoon()
        while true {
            try Task.checkCancellation()
            switch state.acquire(key) {
            case .ready(let size):
                return archive(key, size: size)
            case .verify:
                guard await verify(key) else { throw CacheError.stopped }
            case .pack:
                let generation = outOfSpaceGeneration
                let outcome = await packings.run(key, priority: priority) { _ in
                    try await self.pack(key, generation: generation, estimatedSize: estimatedSize, planner: planner)
                }
                var succeeded = false
                if case .finished(_, .success) = outcome { succeeded = true }
                let settled = state.settle(key, pin: succeeded)
                evict(settled.evict)
                switch outcome {
                case .finished(_, .success):
                    // Nil only if its file vanished meanwhile (an audit dropped it): pack again.
                    if let size = settled.size { return archive(key, size: size) }
                case .finished(_, .failure(let error)):
                    // A packing cancelled while its requester still waits: the cache is stopping.
                    throw error is CancellationError && !Task.isCancelled ? CacheError.stopped : error
                case .stillRunning:
                    throw CancellationError()
                case .refused:
                    throw CacheError.stopped
                }
            }
        }
    }

    /// Ends a pin taken by ``acquire(_:priority:estimatedSize:producer:)`` or ``pin(_:)-(CacheKey)``.
    package func release(_ key: CacheKey) {
        applyReleasedSoon()
        evict(state.release(key))
    }

    /// Releases many pins at once.
    package func release(_ keys: [CacheKey]) {
        applyReleasedSoon()
        for key in keys { evict(state.release(key)) }
    }

    /// Releases pins without waiting, from anywhere (an initrd's `deinit`): they take effect at the
    /// cache's next operation.
    package nonisolated func releaseSoon(_ keys: [CacheKey]) {
        releasedSoon.withLock { $0 += keys }
    }

    private func applyReleasedSoon() {
        let keys = releasedSoon.withLock { pending in
            defer { pending = [] }
            return pending
        }
        for key in keys { evict(state.release(key)) }
    }

    /// For an initrd that found these pinned archives missing or changed on disk before it sent
    /// anything: releases its pins on them and drops each entry whose file is still wrong (someone
    /// may have packed it again meanwhile). A vanished directory is recreated and every entry checked.
    package func discard(_ archives: [CachedArchive]) {
        applyReleasedSoon()
        for archive in archives { evict(state.release(archive.key)) }
        if recreateDirectoryIfGone() {
            audit()
        } else {
            for archive in archives { dropIfNotOnDisk(archive.key) }
        }
    }

    /// Drops every entry whose file vanished or changed size (one `stat` each); recreates the
    /// directory if it is gone.
    package func audit() {
        _ = recreateDirectoryIfGone()
        for entry in state.entriesOnDisk { dropIfNotOnDisk(entry.key) }
    }

    private func dropIfNotOnDisk(_ key: CacheKey) {
        guard !state.isVerifying(key), let entry = state.entry(key) else { return }
        let archive = archive(key, size: entry.size)
        guard !archive.isOnDisk, state.drop(key) else { return }
        checksums[key] = nil
        Self.remove(archive.path)
        droppedCount += 1
        metrics?.vanished()
        logger.warning("cached archive vanished or changed size; dropped, it will be packed again", metadata: [
            "path": "\(key.path.name)", "file": "\(archive.path)",
        ])
    }

    /// Recreates the cache directory if it is gone. Returns whether it was.
    private func recreateDirectoryIfGone() -> Bool {
        var info = stat()
        if stat(directory, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR { return false }
        logger.warning("the cpio cache directory vanished; recreating it, its archives will be packed again", metadata: ["directory": "\(directory)"])
        do { try FileSystem.createDirectories(directory) } catch {
            logger.error("cannot recreate the cpio cache directory", metadata: ["directory": "\(directory)", "error": "\(error)"])
        }
        return true
    }

    // MARK: - Verification

    /// Verifies `key` if it is an unverified adopted entry (joining a verification in flight).
    /// False if the cache is shutting down.
    private func verify(_ key: CacheKey) async -> Bool {
        switch await verifications.run(key, { _ in await self.runVerification(key) }) {
        case .finished: true
        case .stillRunning: !Task.isCancelled
        case .refused: false
        }
    }

    private func runVerification(_ key: CacheKey) async {
        guard let size = state.beginVerification(key) else { return }
        let expected = archive(key, size: size)
        let pool = threadPool
        let clock = ContinuousClock()
        let started = clock.now
        let found: Result<ArchiveChecksum, any Error>
        do { found = .success(try await pool.runIfActive { try ArchiveChecksum.ofFile(at: expected.path) }) } catch {
            found = .failure(error)
        }
        if Task.isCancelled {
            // A shutdown, not a verdict on the file.
            state.verificationAbandoned(key)
            return
        }
        verificationEnded(expected, found, duration: clock.now - started)
    }

    private func verificationEnded(_ expected: CachedArchive, _ found: Result<ArchiveChecksum, any Error>, duration: Duration) {
        let key = expected.key
        if case .success(let checksum) = found, checksum == expected.checksum {
            state.verificationSucceeded(key)
            verifiedCount += 1
            verifiedBytes += checksum.size
            metrics?.verified(matched: true)
            logger.trace("verified", metadata: ["path": "\(key.path.name)", "bytes": "\(checksum.size)", "duration": "\(duration)"])
            return
        }
        state.verificationFailed(key)
        checksums[key] = nil
        Self.remove(expected.path)
        droppedCount += 1
        metrics?.verified(matched: false)
        let what: String
        switch found {
        case .success(let checksum): what = "read \(checksum), expected \(expected.checksum)"
        case .failure(let error): what = "\(error)"
        }
        logger.warning("cached archive failed verification; removed, it will be packed again", metadata: [
            "path": "\(key.path.name)", "file": "\(expected.path)", "found": "\(what)",
        ])
    }

    // MARK: - Packing

    /// The work of one packing job: packs `key`, retrying once after making room if the disk is
    /// full. A job queued before the disk was found full is not started.
    private func pack(_ key: CacheKey, generation: UInt64, estimatedSize: UInt64, planner: @escaping Planner) async throws -> ArchiveChecksum {
        guard generation == outOfSpaceGeneration else {
            metrics?.packingFailed(codec: key.codec, outOfSpace: true)
            throw CacheError.outOfSpace
        }
        let clock = ContinuousClock()
        let started = clock.now
        var result = await Self.pack(key, directory: directory, pool: threadPool, planner: planner)
        if case .failure(let failure as PackingOutOfSpace) = result {
            if makeRoom(for: key, estimate: estimatedSize, after: failure) {
                result = await Self.pack(key, directory: directory, pool: threadPool, planner: planner)
            }
            if case .failure(let again as PackingOutOfSpace) = result {
                logger.error("out of space while packing; giving up", metadata: [
                    "path": "\(key.path.name)", "directory": "\(directory)", "error": "\(again)",
                ])
                outOfSpaceGeneration += 1
                result = .failure(CacheError.outOfSpace)
            }
        }
        switch result {
        case .success(let checksum):
            logger.debug("packed", metadata: ["path": "\(key.path.name)", "bytes": "\(checksum.size)", "duration": "\(clock.now - started)"])
            packedCount += 1
            metrics?.archivePacked(codec: key.codec, duration: clock.now - started, inputBytes: estimatedSize, outputBytes: checksum.size)
            checksums[key] = checksum
            evict(state.packingSucceeded(key, size: checksum.size))
            return checksum
        case .failure(let error):
            switch error {
            case CacheError.outOfSpace: metrics?.packingFailed(codec: key.codec, outOfSpace: true)
            case is CancellationError: logger.notice("packing cancelled (shutting down); its temporary is removed", metadata: ["path": "\(key.path.name)"])
            default:
                metrics?.packingFailed(codec: key.codec, outOfSpace: false)
                logger.error("packing failed", metadata: ["path": "\(key.path.name)", "error": "\(error)"])
            }
            throw error
        }
    }

    /// One attempt at writing `key`'s archive on the thread pool; cancelling the caller stops the
    /// producers at their next write (and the temporaries are removed before this returns).
    private static func pack(
        _ key: CacheKey, directory: String, pool: NIOThreadPool, planner: @escaping Planner
    ) async -> Result<ArchiveChecksum, any Error> {
        let cancellation = PackingCancellation()
        do {
            return .success(try await withTaskCancellationHandler {
                // One hand-off for the common archive of one part: planned and written in one go.
                let planned = try await pool.runIfActive { () throws -> PlannedPacking in
                    let parts = try planner()
                    guard parts.count == 1, let producer = parts.first else { return .parts(parts) }
                    return .written(try writeAtomically(directory: directory, key: key, cancellation: cancellation, producer: producer))
                }
                switch planned {
                case .written(let checksum):
                    return checksum
                case .parts(let parts):
                    let written = try await writeParts(parts, directory: directory, key: key, cancellation: cancellation, pool: pool)
                    return try await pool.runIfActive {
                        try joinAtomically(written, directory: directory, key: key, cancellation: cancellation)
                    }
                }
            } onCancel: {
                cancellation.cancel()
            })
        } catch {
            return .failure(error)
        }
    }

    /// Writes each part to a temporary of its own, all at once on the pool (which runs as many as it
    /// has threads). The first failure stops the others; then every temporary is removed and the
    /// failure thrown (a full disk before a cancellation it caused).
    private static func writeParts(
        _ parts: [Producer], directory: String, key: CacheKey, cancellation: PackingCancellation, pool: NIOThreadPool
    ) async throws -> [WrittenPart] {
        var written: [WrittenPart?] = Array(repeating: nil, count: parts.count)
        var failure: (any Error)?
        await withTaskGroup(of: (Int, Result<WrittenPart, any Error>).self) { group in
            for (index, producer) in parts.enumerated() {
                group.addTask {
                    do {
                        return (index, .success(try await pool.runIfActive {
                            try writePart(index, of: key, directory: directory, cancellation: cancellation, producer: producer)
                        }))
                    } catch {
                        return (index, .failure(error))
                    }
                }
            }
            for await (index, result) in group {
                switch result {
                case .success(let part): written[index] = part
                case .failure(let error):
                    cancellation.cancel()
                    if failure == nil || failure is CancellationError { failure = error }
                }
            }
        }
        let parts = written.compactMap { $0 }
        if let failure {
            for part in parts { remove(part.path) }
            throw failure
        }
        return parts
    }

    /// After a packing of `key` ran out of space: evicts least recently used archives that no initrd
    /// pins until the free space reaches what the archive may need (its uncompressed size, or twice
    /// what the failed attempt wrote). Returns whether a retry is worth it; evicts nothing if even
    /// evicting every unpinned archive could not make the room.
    private func makeRoom(for key: CacheKey, estimate: UInt64, after failure: PackingOutOfSpace) -> Bool {
        let needed = estimate > 0 ? estimate + (64 << 10) : 2 * failure.written + (1 << 20)
        let free = Self.availableBytes(directory) ?? 0
        let short = needed > free ? needed - free : 0
        guard short > 0 else {
            logger.notice("out of space while packing, with room now; retrying once", metadata: ["path": "\(key.path.name)"])
            return true
        }
        guard short <= state.unpinnedBytes else {
            logger.warning("out of space while packing; evicting every unused archive would not make room", metadata: [
                "path": "\(key.path.name)", "needed": "\(needed)", "free": "\(free)", "evictable": "\(state.unpinnedBytes)",
            ])
            return false
        }
        let evicted = state.evictUnpinned(atLeast: short)
        evict(evicted)
        logger.notice("out of space while packing; evicted least recently used archives, retrying once", metadata: [
            "path": "\(key.path.name)", "evicted": "\(evicted.count)", "needed": "\(needed)", "free": "\(free)",
        ])
        return !evicted.isEmpty
    }

    private func evict(_ keys: [CacheKey]) {
        guard !keys.isEmpty || state.overshoot > 0 else { return }
        for key in keys {
            if let checksum = checksums.removeValue(forKey: key) { Self.remove(filePath(key, checksum)) }
        }
        metrics?.evicted(keys.count)
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

    /// Writes one archive under a temporary name and renames it into place under its checksummed
    /// name. Returns its size and CRC-32. A full disk throws ``PackingOutOfSpace``; the temporary is
    /// removed whatever fails.
    static func writeAtomically(directory: String, key: CacheKey, cancellation: PackingCancellation, producer: Producer) throws -> ArchiveChecksum {
        try commitAtomically(directory: directory, key: key) { fd in
            var sink = PackingSink(file: FileDescriptorSink(descriptor: fd), cancellation: cancellation)
            try producer(&sink)
            return sink.file.checksum
        }
    }

    /// Joins parts written by ``writePart(_:of:directory:cancellation:producer:)``, in order, into one
    /// archive (copied inside the kernel, checksums combined), committed like
    /// ``writeAtomically(directory:key:cancellation:producer:)``. The parts are removed whatever happens.
    static func joinAtomically(_ parts: [WrittenPart], directory: String, key: CacheKey, cancellation: PackingCancellation) throws -> ArchiveChecksum {
        defer { for part in parts { remove(part.path) } }
        return try commitAtomically(directory: directory, key: key) { fd in
            var joined = ArchiveChecksum(size: 0, crc32: 0)
            for part in parts {
                if cancellation.isCancelled { throw CancellationError() }
                try FileCopy.append(part.path, to: fd, bytes: part.checksum.size)
                joined = joined.followed(by: part.checksum)
            }
            return joined
        }
    }

    /// Writes part `index` of `key`'s archive to a temporary of its own (removed if anything fails).
    static func writePart(_ index: Int, of key: CacheKey, directory: String, cancellation: PackingCancellation, producer: Producer) throws -> WrittenPart {
        let (path, fd) = try createTemporary(directory: directory, name: key.fileName + ".part\(index)")
        var kept = false
        defer {
            close(fd)
            if !kept { unlink(path) }
        }
        do {
            var sink = PackingSink(file: FileDescriptorSink(descriptor: fd), cancellation: cancellation)
            try producer(&sink)
            kept = true
            return WrittenPart(path: path, checksum: sink.file.checksum)
        } catch let error as SystemError where isOutOfSpace(error) {
            throw PackingOutOfSpace(written: writtenBytes(fd), underlying: error)
        }
    }

    /// What the first step of a packing did: wrote an archive of one part, or planned several.
    enum PlannedPacking: Sendable {
        case written(ArchiveChecksum)
        case parts([Producer])
    }

    /// One part of an archive, written to a temporary and not yet joined.
    struct WrittenPart: Sendable {
        var path: String
        var checksum: ArchiveChecksum
    }

    /// Creates an empty temporary for `name` in the cache directory (recreating a directory removed
    /// under the running server).
    private static func createTemporary(directory: String, name: String) throws -> (path: String, descriptor: Int32) {
        let temporary = directory + "/" + temporaryPrefix + name + "." + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        var fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd < 0 && errno == ENOENT {
            try FileSystem.createDirectories(directory)
            fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        }
        guard fd >= 0 else {
            let error = SystemError(operation: "create \(temporary)", errno: errno)
            if isOutOfSpace(error) { throw PackingOutOfSpace(written: 0, underlying: error) }
            throw error
        }
        return (temporary, fd)
    }

    /// Fills a new temporary with `fill`, fsyncs it, makes it read-only and renames it to `key`'s
    /// name with the checksum `fill` returned, then fsyncs the directory.
    private static func commitAtomically(directory: String, key: CacheKey, fill: (Int32) throws -> ArchiveChecksum) throws -> ArchiveChecksum {
        let (temporary, fd) = try createTemporary(directory: directory, name: key.fileName)
        var committed = false
        defer {
            close(fd)
            if !committed { unlink(temporary) }
        }
        do {
            let checksum = try fill(fd)
            guard fsync(fd) == 0 else { throw SystemError(operation: "fsync \(temporary)", errno: errno) }
            guard fchmod(fd, 0o444) == 0 else { throw SystemError(operation: "chmod \(temporary)", errno: errno) }
            let final = directory + "/" + key.fileName(checksum: checksum)
            guard rename(temporary, final) == 0 else { throw SystemError(operation: "rename \(temporary)", errno: errno) }
            committed = true
            try FileSystem.syncDirectory(directory)
            return checksum
        } catch let error as SystemError where isOutOfSpace(error) {
            throw PackingOutOfSpace(written: writtenBytes(fd), underlying: error)
        }
    }

    /// The size of the open file `fd` (what a failed write left), or 0.
    private static func writtenBytes(_ fd: Int32) -> UInt64 {
        var info = stat()
        return fstat(fd, &info) == 0 ? UInt64(info.st_size) : 0
    }

    static func isOutOfSpace(_ error: SystemError) -> Bool { error.errno == ENOSPC || error.errno == EDQUOT }

    /// Bytes an unprivileged writer may still use on the file system of `path`.
    static func availableBytes(_ path: String) -> UInt64? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        return UInt64(info.f_bavail) * UInt64(info.f_frsize)
    }

    /// Creates and removes a probe file: a read-only mount or a directory the server may not write is
    /// found at start-up, not by the first boot. A full disk is not an error here (it gets 507 later).
    static func requireWritable(_ directory: String) throws {
        let probe = directory + "/" + temporaryPrefix + "probe." + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let code = errno
            if code == ENOSPC || code == EDQUOT { return }
            throw CacheError.notWritable(directory: directory, reason: String(cString: strerror(code)))
        }
        close(fd)
        unlink(probe)
    }

    static func remove(_ path: String) {
        // Nothing else to do if this fails: the index already forgot it; the next start checks it again.
        _ = unlink(path)
    }

    /// What a scan of the directory at start-up found.
    struct Scan {
        var adopted: [CacheKey: ArchiveChecksum] = [:]
        var evicted: [CacheKey] = []
        /// Temporaries and rejected archives removed.
        var removed = 0
    }

    /// Scans the directory: removes temporaries, removes archives of our format whose name carries
    /// no checksum or whose size differs from it (and all but the newest of one key), adopts the
    /// rest unverified, oldest first, removes archives of earlier formats, and leaves other files alone.
    static func rebuildIndex(directory: String, into state: inout CacheStateMachine<CacheKey>, logger: Logger) throws -> Scan {
        var found: [(name: String, key: CacheKey, checksum: ArchiveChecksum, mtime: Int)] = []
        var scan = Scan()
        var temporaries = 0, outdated = 0
        for name in try FileSystem.listDirectory(directory) {
            let path = directory + "/" + name
            if name.hasPrefix(temporaryPrefix) {
                unlink(path)
                temporaries += 1
                continue
            }
            // Archives of an earlier format can never be served again: their room is freed. Those
            // of a later one (a newer server sharing the directory) are left alone.
            if let key = CacheKey.parse(archiveFileName: name)?.key ?? CacheKey(fileName: name), key.formatVersion < InitrdLayout.formatVersion {
                unlink(path)
                outdated += 1
                continue
            }
            if let (key, checksum) = CacheKey.parse(archiveFileName: name) {
                guard key.formatVersion == InitrdLayout.formatVersion else { continue }
                var info = stat()
                guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue }
                guard UInt64(info.st_size) == checksum.size else {
                    logger.warning("cached archive has the wrong size; removed", metadata: [
                        "file": "\(path)", "bytes": "\(info.st_size)", "expected": "\(checksum.size)",
                    ])
                    unlink(path)
                    scan.removed += 1
                    continue
                }
                found.append((name, key, checksum, info.st_mtim.tv_sec))
            } else if let key = CacheKey(fileName: name), key.formatVersion == InitrdLayout.formatVersion {
                logger.notice("cached archive has no checksum in its name; removed", metadata: ["file": "\(path)"])
                unlink(path)
                scan.removed += 1
            }
        }
        if temporaries > 0 { logger.notice("removed half-written archives", metadata: ["count": "\(temporaries)"]) }
        if outdated > 0 { logger.notice("removed archives of an earlier format", metadata: ["count": "\(outdated)"]) }
        scan.removed += temporaries + outdated
        found.sort { ($0.mtime, $0.name) < ($1.mtime, $1.name) }
        var newest: [CacheKey: Int] = [:]
        for (index, item) in found.enumerated() {
            if let older = newest[item.key] {
                unlink(directory + "/" + found[older].name)
                scan.removed += 1
            }
            newest[item.key] = index
        }
        for (index, item) in found.enumerated() where newest[item.key] == index {
            scan.adopted[item.key] = item.checksum
            scan.evicted += state.adopt(item.key, size: item.checksum.size)
        }
        return scan
    }
}
