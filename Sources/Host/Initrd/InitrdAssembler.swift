import Logging

/// Builds initrds for closures out of cached per-path archives.
///
/// For a root path: its closure (asked of Nix once, then remembered: a store path's closure never
/// changes), the leader and loader, then one archive per path in byte-wise order of their names.
/// Missing archives are packed through the cache; the registrations of all missing paths come from a
/// single `nix-store --dump-db` call.
public actor InitrdAssembler {
    public let store: any NixStore
    public nonisolated let cache: CPIOCache
    public nonisolated let packer: StorePathPacker
    private let logger: Logger
    private var closures: [StorePath: [StorePath]] = [:]
    private let packingPasses = SingleFlight<StorePath, Void>()

    public init(store: any NixStore, cache: CPIOCache, packer: StorePathPacker, logger: Logger) {
        self.store = store
        self.cache = cache
        self.packer = packer
        self.logger = logger
    }

    /// The closure of `root`, sorted byte-wise, remembered after the first query.
    public func closure(of root: StorePath) async throws -> [StorePath] {
        if let known = closures[root] { return known }
        let paths = try await store.requisites(of: root).sorted()
        closures[root] = paths
        return paths
    }

    /// Whether the closure of `root` is already known (so `root` was valid when first asked).
    public func knowsClosure(of root: StorePath) -> Bool { closures[root] != nil }

    /// The cache key of `path` for this assembler's codec and level.
    public nonisolated func key(_ path: StorePath) -> CacheKey {
        CacheKey(path: path, codec: packer.compressor.name, level: packer.level)
    }

    /// Assembles the initrd of `root`, packing what is missing. The result holds pins: release it.
    ///
    /// Requests for the same system at the same moment (a rack booting) share one packing pass: one
    /// `nix-store --dump-db`, one acquisition per path; the others wait for it and then pin.
    public func initrd(for root: StorePath) async throws -> Initrd {
        let closure = try await closure(of: root)
        let cache = self.cache
        let keys = closure.map(key)
        var sizes = await cache.pinIfReady(keys)
        if sizes.contains(nil) {
            do {
                try await packingPasses.run(root) { try await self.packingPass(root: root, closure: closure) }
                // Pin what the pass made. Whatever was evicted meanwhile (a cache smaller than the
                // closure) is packed again here, pinned for this request from the start.
                let again = await cache.pinIfReady(keys.indices.filter { sizes[$0] == nil }.map { keys[$0] })
                var next = again.makeIterator()
                var stillMissing: [Int] = []
                for index in keys.indices where sizes[index] == nil {
                    sizes[index] = next.next()!
                    if sizes[index] == nil { stillMissing.append(index) }
                }
                if !stillMissing.isEmpty {
                    let acquired = try await acquire(stillMissing.map { closure[$0] })
                    for index in stillMissing { sizes[index] = acquired[closure[index]] }
                }
            } catch {
                await cache.release(keys.indices.filter { sizes[$0] != nil }.map { keys[$0] })
                throw error
            }
        }
        var members: [Initrd.Member] = [.bytes(InitrdLayout.leader), .bytes(InitrdLayout.loader)]
        for (index, key) in keys.enumerated() {
            members.append(.file(path: cache.filePath(key), size: sizes[index]!))
        }
        return Initrd(root: root, closure: closure, members: members) { await cache.release(keys) }
    }

    /// Packs every path of `closure` that is not cached yet; holds no pins afterwards.
    private func packingPass(root: StorePath, closure: [StorePath]) async throws {
        let keys = closure.map(key)
        let ready = await cache.pinIfReady(keys)
        await cache.release(keys.indices.filter { ready[$0] != nil }.map { keys[$0] })
        let missing = closure.indices.filter { ready[$0] == nil }.map { closure[$0] }
        guard !missing.isEmpty else { return }
        let acquired = try await acquire(missing)
        await cache.release(acquired.keys.map(key))
        logger.info("packed closure", metadata: ["root": "\(root.name)", "paths": "\(closure.count)", "packed": "\(missing.count)"])
    }

    /// Acquires (packing as needed) and pins the archives of `paths`; on failure, holds no pins.
    /// The registrations of all of them come from one `nix-store --dump-db`.
    private func acquire(_ paths: [StorePath]) async throws -> [StorePath: UInt64] {
        let cache = self.cache
        var sizes: [StorePath: UInt64] = [:]
        do {
            let registrations = try await store.registrations(of: paths)
            let packer = self.packer
            try await withThrowingTaskGroup(of: (StorePath, UInt64).self) { group in
                for path in paths {
                    let registration = registrations[path] ?? []
                    let key = self.key(path)
                    // Largest first, so that a big path does not start last and finish alone.
                    let narSize = NixDatabaseDump.narSize(of: registration) ?? 0
                    group.addTask {
                        let size = try await cache.acquire(key, priority: narSize) { sink in
                            sink = try packer.pack(path, registration: registration, into: sink)
                        }
                        return (path, size)
                    }
                }
                while let result = await group.nextResult() {
                    switch result {
                    case .success(let (path, size)): sizes[path] = size
                    case .failure(let error):
                        group.cancelAll()
                        // Collect the pins the others got before giving up.
                        while let rest = await group.nextResult() {
                            if case .success(let (path, size)) = rest { sizes[path] = size }
                        }
                        throw error
                    }
                }
            }
        } catch {
            await cache.release(sizes.keys.map(key))
            throw error
        }
        return sizes
    }
}
