import Logging
import NetbootKit
import ServiceLifecycle

/// `/dispatch/hydra/HYDRA/PROJECT/JOBSET/JOB`: boots the newest successful build of a Hydra job.
///
/// Only Hydras named with `--hydra NAME=BASE_URL` are contacted; any other name is a 404 before a
/// single request leaves. The source asks `BASE_URL/job/PROJECT/JOBSET/JOB/latest` for the build
/// (libcurl, following the redirect to `/build/ID`), takes `buildoutputs.out.path`, and realises it
/// with `nix-store --realise`, keeping a GC root per job in the GC root directory. Where the path
/// comes from and which signatures are trusted is Nix's own configuration: the server adds no
/// substituter or key of its own.
///
/// Both steps run on ``WorkCoordinator``s, the source's services. Lookups are shared per job, at
/// most `--max-hydra-lookups` in flight across all jobs with a bounded queue behind them (beyond it:
/// 503 `Retry-After`), and a lookup nobody waits for any more is cancelled, its transfer stopped.
/// Realises are shared per job and path, at most `--max-hydra-realises` at once, and go on when
/// nobody waits: they make the GC root a retry then finds. A request still waiting after
/// `--hydra-timeout` (both steps together) is answered "retry later".
public struct HydraSource: BootSource {
    /// Most lookups waiting for a slot, across all jobs; beyond them a request is told to retry.
    static let maximumQueuedLookups = 64
    /// Most realises waiting for a slot, across all jobs.
    static let maximumQueuedRealises = 64

    /// The named Hydras, by name.
    let servers: [String: HydraServer]
    /// How long a request waits for its job before being told to retry.
    let timeout: Duration
    let fetcher: HTTPFetcher
    let context: SourceContext
    /// Hydra requests, per job.
    let lookups: WorkCoordinator<HydraJob, HydraLookup>
    /// `nix-store --realise … --add-root`, per job and path.
    let realises: WorkCoordinator<HydraRealisation, StorePath>

    /// Checks the options (`ValidationError` for a bad `--hydra` value) and keeps the context.
    public init(options: Options, context: SourceContext) throws {
        try options.validate()
        self.servers = try HydraServer.parseAll(options.hydras)
        self.timeout = .seconds(options.hydraTimeout)
        self.fetcher = HTTPFetcher()
        self.context = context
        self.lookups = WorkCoordinator(policy: .init(
            joining: .anyJob, maximumRunning: options.maxHydraLookups, maximumQueued: Self.maximumQueuedLookups,
            whenAbandoned: .cancel))
        self.realises = WorkCoordinator(policy: .init(
            joining: .anyJob, maximumRunning: options.maxHydraRealises, maximumQueued: Self.maximumQueuedRealises,
            whenAbandoned: .keepRunning))
    }

    public var name: String { "hydra" }

    public var services: [any Service] { [lookups, realises] }

    public var notConfiguredReason: String? {
        servers.isEmpty ? "hydra booting is not configured on this server (no --hydra)" : nil
    }

    public func resolve(_ request: DispatchRequest) async throws -> Resolution {
        let segments = try request.segments(4, usage: "/dispatch/hydra/HYDRA/PROJECT/JOBSET/JOB")
        guard let server = servers[segments[0]] else {
            throw DispatchError.notFound("no Hydra named '\(segments[0])' on this server (see --hydra)")
        }
        let job = HydraJob(hydra: segments[0], project: segments[1], jobset: segments[2], job: segments[3])
        let root = try job.gcRoot(in: context.gcRootDirectory)
        let clock = ContinuousClock()
        let started = clock.now

        let lookup: HydraLookup
        switch await lookups.run(job, deadline: timeout, { [fetcher] _ in try await Self.lookUp(job, on: server, with: fetcher) }) {
        case .finished(_, .success(let found)):
            lookup = found
        case .finished(_, .failure(let error)):
            throw error
        case .stillRunning:
            return .stillWorking("still asking Hydra '\(server.name)' for the latest build of \(job); retrying")
        case .refused:
            return .stillWorking("too many Hydra lookups are in flight; \(job) waits its turn")
        }

        // The realise belongs to the job, not to this request: it goes on after a timeout or a
        // disconnect, and the retry joins it or finds its root.
        let remaining = max(timeout - (clock.now - started), .zero)
        let key = HydraRealisation(job: job, path: lookup.path)
        switch await realises.run(key, deadline: remaining, { [context] _ in try await Self.realise(lookup, of: job, root: root, context: context) }) {
        case .finished(_, .success(let path)):
            return .storePath(path)
        case .finished(_, .failure(let error)):
            throw error
        case .stillRunning:
            return .stillWorking("still fetching \(lookup.buildName) from Hydra '\(server.name)'; retrying")
        case .refused:
            return .stillWorking("too many Hydra builds are being fetched; \(job) waits its turn")
        }
    }

