import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// How a boot script's URL names a source's ``BootAdditions``: `boot_additions=SOURCE%2FKEY` in the
/// query (the source asked again each time; the URL never carries the additions themselves).
package enum BootAdditionsQuery {
    package static let name = "boot_additions"

    /// `query` without any `boot_additions` pair of its own, with `SOURCE/KEY` appended.
    package static func appending(source: String, key: String, to query: String?) -> String {
        var pairs = (query ?? "").split(separator: "&", omittingEmptySubsequences: true).filter { pair in
            let pairName = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0]
            return (try? QueryString.decode(pairName)) != name
        }.map(String.init)
        pairs.append("\(name)=\(source)%2F\(key)")
        return pairs.joined(separator: "&")
    }

    /// The `(source, key)` a query names, nil when it names none; 400 when it is malformed.
    package static func reference(in query: String?) throws(PlainTextError) -> (source: String, key: String)? {
        guard let value = try QueryString.value(name, in: query) else { return nil }
        let parts = value.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, BootAdditions.isValidKey(String(parts[1])) else {
            throw PlainTextError(.badRequest, "\(name) takes SOURCE/KEY")
        }
        return (String(parts[0]), String(parts[1]))
    }

    /// The additions `source` has now under `key`: 404 when the source or the key is gone, 500
    /// (logged) when the source's answer breaks the kit's rules.
    package static func lookup(source: String, key: String, router: RegistryRouter, logger: Logger) async throws -> BootAdditions {
        guard let found = router.source(named: source) else { throw PlainTextError(.notFound, "no boot source '\(source)' on this server") }
        let additions: BootAdditions?
        do { additions = try await found.additions(forKey: key, router: router) } catch { throw PlainTextError.from(error) }
        guard let additions else { throw PlainTextError(.notFound, "the \(source) source has nothing named '\(key)' (any more)") }
        if let control = additions.kernelArguments.unicodeScalars.first(where: IPXEScript.isControlCharacter) {
            logger.error("source gave kernel arguments with a control character", metadata: [
                "source": "\(source)", "key": "\(key)", "character": "\(IPXEScript.codePoint(control))",
            ])
            throw PlainTextError(.internalServerError, "the \(source) source gave kernel arguments the server cannot serve (details in the server log)")
        }
        return additions
    }

    /// The overlay's URL in the boot script (an absolute path, resolved against the script's own URL).
    package static func overlayPath(source: String, key: String) -> String { "/overlay/\(source)/\(key)" }
}

/// The routes sources contribute through the kit: each source's scripts at their own paths
/// (e.g. `/boot.ipxe`) and `/overlay/SOURCE/KEY`, the per-machine overlay archives.
package struct BootAdditionRoutes: Sendable {
    package let router: RegistryRouter
    /// The codec and level overlays are compressed with (never `none`).
    package let compressor: any Compressor
    package let level: Int

    package init(router: RegistryRouter, compressor: any Compressor, level: Int) {
        self.router = router
        self.compressor = compressor
        self.level = level
    }

    package func add(to router: Router<NetbootRequestContext>, table: RouteTable) {
        for source in self.router.sources where !self.router.disabled.contains(source.name) {
            for script in source.scripts {
                router.getAndHead(RouterPath("/\(script.path)"), recordingIn: table) { request, _ in
                    Self.noStore(ByteBuffer(string: script.render(request.uri.query)), contentType: "text/plain; charset=utf-8")
                }
            }
        }
        router.getAndHead("/overlay/:source/:key", recordingIn: table) { request, context in
            try await overlay(request, context)
        }
    }

    func overlay(_ request: Request, _ context: NetbootRequestContext) async throws -> Response {
        let source = context.parameters.get("source") ?? "", key = context.parameters.get("key") ?? ""
        guard BootAdditions.isValidKey(key) else { throw PlainTextError(.badRequest, "not a key of boot additions") }
        let additions = try await BootAdditionsQuery.lookup(source: source, key: key, router: self.router, logger: context.logger)
        let bytes: [UInt8]
        do { bytes = try OverlayArchive.compressed(additions.overlay, compressor: compressor, level: level) } catch {
            context.logger.error("overlay refused", metadata: ["source": "\(source)", "key": "\(key)", "error": "\(error)"])
            throw PlainTextError(.internalServerError, "the overlay of \(source)/\(key) cannot be made (details in the server log)")
        }
        return Self.noStore(ByteBuffer(bytes: bytes), contentType: "application/octet-stream")
    }

    static func noStore(_ body: ByteBuffer, contentType: String) -> Response {
        Response(
            status: .ok, headers: [.contentType: contentType, .contentLength: "\(body.readableBytes)", .cacheControl: "no-store"],
            body: .init(byteBuffer: body))
    }
}
