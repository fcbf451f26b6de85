import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// One log line per request once its response is complete: method, path, status, bytes sent,
/// duration and client address; and the same request counted in the server's metrics (by route
/// template, never by path).
///
/// It sits outside ``HTTPErrorMiddleware``, so it sees every request's final status. The line is
/// `info`, also for a download the client gave up on (`aborted`); it is `error` only when the body
/// itself failed after the headers went out (the connection is then closed).
package struct AccessLogMiddleware: RouterMiddleware {
    package typealias Context = NetbootRequestContext

    package let metrics: ServerMetrics?

    package init(metrics: ServerMetrics? = nil) {
        self.metrics = metrics
    }

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let client = context.clientLabel
        // The router fills the route template in later, into this shared box.
        let logger = context.logger, metrics = self.metrics, route = context.coreContext.endpointPath
        let line: @Sendable (Int, Int64, Logger.Level, [String: String]) -> Void = { status, bytes, level, extra in
            metrics?.requestCompleted(
                route: route.value, method: request.method.rawValue, status: status, bytes: bytes, duration: ContinuousClock.now - start)
            var metadata: Logger.Metadata = [
                "method": "\(request.method.rawValue)", "path": "\(PlainTextError.oneLine(request.uri.path))", "status": "\(status)",
                "bytes": "\(bytes)", "duration": "\(ContinuousClock.now - start)", "client": "\(client)",
            ]
            for (key, value) in extra { metadata[key] = "\(value)" }
            logger.log(level: level, "request", metadata: metadata)
        }
        let response: Response
        do {
            response = try await next(request, context)
        } catch {
            // Only reached if something below the error middleware's reach threw (e.g. cancellation).
            line(500, 0, .error, ["error": "\(error)"])
            throw error
        }
        var logged = response
        let body = response.body
        let status = Int(response.status.code)
        logged.body = ResponseBody(contentLength: body.contentLength) { writer in
            let counting = CountingWriter(inner: writer)
            do {
                try await body.write(counting)
                line(status, counting.count.value, .info, [:])
            } catch {
                if counting.writeFailed {
                    line(status, counting.count.value, .info, ["aborted": "client went away"])
                } else {
                    line(status, counting.count.value, .error, ["error": "response body failed; closing the connection: \(error)"])
                }
                throw error
            }
        }
        return logged
    }
}

/// Counts the bytes written through it, and notes whether writing to the client failed (the client
/// went away) as opposed to producing the bytes.
final class CountingWriter: ResponseBodyWriter {
    var inner: any ResponseBodyWriter
    let count = ByteCount()
    private(set) var writeFailed = false

    init(inner: any ResponseBodyWriter) { self.inner = inner }

    func write(_ buffer: ByteBuffer) async throws {
        count.value += Int64(buffer.readableBytes)
        do { try await inner.write(buffer) } catch {
            writeFailed = true
            throw error
        }
    }

    func finish(_ trailingHeaders: HTTPFields?) async throws {
        do { try await inner.finish(trailingHeaders) } catch {
            writeFailed = true
            throw error
        }
    }
}

/// A byte counter shared between the writer and the log line.
final class ByteCount { var value: Int64 = 0 }
