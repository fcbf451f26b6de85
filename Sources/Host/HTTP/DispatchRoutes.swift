import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// `/dispatch/SOURCE/…`: finds the registered source, lets it resolve, pins the result against garbage
/// collection and redirects to `/boot/…` (keeping the query).
package struct DispatchRoutes: Sendable {
    package let sources: [any BootSource]
    package let disabled: Set<String>
    package let pins: GCRootPins?
    /// Called with every path a dispatch resolved to (e.g. to start packing it right away).
    package let onResolved: @Sendable (StorePath) -> Void
    /// Reads the layout of a resolved path: one that is no bootable system gets the retry script.
    package let assembler: InitrdAssembler?
    /// Where each dispatch's outcome is counted.
    package let metrics: ServerMetrics?

    package init(
        sources: [any BootSource], disabled: Set<String> = [], pins: GCRootPins?, assembler: InitrdAssembler? = nil,
        metrics: ServerMetrics? = nil, onResolved: @escaping @Sendable (StorePath) -> Void = { _ in }
    ) {
        self.sources = sources
        self.disabled = disabled
        self.pins = pins
        self.assembler = assembler
        self.metrics = metrics
        self.onResolved = onResolved
    }

    package func add(to router: Router<NetbootRequestContext>, table: RouteTable) {
        router.getAndHead("/dispatch/:source/**", recordingIn: table) { request, context in
            try await countedDispatch(request, context)
        }
        // `/dispatch/NAME` itself, for the sources that take no segment.
        for source in sources where source.acceptsEmptyPath {
            let name = source.name
            router.getAndHead(RouterPath("/dispatch/\(name)"), recordingIn: table) { request, context in
                try await countedDispatch(request, context, source: name)
            }
        }
    }

    /// The sources as the sources see each other.
    package var router: RegistryRouter { RegistryRouter(sources: sources, disabled: disabled) }

    /// ``dispatch(_:_:source:waiting:)``, its outcome counted by source (`unknown` for a name that is
    /// no registered source: names from the URL never become labels).
    func countedDispatch(_ request: Request, _ context: NetbootRequestContext, source fixedName: String? = nil) async throws -> Response {
        let name = fixedName ?? context.parameters.get("source") ?? ""
        let label = sources.contains { $0.name == name } ? name : "unknown"
        var waiting = false
        do {
            let response = try await dispatch(request, context, source: fixedName, waiting: &waiting)
            metrics?.dispatched(source: label, outcome: waiting ? .waiting : DispatchOutcome(status: Int(response.status.code)))
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            metrics?.dispatched(source: label, outcome: DispatchOutcome(status: status))
            throw error
        }
    }

    /// Answers a dispatch; sets `waiting` when the answer is a retry script without a failure.
    func dispatch(
        _ request: Request, _ context: NetbootRequestContext, source fixedName: String?, waiting: inout Bool
    ) async throws -> Response {
        let name = fixedName ?? context.parameters.get("source") ?? ""
        guard let source = sources.first(where: { $0.name == name }) else {
            let names = sources.map(\.name).filter { !disabled.contains($0) }.joined(separator: ", ")
            throw PlainTextError(.notFound, "no such boot source on this server (sources: \(names))")
        }
        if disabled.contains(name) {
            throw PlainTextError(.notFound, "\(name) booting is turned off on this server")
        }
        if let reason = source.notConfiguredReason { throw PlainTextError(.notFound, reason) }
        var segments: [String] = []
        for raw in fixedName == nil ? context.parameters.getCatchAll() : [] {
            let segment = try QueryString.decodePathSegment(raw)
            do { try DispatchSegment.validate(segment) } catch { throw PlainTextError.from(error) }
            segments.append(segment)
        }
        let query = request.uri.query
        _ = try IPXEScript.tuningArguments(from: query)  // refuse a bad query before doing any work
        let resolution: Resolution
        do {
            let client = context.client.address
            resolution = try await source.resolve(DispatchRequest(segments: segments, query: query, client: client, router: router))
        } catch {
            let mapped = PlainTextError.from(error)
            if mapped.status.code >= 500 {
                context.logger.error("dispatch failed", metadata: ["source": "\(name)", "error": "\(error)"])
            }
            throw mapped
        }
        var additions: BootAdditions?
        let path: StorePath
        switch resolution {
        case .storePath(let resolved):
            path = resolved
        case .boot(let resolved, let added):
            guard BootAdditions.isValidKey(added.key) else {
                context.logger.error("source returned an invalid additions key", metadata: ["source": "\(name)", "key": "\(added.key)"])
                throw PlainTextError(.internalServerError, "the \(name) source gave an answer the server cannot serve (details in the server log)")
            }
            (path, additions) = (resolved, added)
        case .retryLater(let seconds, let reason):
            throw PlainTextError.retryLater(reason, seconds: seconds)
        case .failed(let reason):
            return Self.retryScript(reason: reason, request: request)
        case .waitAndRetry(let lines, let seconds):
            waiting = true
            return Self.retryScript(lines: lines, seconds: seconds, request: request)
        }
        // No dead end: a path that is not a bootable system (or not with this query) gets the
        // retry script with the reason, before it is pinned or packed.
        if let assembler, let refusal = try await Self.refusal(booting: path, query: query, additions: additions, assembler: assembler) {
            guard refusal.status.code < 500 else { throw refusal.reported(to: context.logger) }
            return Self.retryScript(reason: refusal.reported(to: context.logger).message, request: request)
        }
        if let pins {
            do { try await pins.pin(path) } catch {
                context.logger.error("pinning failed", metadata: ["path": "\(path.name)", "error": "\(error)"])
                throw PlainTextError(.badGateway, "could not pin \(path) against garbage collection (details in the server log)")
            }
        }
        onResolved(path)
        var location = "/boot/\(path.urlSegment)/netboot.ipxe"
        if let additions {
            metrics?.machineBooted(source: name, rule: additions.key)
            location += "?" + BootAdditionsQuery.appending(source: name, key: additions.key, to: query)
        } else if let query, !query.isEmpty {
            location += "?" + query
        }
        return Response(status: .found, headers: [.location: location, .contentLength: "0"])
    }
}

extension QueryString {
    /// Percent-decodes one path segment (`+` stays a plus sign in paths).
    package static func decodePathSegment(_ raw: Substring) throws(PlainTextError) -> String {
        try decode(Substring(raw.replacingOccurrences(of: "+", with: "%2B")))
    }
}

extension Substring {
    func replacingOccurrences(of target: Character, with replacement: String) -> String {
        var result = ""
        for character in self { if character == target { result += replacement } else { result.append(character) } }
        return result
    }
}
