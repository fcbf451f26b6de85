import HTTPTypes
import Hummingbird
import NIOCore

extension DispatchRoutes {
    /// Why `path` would not give a boot script for `query` (nil when it would): not a NixOS system,
    /// a symlink out of its closure, or a kernel line the kernel would not keep whole.
    static func refusal(
        booting path: StorePath, query: String?, additions: BootAdditions? = nil, assembler: InitrdAssembler
    ) async throws -> (any BootRefusal)? {
        let (prefix, suffix) = try IPXEScript.tuningArguments(from: query)
        let layout = try await assembler.systemLayout(of: path)
        do {
            _ = try layout.bootScript(
                prefix: prefix, suffix: suffix, additionalArguments: additions?.kernelArguments ?? "",
                overlayURL: additions.map { _ in "overlay" })
        } catch let refusal as any BootRefusal {
            return refusal
        }
        return nil
    }

    /// The iPXE script that shows `reason`, waits and asks for the same dispatch URL again.
    static func retryScript(reason: String, request: Request) -> Response {
        retryScript(RetryScript(reason: reason, url: retryURL(request)))
    }

    /// The iPXE script that shows `lines`, waits `seconds` and asks for the same dispatch URL again.
    static func retryScript(lines: [String], seconds: Int, request: Request) -> Response {
        retryScript(RetryScript(lines: lines, seconds: seconds, url: retryURL(request)))
    }

    static func retryURL(_ request: Request) -> String {
        var url = request.uri.path
        if let query = request.uri.query, !query.isEmpty { url += "?" + query }
        if let host = request.head.authority { url = "http://" + host + url }
        return url
    }

    static func retryScript(_ script: RetryScript) -> Response {
        let text = script.text
        return Response(
            status: .ok,
            headers: [.contentType: "text/plain; charset=utf-8", .contentLength: "\(text.utf8.count)", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
