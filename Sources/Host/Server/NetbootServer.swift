#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import ArgumentParser
import CoreMetrics
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// Puts the host together from options and registered modules: the cache, the assembler, the routes.
package struct NetbootServer: Sendable {
    package let options: ServerOptions
    package let registry: ModuleRegistry
    package let store: any NixStore
    package let assembler: InitrdAssembler
    package let pins: GCRootPins
    /// Packs a system's initrd ahead of its request, as `--pack-ahead` says (a service of the application).
    package let packAhead: PackAheadService
    /// `--realise-missing`: fetches what `/boot/NAME/…` asks for and the store lacks (nil: 404).
    package let realiser: MissingPathRealiser?
    /// `--trusted-proxy`: whose `X-Forwarded-For` names the client.
    package let trustedProxies: TrustedProxies
    /// The connections with a request in flight, closed when a shutdown's grace is over.
    package let connections = InFlightConnections()
    /// What `/metrics` answers: counted by the routes, the cache and (through their context) the sources.
    package let metrics: ServerMetrics
    package let logger: Logger

    /// Validates the options against the registry and opens the cache. `storeDirectory` (where store
    /// paths are read) is Nix's unless a test stands in for the store. `metrics` should be the one
    /// the sources' context records into (see ``sourceContext(options:store:logger:metrics:)``).
    package init(
        options: ServerOptions, registry: ModuleRegistry, store: any NixStore = NixStoreCLI(), logger: Logger,
        storeDirectory: String = StorePath.storeDirectory, metrics: ServerMetrics = ServerMetrics()
    ) throws {
        guard let compressor = registry.compressor(named: options.compression) else {
            throw ValidationError("--compression takes one of \(registry.compressorNames.joined(separator: ", ")), not '\(options.compression)'")
        }
        let level: Int
        do { level = try compressor.validatedLevel(options.compressionLevel) } catch { throw ValidationError("--compression-level: \(error)") }
        let jobs = options.jobs ?? System.coreCount
        guard jobs >= 1 else { throw ValidationError("--jobs must be at least 1") }
        _ = try options.listenAddress()
        try FileSystem.createDirectories(options.stateDir)
        let cache = try CPIOCache(
            directory: options.directory(options.cpioCacheDir, "cpio-cache"), capacity: options.maxCpioCacheBytes,
            jobs: jobs, logger: logger, metrics: metrics)
        let gcRoots = options.directory(options.gcRootDir, "gc-roots")
        try FileSystem.createDirectories(gcRoots)
        guard options.pinLifetime >= 0 else { throw ValidationError("--pin-lifetime must not be negative") }
        guard options.maxPins >= 1 else { throw ValidationError("--max-pins must be at least 1") }
        guard options.headerTimeout > 0, options.headerTimeout <= 3600 else { throw ValidationError("--header-timeout takes seconds, more than 0 and at most 3600") }
        guard options.idleTimeout > 0, options.idleTimeout <= 3600 else { throw ValidationError("--idle-timeout takes seconds, more than 0 and at most 3600") }
        guard (options.maxConnections ?? 1) >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        guard (1024...(1 << 20)).contains(options.maxHeaderBytes) else { throw ValidationError("--max-header-bytes takes 1024 to 1048576") }
        guard options.shutdownGrace >= 0, options.shutdownGrace <= 86400 else { throw ValidationError("--shutdown-grace takes seconds, 0 to 86400") }
        guard options.maxRealises >= 1 else { throw ValidationError("--max-realises must be at least 1") }
        guard (0...3600).contains(options.realiseTimeout) else { throw ValidationError("--realise-timeout takes seconds, 0 to 3600") }
        self.pins = try GCRootPins(
            gcRootDirectory: gcRoots, lifetime: .seconds(options.pinLifetime), maximumPins: options.maxPins, store: store, logger: logger)
        for name in options.disableSource where registry.source(named: name) == nil {
            throw ValidationError("--disable-source: no source named '\(name)' (sources: \(registry.sources.map(\.name).joined(separator: ", ")))")
        }
        do { self.trustedProxies = try TrustedProxies(parsing: options.trustedProxy) } catch { throw ValidationError("\(error)") }
        self.options = options
        self.registry = registry
        self.store = store
        let assembler = try InitrdAssembler(
            store: store, cache: cache, packer: StorePathPacker(compressor: compressor, level: level, storeDirectory: storeDirectory, workers: jobs), logger: logger)
        self.assembler = assembler
        self.packAhead = PackAheadService(assembler: assembler, logger: logger)
        self.realiser = options.realiseMissing
            ? try MissingPathRealiser(
                store: store, pins: pins, rootDirectory: gcRoots + "/realising", maximumRunning: options.maxRealises,
                timeout: .seconds(options.realiseTimeout), logger: logger, metrics: metrics)
            : nil
        self.metrics = metrics
        self.logger = logger
    }

    /// The router with every route of the host and of the registered sources.
    package func makeRouter() -> Router<NetbootRequestContext> {
        let router = Router(context: NetbootRequestContext.self)
        let table = RouteTable()
        // Every connection with a request in flight is known to the shutdown.
        router.add(middleware: InFlightConnectionsMiddleware(connections: connections))
        router.add(middleware: ClientAddressMiddleware(proxies: trustedProxies))
        // The access log wraps the error middleware so that it logs the status actually sent.
        router.add(middleware: AccessLogMiddleware(metrics: metrics))
        router.add(middleware: HTTPErrorMiddleware(routes: table, activity: assembler.activity))
        let packAhead = self.packAhead, trigger = options.packAhead
        let dispatch = DispatchRoutes(
            sources: registry.sources, disabled: Set(options.disableSource), pins: pins, assembler: assembler, metrics: metrics
        ) { path in
            // Warm the initrd while iPXE fetches the script and the kernel.
            if trigger == .dispatch { packAhead.request(path) }
        }
        BootRoutes(store: store, assembler: assembler, sources: dispatch.router, realiser: realiser) { path in
            // Warm it on the replica that serves it, while iPXE fetches the kernel.
            if trigger == .script { packAhead.request(path) }
        }.add(to: router, table: table)
        StatusRoutes(assembler: assembler, sources: dispatch.router, cacheLimitBytes: options.maxCpioCacheBytes).add(to: router, table: table)
        dispatch.add(to: router, table: table)
        BootAdditionRoutes(router: dispatch.router, compressor: overlayCodec.compressor, level: overlayCodec.level).add(to: router, table: table)
        MetricsRoute(metrics: metrics, cache: assembler.cache).add(to: router, table: table)
        return router
    }

    /// What per-machine overlays are compressed with: the initrd's codec, or gzip when that is
    /// `none` (an overlay must be compressed to be found at any offset after the shared initrd).
    var overlayCodec: (compressor: any Compressor, level: Int) {
        let compressor = assembler.packer.compressor
        if compressor.name != "none" { return (compressor, assembler.packer.level) }
        let fallback = registry.compressor(named: "gzip") ?? registry.compressors.first { $0.name != "none" } ?? compressor
        return (fallback, fallback.defaultLevel)
    }

    /// The most connections served at once: `--max-connections`, or derived from the soft limit of
    /// open files now (call after ``raiseOpenFileLimit(to:)``).
    package var connectionLimit: Int {
        // Asking to raise the limit to 0 changes nothing and returns the soft limit now.
        options.connectionLimit(openFiles: Self.raiseOpenFileLimit(to: 0), jobs: options.jobs ?? System.coreCount)
    }

    /// The background work of the host and of the sources: the cache (its packings and thread
    /// pool), packing passes, pack-ahead and the sources' services. Whoever serves the router runs
    /// them (the application does; tests serving ``makeRouter()`` must too).
    package var services: [any Service] {
        // Stopped in reverse order at shutdown: the sources' work first, the cache last.
        assembler.services + [packAhead] + (realiser.map { [$0.service] } ?? []) + registry.sources.flatMap(\.services)
    }

    /// The application, ready to run until SIGINT or SIGTERM; SIGHUP is ignored. Expired pins are
    /// swept at start-up and every minute. On shutdown, see ``NetbootApplication``: background work
    /// is cancelled, responses in flight get `--shutdown-grace` seconds, then their connections close.
    package func makeApplication(onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }) throws -> NetbootApplication {
        let (host, port) = try options.listenAddress()
        let http = Application(
            router: makeRouter(),
            server: .boundedHTTP1(
                limiter: ConnectionLimiter(limit: connectionLimit, logger: logger), headerTimeout: options.headerTimeout,
                idleTimeout: options.idleTimeout, maxHeaderBytes: options.maxHeaderBytes, logger: logger),
            configuration: .init(address: .hostname(host, port: port), serverName: "nix-netboot-serve"),
            onServerRunning: onServerRunning,
            logger: logger)
        return NetbootApplication(
            foundation: [
                PinSweeperService(pins: pins, interval: .seconds(max(1, min(60, options.pinLifetime)))),
                HangupService(logger: logger),
            ],
            http: GracefulHTTPService(http: http, connections: connections, grace: .milliseconds(Int64(options.shutdownGrace * 1000)), logger: logger),
            background: services,
            logger: logger)
    }

    /// What boot sources are made with: the store (remembering recent validity answers for a minute,
    /// see ``RecentlyValidStore``), state and GC-root directories, the logger, the server's metrics.
    package static func sourceContext(options: ServerOptions, store: any NixStore, logger: Logger, metrics: ServerMetrics? = nil) -> SourceContext {
        SourceContext(
            store: RecentlyValidStore(base: store), stateDirectory: options.stateDir,
            gcRootDirectory: options.directory(options.gcRootDir, "gc-roots"), logger: logger,
            metrics: metrics?.factory ?? NOOPMetricsHandler.instance)
    }

    /// Raises the soft limit of open files toward `wanted`, within the hard limit. Returns the new soft limit.
    @discardableResult
    package static func raiseOpenFileLimit(to wanted: UInt64) -> UInt64 {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        let target = min(UInt64(wanted), UInt64(limit.rlim_max))
        if target > UInt64(limit.rlim_cur) {
            limit.rlim_cur = rlim_t(target)
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        return UInt64(limit.rlim_cur)
    }
}
