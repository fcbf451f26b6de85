import Logging
import ServiceLifecycle

/// Builds initrds for closures out of cached per-path archives.
///
/// For a root path: its closure (asked of Nix once, then remembered for the most recently used
/// systems: a store path's closure never changes), the leader and loader, then one archive per path
/// in byte-wise order of their names. Missing archives are packed through the cache; the
/// registrations of all missing paths come from a single `nix-store --dump-db` call. Packing passes
/// run on a ``WorkCoordinator``: run ``services`` (the cache's and the passes') for as long as
/// initrds are assembled.
package actor InitrdAssembler {
    /// Most closures remembered.
    package static let rememberedClosures = 256

    package let store: any NixStore
    package nonisolated let cache: CPIOCache
    package nonisolated let packer: StorePathPacker
    /// Where packing passes report their progress, and systems and failures are noted.
    package nonisolated let activity: ServerActivity
    private let logger: Logger
    private var closures = RecentlyUsed<StorePath, [StorePath]>(capacity: rememberedClosures)
    /// One pass per system at a time, shared by its requesters; a pass goes on when they leave
    /// (what it packs is cached for the next request).
    private let packingPasses = WorkCoordinator<StorePath, Void>(policy: .init(joining: .anyJob, maximumRunning: 16, whenAbandoned: .keepRunning))

    /// The leader and the loader, the same bytes at the head of every initrd (made once, here).
    private let fixedMembers: [Initrd.Member]

    package init(store: any NixStore, cache: CPIOCache, packer: StorePathPacker, logger: Logger, activity: ServerActivity = ServerActivity()) throws {
        self.fixedMembers = [.bytes(try InitrdLayout.makeLeader()), .bytes(try InitrdLayout.makeLoader())]
        self.store = store
        self.cache = cache
        self.packer = packer
        self.logger = logger
        self.activity = activity
    }

    /// What must run while initrds are assembled: the cache and the packing passes.
    package nonisolated var services: [any Service] { [cache, packingPasses] }

    /// The closure of `root`, sorted byte-wise, remembered after the first query.
    package func closure(of root: StorePath) async throws -> [StorePath] {
        if let known = closures.value(root) { return known }
        let paths = try await store.requisites(of: root).sorted()
        closures.insert(root, paths)
        return paths
    }

    /// Whether the closure of `root` is already known (so `root` was valid when first asked).
    package func knowsClosure(of root: StorePath) -> Bool { closures.contains(root) }

    /// The cache key of `path` for this assembler's codec and level.
    package nonisolated func key(_ path: StorePath) -> CacheKey {
        CacheKey(path: path, codec: packer.compressor.name, level: packer.level)
    }

    /// Assembles the initrd of `root`, packing what is missing. The result holds pins: release it.
    ///
    /// Requests for the same system at the same moment (a rack booting) share one packing pass: one
    /// `nix-store --dump-db`, one acquisition per path; the others wait for it and then pin.
    ///
    /// Before it returns (so before any header is sent), every member is checked on disk with one
    /// `stat`: an archive that vanished or changed size (or a removed cache directory) is dropped and
    /// packed again, never sent short under a full length. Archives adopted at start-up are read
    /// against their checksum the first time they are pinned.
    package func initrd(for root: StorePath) async throws -> Initrd {
        let closure = try await closure(of: root)
        let cache = self.cache
        let keys = closure.map(key)
        var vanished = 0
        for _ in 0..<3 {
            let archives = try await pinArchives(root: root, closure: closure, keys: keys)
            let stale = await Self.notOnDisk(archives)
            if stale.isEmpty {
                var members = fixedMembers
                for archive in archives { members.append(.file(path: archive.path, size: archive.size)) }
                return Initrd(root: root, closure: closure, members: members, cache: cache, pinned: keys)
            }
            vanished = stale.count
            logger.warning("cached archives vanished or changed on disk; packing them again", metadata: [
                "root": "\(root.name)", "archives": "\(stale.count)",
            ])
            let staleKeys = Set(stale.map(\.key))
            await cache.discard(stale)
            await cache.release(keys.filter { !staleKeys.contains($0) })
        }
        throw CacheError.keepsVanishing(count: vanished)
    }

    /// The archives whose file is not on disk with its size (one `stat` each, off the actor).
    nonisolated static func notOnDisk(_ archives: [CachedArchive]) async -> [CachedArchive] {
        archives.filter { !$0.isOnDisk }
    }

    /// Pins the archive of every path of `closure`, packing what is missing; on failure, holds no pins.
    private func pinArchives(root: StorePath, closure: [StorePath], keys: [CacheKey]) async throws -> [CachedArchive] {
        let cache = self.cache
        var archives = await cache.pin(keys)
        cache.metrics?.cacheLookedUp(hits: archives.count { $0 != nil }, misses: archives.count { $0 == nil })
        if archives.contains(nil) {
            do {
                switch await packingPasses.run(root, { _ in try await self.packingPass(root: root, closure: closure) }) {
                case .finished(_, .success): break
                case .finished(_, .failure(let error)):
                    // A pass cancelled while this request still waits: the server is stopping.
                    throw error is CancellationError && !Task.isCancelled ? CacheError.stopped : error
                case .stillRunning: throw CancellationError()
                case .refused: throw CacheError.stopped
                }
                // Pin what the pass made. Whatever was evicted meanwhile (a cache smaller than the
                // closure) is packed again here, pinned for this request from the start.
                let missing = keys.indices.filter { archives[$0] == nil }
                let again = await cache.pin(missing.map { keys[$0] })
                for (index, archive) in zip(missing, again) { archives[index] = archive }
                let stillMissing = keys.indices.filter { archives[$0] == nil }
                if !stillMissing.isEmpty {
                    let acquired = try await acquire(stillMissing.map { closure[$0] })
                    for index in stillMissing { archives[index] = acquired[closure[index]] }
                }
            } catch {
                await cache.release(archives.compactMap { $0?.key })
                throw error
            }
        }
        let pinned = archives.compactMap { $0 }
        guard pinned.count == keys.count else {
            // Not reachable: `acquire` returns every path it was given or throws.
            await cache.release(pinned.map(\.key))
            throw CacheError.keepsVanishing(count: keys.count - pinned.count)
        }
        return pinned
    }

    /// Packs every path of `closure` that is not cached yet; holds no pins afterwards.
    private func packingPass(root: StorePath, closure: [StorePath]) async throws {
        let keys = closure.map(key)
        let ready = await cache.pin(keys)
        await cache.release(ready.compactMap { $0?.key })
        let missing = closure.indices.filter { ready[$0] == nil }.map { closure[$0] }
        guard !missing.isEmpty else { return }
        let pass = activity.beginPass(system: root.name)
        let acquired: [StorePath: CachedArchive]
        do {
            // Progress in the log after 2 s, then every 5 s, for as long as the pass runs.
            acquired = try await withThrowingTaskGroup(of: Void.self, returning: [StorePath: CachedArchive].self) { group in
                group.addTask { [activity, logger] in await activity.reportProgress(of: pass, to: logger) }
                defer { group.cancelAll() }
                return try await self.acquire(missing, pass: pass)
            }
        } catch {
            activity.endPass(pass)
            if !(error is CancellationError) { activity.failed("packing \(root.name) failed: \(PlainTextError.from(error).message)") }
            throw error
        }
        await cache.release(acquired.keys.map(key))
        var summary: Logger.Metadata = ["root": "\(root.name)", "paths": "\(closure.count)", "packed": "\(missing.count)"]
        if let ended = activity.endPass(pass) {
            for (name, value) in ended.progress.summaryFields(elapsed: ended.elapsed, cores: packer.workers) { summary[name] = "\(value)" }
        }
        logger.info("packed closure", metadata: summary)
    }

    /// Acquires (packing as needed) and pins the archives of `paths`; on failure, holds no pins.
    /// The registrations of all of them come from one `nix-store --dump-db`. The first failure
    /// cancels the rest of the pass (queued packings nobody else waits for are not started).
    private func acquire(_ paths: [StorePath], pass: UInt64? = nil) async throws -> [StorePath: CachedArchive] {
        let cache = self.cache
        var archives: [StorePath: CachedArchive] = [:]
        do {
            let registrations = try await store.registrations(of: paths)
            let narSize = { (path: StorePath) in NixDatabaseDump.narSize(of: registrations[path] ?? []) ?? 0 }
            if let pass { activity.plan(pass, paths: paths.count, bytes: paths.reduce(0) { $0 + narSize($1) }) }
            let packer = self.packer
            try await withThrowingTaskGroup(of: (StorePath, CachedArchive).self) { group in
                for path in paths {
                    let registration = registrations[path] ?? []
                    let key = self.key(path)
                    // Largest first, so that a big path does not start last and finish alone.
                    let size = narSize(path)
                    group.addTask {
                        // A large path is cut into members, written at the same time on every core.
                        let archive = try await cache.acquire(
                            key, priority: size, estimatedSize: size, planner: packer.planner(path, registration: registration))
                        return (path, archive)
                    }
                }
                while let result = await group.nextResult() {
                    switch result {
                    case .success(let (path, archive)):
                        archives[path] = archive
                        if let pass { activity.finished(pass, bytes: narSize(path)) }
                    case .failure(let error):
                        group.cancelAll()
                        // Collect the pins the others got before giving up.
                        while let rest = await group.nextResult() {
                            if case .success(let (path, archive)) = rest { archives[path] = archive }
                        }
                        throw error
                    }
                }
            }
        } catch {
            await cache.release(archives.values.map(\.key))
            throw error
        }
        return archives
    }
}

extension StorePathPacker {
    /// The cache's planner for `path`: walks it, cuts it into members, one producer per member.
    package func planner(_ path: StorePath, registration: [UInt8]) -> CPIOCache.Planner {
        {
            let plan = try plan(path, registration: registration)
            return plan.members.members.indices.map { index in { sink in sink = try plan.pack(member: index, into: sink) } }
        }
    }
}
