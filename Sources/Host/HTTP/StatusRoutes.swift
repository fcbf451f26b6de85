import HTTPTypes
import Hummingbird
import NIOCore

/// `/` (the status page for browsers, a one-line answer for everyone else), `/healthz` (liveness)
/// and `/status` (plain text, or JSON when asked with `Accept: application/json`).
package struct StatusRoutes: Sendable {
    package let assembler: InitrdAssembler
    /// The sources: their state on this server and their own `/status` lines.
    package let sources: RegistryRouter?
    /// `--max-cpio-cache-bytes`.
    package let cacheLimitBytes: UInt64

    package init(assembler: InitrdAssembler, sources: RegistryRouter?, cacheLimitBytes: UInt64) {
        self.assembler = assembler
        self.sources = sources
        self.cacheLimitBytes = cacheLimitBytes
    }

    package func add(to router: Router<NetbootRequestContext>, table: RouteTable) {
        router.getAndHead("/", recordingIn: table) { request, _ in
            guard Self.accepts("text/html", request.headers[.accept]) else { return Self.answer("nix-netboot-serve\n", type: "text/plain; charset=utf-8") }
            return Self.answer(StatusPage.render(await report()), type: "text/html; charset=utf-8")
        }
        router.getAndHead("/healthz", recordingIn: table) { _, _ in Self.answer("ok\n", type: "text/plain; charset=utf-8") }
        router.getAndHead("/status", recordingIn: table) { request, _ in
            let report = await report()
            if Self.accepts("application/json", request.headers[.accept]) { return Self.answer(report.json, type: "application/json") }
            return Self.answer(report.text, type: "text/plain; charset=utf-8")
        }
    }

    /// What the server is doing now.
    package func report() async -> StatusReport {
        let cache = assembler.cache
        let load = cache.packingLoad
        var sourceLines: [String] = []
        var states: [StatusReport.Source] = []
        if let sources {
            for source in sources.sources {
                if sources.disabled.contains(source.name) {
                    states.append(.init(name: source.name, state: .off))
                    continue
                }
                if let reason = source.notConfiguredReason {
                    states.append(.init(name: source.name, state: .notConfigured, reason: reason))
                } else {
                    states.append(.init(name: source.name, state: .on))
                }
                sourceLines += await source.statusLines(router: sources)
            }
        }
        return StatusReport(
            codec: assembler.packer.compressor.name, level: assembler.packer.level, jobs: assembler.packer.workers,
            archivesPacked: await cache.packedCount, archivesCached: await cache.entryCount, cacheBytes: await cache.totalBytes,
            cacheLimitBytes: cacheLimitBytes, archivesVerified: await cache.verifiedCount, archivesDropped: await cache.droppedCount,
            packingsRunning: load.running, packingsQueued: load.queued, sources: states, sourceLines: sourceLines,
            activity: assembler.activity.snapshot())
    }

    /// Whether an `Accept` header names `type` (a media range with `q=0` does not; wildcards do not).
    package static func accepts(_ type: String, _ accept: String?) -> Bool {
        guard let accept else { return false }
        for range in accept.split(separator: ",") {
            let parameters = range.split(separator: ";")
            guard let media = parameters.first, media.trimmingSpaces().lowercased() == type else { continue }
            let refused = parameters.dropFirst().contains { parameter in
                let pair = parameter.trimmingSpaces().lowercased().split(separator: "=", maxSplits: 1)
                return pair.count == 2 && pair[0] == "q" && (Double(pair[1]) ?? 1) == 0
            }
            if !refused { return true }
        }
        return false
    }

    /// A fresh answer (never cached: it changes every moment; it varies with `Accept`).
    static func answer(_ text: String, type: String) -> Response {
        let body = ByteBuffer(string: text)
        return Response(
            status: .ok,
            headers: [.contentType: type, .contentLength: "\(body.readableBytes)", .cacheControl: "no-store", .vary: "Accept"],
            body: .init(byteBuffer: body))
    }
}
