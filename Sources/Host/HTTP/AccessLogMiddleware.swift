import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// One log line per request once its response is complete: method, path, status, bytes sent,
/// duration and client address. Errors thrown by routes are logged with their status too.
public struct AccessLogMiddleware: RouterMiddleware {
    public typealias Context = NetbootRequestContext

    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let client = context.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "-"
        let logger = context.logger
        let line: @Sendable (Int, Int64, String?) -> Void = { status, bytes, failure in
            var metadata: Logger.Metadata = [
                "method": "\(request.method.rawValue)", "path": "\(request.uri.path)", "status": "\(status)",
                "bytes": "\(bytes)", "duration": "\(ContinuousClock.now - start)", "client": "\(client)",
            ]
            if let failure { metadata["error"] = "\(failure)" }
            logger.log(level: failure != nil ? .error : .info, "request", metadata: metadata)
        }
        let response: Response
        do {
            response = try await next(request, context)
        } catch {
            let mapped = PlainTextError.from(error)
            // 503 is "still working, ask again": not a failure.
            let failed = mapped.status.code >= 500 && mapped.status != .serviceUnavailable
            line(Int(mapped.status.code), 0, failed ? "\(error)" : nil)
            throw mapped
        }
        var logged = response
        let body = response.body
        let status = Int(response.status.code)
        logged.body = ResponseBody(contentLength: body.contentLength) { writer in
            let counting = CountingWriter(inner: writer)
            do {
                try await body.write(counting)
                line(status, counting.count.value, status >= 500 && status != 503 ? "status \(status)" : nil)
            } catch {
                line(status, counting.count.value, "body failed: \(error)")
                throw error
            }
        }
        return logged
    }
}

/// Counts the bytes written through it.
final class CountingWriter: ResponseBodyWriter {
    var inner: any ResponseBodyWriter
    let count = ByteCount()

    init(inner: any ResponseBodyWriter) { self.inner = inner }

    func write(_ buffer: ByteBuffer) async throws {
        count.value += Int64(buffer.readableBytes)
        try await inner.write(buffer)
    }

    func finish(_ trailingHeaders: HTTPFields?) async throws {
        try await inner.finish(trailingHeaders)
    }
}

/// A byte counter shared between the writer and the log line.
final class ByteCount { var value: Int64 = 0 }
