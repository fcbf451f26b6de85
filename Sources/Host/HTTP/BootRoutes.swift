#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The host's boot routes: `/boot/NAME/{netboot.ipxe,bzImage,initrd}` (`/`, `/healthz` and
/// `/status` are ``StatusRoutes``).
///
/// Every boot source redirects here; these routes are the assembler's front door.
package struct BootRoutes: Sendable {
    package let store: any NixStore
    package let assembler: InitrdAssembler
    package let validPaths: KnownValidPaths
    /// The sources: their boot additions for scripts.
    package let sources: RegistryRouter?
    /// Called with the system of every boot script served (e.g. to start packing it right away).
    package let onScript: @Sendable (StorePath) -> Void

    /// `realiser` (`--realise-missing`) fetches a path the store lacks; without it, that is a 404.
    package init(
        store: any NixStore, assembler: InitrdAssembler, sources: RegistryRouter? = nil, realiser: MissingPathRealiser? = nil,
        onScript: @escaping @Sendable (StorePath) -> Void = { _ in }
    ) {
        self.store = store
        self.assembler = assembler
        self.validPaths = KnownValidPaths(store: store, realiser: realiser)
        self.sources = sources
        self.onScript = onScript
    }

    /// Bytes read and written at a time by a lone download (256 KiB measured 45 % more CPU per GB
    /// than 1 MiB).
    static let chunkSize = 1 << 20
    /// What all bodies streaming at once hold in chunks, about: 32 downloads at 1 MiB, 200 (a rack
    /// powering on) at 128 KiB.
    static let streamingBudget = StreamingBudget(bytes: 32 << 20)

    /// Adds the routes; every one answers `GET` and `HEAD` (the initrd's `HEAD` skips the packing
    /// lease's body), and `table` learns them for 405 answers.
    package func add(to router: Router<NetbootRequestContext>, table: RouteTable) {
        router.getAndHead("/boot/:name/netboot.ipxe", recordingIn: table) { request, context in
            try await script(request, context)
        }
        router.getAndHead("/boot/:name/bzImage", recordingIn: table) { request, context in
            try await kernel(request, context)
        }
        router.getAndHead("/boot/:name/initrd", recordingIn: table) { request, context in
            try await initrd(request, context, head: request.method == .head)
        }
    }

    func storePath(_ context: NetbootRequestContext) throws -> StorePath {
        // Percent-decoded: a store path name may hold `?`, which a URL carries as `%3F`.
        let name = try QueryString.decodePathSegment(Substring(context.parameters.get("name") ?? ""))
        do { return try StorePath(name: name) } catch {
            throw PlainTextError(.badRequest, "not a store path name: \(error)")
        }
    }

    func script(_ request: Request, _ context: NetbootRequestContext) async throws -> Response {
        let path = try storePath(context)
        let (prefix, suffix) = try IPXEScript.tuningArguments(from: request.uri.query)
        try await validPaths.requireValid(path)
        var (additionalArguments, overlayURL): (String, String?) = ("", nil)
        if let (source, key) = try BootAdditionsQuery.reference(in: request.uri.query) {
            guard let sources else { throw PlainTextError(.notFound, "no boot source '\(source)' on this server") }
            let additions = try await BootAdditionsQuery.lookup(source: source, key: key, router: sources, logger: context.logger)
            additionalArguments = additions.kernelArguments
            assembler.activity.noteRule(client: context.client.address, system: path.name, rule: key)
            if !additions.overlay.isEmpty { overlayURL = BootAdditionsQuery.overlayPath(source: source, key: key) }
        }
        let layout = try await assembler.systemLayout(of: path)
        let text: String
        do {
            text = try layout.bootScript(prefix: prefix, suffix: suffix, additionalArguments: additionalArguments, overlayURL: overlayURL).text
        } catch let refusal as any BootRefusal {
            throw refusal.reported(to: context.logger)
        }
        if request.method == .get { onScript(path) }
        return Response(
            status: .ok, headers: [.contentType: "text/plain; charset=utf-8", .contentLength: "\(text.utf8.count)"],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    func kernel(_ request: Request, _ context: NetbootRequestContext) async throws -> Response {
        let path = try storePath(context)
        try await validPaths.requireValid(path)
        let layout = try await assembler.systemLayout(of: path)
        // Opened (never following a final symlink, never blocking) and checked to be a regular
        // file in the closure; its resolved path, free of symlinks, is what is streamed.
        let kernel: LayoutFile
        do throws(SystemLayoutError) {
            kernel = try layout.open(.kernel)
            try layout.requireSystem()
        } catch {
            throw error.reported(to: context.logger)
        }
        let file = kernel.path, size = kernel.size
        let tag = "\"\(path.hashPart)-kernel\""
        var headers = EntityTag.immutableHeaders(tag)
        if EntityTag.matches(request.headers[.ifNoneMatch], tag) { return Response(status: .notModified, headers: headers) }
        headers[.contentType] = "application/octet-stream"
        headers[.contentLength] = "\(size)"
        let stream = InitrdByteStream(members: [.file(path: file, size: size)], chunkSize: Self.chunkSize)
        return Response(status: .ok, headers: headers, body: Self.body(stream, size: size, channel: context.channel, logger: context.logger) {})
    }

    func initrd(_ request: Request, _ context: NetbootRequestContext, head: Bool) async throws -> Response {
        let started = ContinuousClock.now
        let path = try storePath(context)
        if !(await assembler.knowsClosure(of: path)) { try await validPaths.requireValid(path) }
        // Only a NixOS system's closure is packed and served, not any path's.
        do { try await assembler.systemLayout(of: path).requireSystem() } catch let refusal as SystemLayoutError {
            throw refusal.reported(to: context.logger)
        }
        let tag = "\"\(path.hashPart)-\(assembler.packer.compressor.name)-\(assembler.packer.level)-v\(InitrdLayout.formatVersion)\""
        var headers = EntityTag.immutableHeaders(tag)
        if EntityTag.matches(request.headers[.ifNoneMatch], tag) { return Response(status: .notModified, headers: headers) }
        let initrd = try await assembler.initrd(for: path)
        let activity = assembler.activity, client = context.client.address
        headers[.contentType] = "application/octet-stream"
        headers[.contentLength] = "\(initrd.size)"
        if head {
            await initrd.release()
            return Response(status: .ok, headers: headers)
        }
        activity.served(system: path.name, initrdBytes: initrd.size, archives: initrd.closure.count)
        return Response(
            status: .ok, headers: headers,
            body: Self.body(initrd.bytes(chunkSize: Self.chunkSize), size: initrd.size, channel: context.channel, logger: context.logger) {
                await initrd.release()
            } completed: {
                activity.booted(client: client, system: path.name, bytes: initrd.size, duration: ContinuousClock.now - started)
            })
    }

    /// A body of known length, read chunk by chunk on the connection's event loop (reads of cached
    /// files, then the write and a wait for the loop's next poll, which keeps memory flat when the
    /// server is short of CPU and lets the loop accept and read new requests between chunks). A failure after the headers went out throws, and the server closes the
    /// connection: never a short body under a full length. The access log reports it (one line).
    static func body(
        _ stream: InitrdByteStream, size: UInt64, channel: any Channel, logger: Logger,
        done: @escaping @Sendable () async -> Void, completed: @escaping @Sendable () -> Void = {}
    ) -> ResponseBody {
        ResponseBody(contentLength: Int(size)) { writer in
            let budget = streamingBudget
            budget.enter()
            defer { budget.leave() }
            do {
                let turns = await EventLoopTurns.of(channel.eventLoop)
                try await withTaskExecutorPreference(EventLoopTaskExecutor(eventLoop: channel.eventLoop)) {
                    for try await chunk in stream.readingInline().sharing(budget) {
                        try await writer.write(chunk)
                        // Each poll of the loop serves new requests, then one chunk of every body.
                        await turns.next()
                    }
                }
                try await writer.finish(nil)
                completed()
                await done()
            } catch {
                await done()
                logger.debug("response body ended early", metadata: ["error": "\(error)"])
                throw error
            }
        }
    }
}
