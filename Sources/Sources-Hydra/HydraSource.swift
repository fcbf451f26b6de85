import Logging
import NetbootKit

/// `/dispatch/hydra/HYDRA/PROJECT/JOBSET/JOB`: boots the newest successful build of a Hydra job.
///
/// Only Hydras named with `--hydra NAME=BASE_URL` are contacted; any other name is a 404 before a
/// single request leaves. The source asks `BASE_URL/job/PROJECT/JOBSET/JOB/latest` for the build
/// (libcurl, following the redirect to `/build/ID`), takes `buildoutputs.out.path`, and realises it
/// with `nix-store --realise`, keeping a GC root per job in the GC root directory. Where the path
/// comes from and which signatures are trusted is Nix's own configuration: the server adds no
/// substituter or key of its own.
///
/// Lookups and realises run once per job at a time; requests meanwhile join the running one. A
/// request still waiting after `--hydra-timeout` is answered "retry later" while the work goes on.
public struct HydraSource: BootSource {
    /// The named Hydras, by name.
    let servers: [String: HydraServer]
    /// How long a request waits for its job before being told to retry.
    let timeout: Duration
    let fetcher: HTTPFetcher
    let context: SourceContext
    private let flights = SingleFlight<HydraJob, StorePath>()

    /// Checks the options (`ValidationError` for a bad `--hydra` value) and keeps the context.
    public init(options: Options, context: SourceContext) throws {
        try options.validate()
        self.servers = try HydraServer.parseAll(options.hydras)
        self.timeout = .seconds(options.hydraTimeout)
        self.fetcher = HTTPFetcher()
        self.context = context
    }

    public var name: String { "hydra" }

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
        let work: @Sendable () async throws -> StorePath = { [fetcher, context] in
            try await Self.fetch(job, from: server, root: root, fetcher: fetcher, context: context)
        }
        switch await flights.run(job, timeout: timeout, work) {
        case .finished(.success(let path)):
            return .storePath(path)
        case .finished(.failure(let error)):
            throw error
        case .stillRunning:
            return .stillWorking("still fetching the latest build of \(job) from Hydra; retrying")
        }
    }

    /// Asks Hydra for the job's latest build and realises its `out` path under the job's GC root.
    /// Every failure is a ``DispatchError/upstreamFailed(_:)`` with a one-line reason.
    static func fetch(
        _ job: HydraJob, from server: HydraServer, root: String, fetcher: HTTPFetcher, context: SourceContext
    ) async throws(DispatchError) -> StorePath {
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
        let path: StorePath
        do { path = try StorePath(absolutePath: outPath) } catch {
            throw .upstreamFailed("Hydra '\(server.name)': the out path of \(buildName) is not a store path: \(error.description.oneLine)")
        }

        context.logger.debug("realising a Hydra build", metadata: ["job": "\(job)", "path": "\(path)", "root": "\(root)"])
        do {
            try await context.addRoot(root, for: path)
        } catch let error as NixCommandError {
            context.logger.warning("nix-store --realise of a Hydra build failed", metadata: ["job": "\(job)", "path": "\(path)", "error": "\(error)"])
            throw .upstreamFailed("could not realise \(path) (\(buildName)) through Nix's substituters: \(error.reason.oneLine)")
        } catch {
            throw .upstreamFailed("could not realise \(path) (\(buildName)): \(String(describing: error).oneLine)")
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