    /// Asks Hydra for the job's latest build and returns its `out` path.
    /// Every failure is a ``DispatchError/upstreamFailed(_:)`` with a one-line reason.
    static func lookUp(_ job: HydraJob, on server: HydraServer, with fetcher: HTTPFetcher) async throws(DispatchError) -> HydraLookup {
        let url = server.latestBuildURL(of: job)
        let response: HTTPFetcher.Response
        do {
            response = try await fetcher.get(url, headers: ["Accept: application/json"])
        } catch {
            throw .upstreamFailed("could not reach Hydra '\(server.name)': \(error.oneLine)")
        }
        switch response.status {
        case 200:
            break
        case 404:
            throw .upstreamFailed("Hydra '\(server.name)' has no successful build of \(job) (404 from \(url))")
        default:
            throw .upstreamFailed("Hydra '\(server.name)' answered HTTP \(response.status) for \(url)")
        }

        let build: HydraBuild
        do { build = try HydraBuild.decode(response.body) } catch {
            throw .upstreamFailed("Hydra '\(server.name)' answered \(url) with something that is not build JSON")
        }
        let buildName = build.id.map { "build \($0) of \(job)" } ?? "the latest build of \(job)"
        let outPath: String
        do { outPath = try build.outPath() } catch {
            throw .upstreamFailed("Hydra '\(server.name)': \(buildName) \(error.reason)")
        }
        do {
            return HydraLookup(path: try StorePath(absolutePath: outPath), buildName: buildName)
        } catch {
            throw .upstreamFailed("Hydra '\(server.name)': the out path of \(buildName) is not a store path: \(error.description.oneLine)")
        }
    }

    /// Realises the build's path through Nix's substituters under the job's GC root `root`.
    static func realise(_ lookup: HydraLookup, of job: HydraJob, root: String, context: SourceContext) async throws(DispatchError) -> StorePath {
        let path = lookup.path
        context.logger.debug("realising a Hydra build", metadata: ["job": "\(job)", "path": "\(path)", "root": "\(root)"])
        do {
            try await context.addRoot(root, for: path)
        } catch let error as NixCommandError {
            context.logger.warning("nix-store --realise of a Hydra build failed", metadata: ["job": "\(job)", "path": "\(path)", "error": "\(error)"])
            throw .upstreamFailed("could not realise \(path) (\(lookup.buildName)) through Nix's substituters: \(error.reason.oneLine)")
        } catch {
            throw .upstreamFailed("could not realise \(path) (\(lookup.buildName)): \(String(describing: error).oneLine)")
        }
        context.logger.info("Hydra build realised", metadata: ["job": "\(job)", "path": "\(path)"])
        return path
    }
}

extension Error {
    /// The error's description on one line, for a reason shown on an iPXE console.
    fileprivate var oneLine: String { String(describing: self).oneLine }
}

extension String {
    /// Control characters and line breaks replaced by spaces, capped at 300 characters.
    fileprivate var oneLine: String {
        let cleaned = String(String.UnicodeScalarView(unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : $0 }))
        return cleaned.count > 300 ? String(cleaned.prefix(300)) + "…" : cleaned
    }
}
