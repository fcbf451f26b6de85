#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging
import ServiceLifecycle
import Synchronization

/// Fetches the store paths that `/boot/NAME/…` asks for but the local store lacks, with their
/// closures, from Nix's configured substituters (`--realise-missing`): how a replica of a fleet, with
/// a store of its own, fills it from a binary cache.
///
/// The fetch is the Hydra source's: `nix-store --realise PATH --add-root ROOT`, under a root of its
/// own in `rootDirectory` (emptied at start-up) that is replaced by a dispatch pin (``GCRootPins``)
/// once the path is valid: a fetched system is kept alive like a dispatched one, for
/// `--pin-lifetime`, and a name no substituter has never takes a pin's place. Which substituters
/// and keys are trusted is Nix's own configuration. Fetches run
/// on a ``WorkCoordinator`` (this type's service): one per path, shared by every request for it, at
/// most `maximumRunning` at once with a bounded queue behind them, going on when nobody waits any
/// more. A request waits at most `timeout`, then is told to retry (503 `Retry-After`, which iPXE
/// honours); the retry joins the fetch or finds the path valid. A failed fetch is answered for
/// ``failureMemory`` (so the machine told to retry learns why), then the next request tries again.
package final class MissingPathRealiser: Sendable {
    /// Most fetches waiting for a slot, across all paths; beyond them a request is told to retry.
    package static let maximumQueued = 64
    /// How long a failed fetch is answered without trying again: longer than the retry delay, short
    /// enough that a path pushed to the binary cache afterwards is soon found.
    package static let failureMemory: Duration = .seconds(3 * Resolution.retryDelay)
    /// Most failures remembered.
    static let rememberedFailures = 1024

    private let store: any NixStore
    private let pins: GCRootPins
    private let rootDirectory: String
    private let timeout: Duration
    private let fetches: WorkCoordinator<StorePath, Void>
    private let logger: Logger
    private let metrics: ServerMetrics?
    /// Failed fetches, with their answer and when it expires.
    private let failures = Mutex(RecentlyUsed<StorePath, (answer: PlainTextError, expires: ContinuousClock.Instant)>(capacity: rememberedFailures))

    /// Makes `rootDirectory` (the fetches' own GC roots) and removes what an earlier run left there.
    /// `metrics` counts each fetch's outcome once (not each request's).
    package init(
        store: any NixStore, pins: GCRootPins, rootDirectory: String, maximumRunning: Int, timeout: Duration, logger: Logger,
        metrics: ServerMetrics? = nil
    ) throws {
        try FileSystem.createDirectories(rootDirectory)
        for stale in try FileSystem.listDirectory(rootDirectory) { unlink(rootDirectory + "/" + stale) }
        self.store = store
        self.pins = pins
        self.rootDirectory = rootDirectory
        self.timeout = timeout
        self.logger = logger
        self.metrics = metrics
        self.fetches = WorkCoordinator(policy: .init(
            joining: .anyJob, maximumRunning: maximumRunning, maximumQueued: Self.maximumQueued, whenAbandoned: .keepRunning))
    }

    /// The coordinator of the fetches: run it for as long as the routes serve.
    package var service: any Service { fetches }

    /// Returns once `path` is valid, fetched now if it was missing; otherwise throws the answer:
    /// 503 with `Retry-After` while the fetch runs (or waits its turn), 404 when no substituter has
    /// the path, 502 when Nix failed otherwise.
    package func realise(_ path: StorePath) async throws(PlainTextError) {
        if let failed = recentFailure(of: path) { throw failed }
        let outcome = await fetches.run(path, deadline: timeout) { _ in try await self.fetch(path) }
        switch outcome {
        case .finished(_, .success):
            return
        case .finished(_, .failure(let error)):
            throw error as? PlainTextError ?? answer(to: error, fetching: path)
        case .stillRunning:
            throw PlainTextError.retryLater("fetching \(path.name) from a binary cache; try again in a few seconds")
        case .refused:
            throw PlainTextError.retryLater("too many store paths are being fetched; \(path.name) waits its turn")
        }
    }

    /// The fetch itself (a job of the coordinator): realises `path` under a root of its own, then
    /// pins it; a failure is remembered with its answer, whether or not anybody still waits for it.
    private func fetch(_ path: StorePath) async throws {
        logger.info("fetching a missing store path from Nix's substituters", metadata: ["path": "\(path.name)"])
        let root = rootDirectory + "/" + path.name
        defer { unlink(root) }
        do {
            try await store.realise(path, root: root)
            try await pins.pin(path)
        } catch {
            let failed = answer(to: error, fetching: path)
            if !(error is CancellationError) {
                failures.withLock { $0.insert(path, (failed, ContinuousClock.now + Self.failureMemory)) }
                metrics?.missingPathFetchEnded(failed.status == .notFound ? .notFound : .failed)
            }
            throw failed
        }
        logger.info("missing store path fetched", metadata: ["path": "\(path.name)"])
        metrics?.missingPathFetchEnded(.fetched)
    }

    /// The answer of a failed fetch of `path`, while it is remembered.
    private func recentFailure(of path: StorePath) -> PlainTextError? {
        failures.withLock { failures in
            guard let failure = failures.value(path) else { return nil }
            guard ContinuousClock.now < failure.expires else {
                failures.remove(path)
                return nil
            }
            return failure.answer
        }
    }

    /// What a failed fetch answers: 404 when Nix found the path in no substituter, 503 when the
    /// server is stopping, 502 otherwise (details go to the log, never to the client).
    func answer(to error: any Error, fetching path: StorePath) -> PlainTextError {
        if error is CancellationError { return .shuttingDown }
        if let failure = error as? NixCommandError, Self.noSubstituterHasIt(failure) {
            logger.notice("no substituter has a missing store path", metadata: ["path": "\(path.name)"])
            return PlainTextError(.notFound, "\(path) is not on this server, and no substituter has it")
        }
        logger.warning("fetching a missing store path failed", metadata: ["path": "\(path.name)", "error": "\(error)"])
        return PlainTextError(.badGateway, "could not fetch \(path.name) from a binary cache (details in the server log)")
    }

    /// Whether Nix gave up because nothing can substitute the path (and no substituter failed on
    /// the way: an unreachable cache is a failure of the server's, not a missing path).
    static func noSubstituterHasIt(_ failure: NixCommandError) -> Bool {
        let text = failure.standardError
        return text.contains("don't know how to build these paths") && !text.contains("unable to download")
    }
}
