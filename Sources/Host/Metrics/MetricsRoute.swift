import Hummingbird
import NIOCore

/// `GET /metrics`: every metric family in Prometheus' text format (version 0.0.4), the cache and
/// packing gauges read as they are at the scrape.
package struct MetricsRoute: Sendable {
    /// The content type Prometheus expects of the text format.
    package static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    package let metrics: ServerMetrics
    package let cache: CPIOCache

    package init(metrics: ServerMetrics, cache: CPIOCache) {
        self.metrics = metrics
        self.cache = cache
    }

    package func add(to router: Router<NetbootRequestContext>, table: RouteTable) {
        let metrics = self.metrics, cache = self.cache
        router.getAndHead("/metrics", recordingIn: table) { _, _ in
            let text = await metrics.exposition(cache: cache)
            return Response(
                status: .ok,
                headers: [.contentType: Self.contentType, .contentLength: "\(text.count)", .cacheControl: "no-store"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: text)))
        }
    }
}
