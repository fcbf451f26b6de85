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
    public func initrd(for root: StorePath) async throws -> Initrd {
        let closure = try await closure(of: root)
        let cache = self.cache
        var sizes: [StorePath: UInt64] = [:]
        var missing: [StorePath] = []
        for path in closure {
            if let size = await cache.pinIfReady(key(path)) { sizes[path] = size } else { missing.append(path) }
        }
        if !missing.isEmpty {
            do {
                let registrations = try await store.registrations(of: missing)
                let packer = self.packer
                try await withThrowingTaskGroup(of: (StorePath, UInt64).self) { group in
                    for path in missing {
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
            logger.info("packed closure", metadata: ["root": "\(root.name)", "paths": "\(closure.count)", "packed": "\(missing.count)"])
        }
        var members: [Initrd.Member] = [.bytes(InitrdLayout.leader), .bytes(InitrdLayout.loader)]
        for path in closure {
            members.append(.file(path: cache.filePath(key(path)), size: sizes[path]!))
        }
        let keys = closure.map(key)
        return Initrd(root: root, closure: closure, members: members) { await cache.release(keys) }
    }
}
