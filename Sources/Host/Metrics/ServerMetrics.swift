import CoreMetrics
import NetbootKit
import Prometheus

/// The server's metrics: one Prometheus registry of its own, written through swift-metrics' API,
/// one method per event, and the text `GET /metrics` answers.
///
/// The registry belongs to the server, not to the process: swift-metrics' global `MetricsSystem` is
/// never bootstrapped, so two servers in one test process keep separate counts, and libraries that
/// record through the global system add nothing here. Sources get ``factory`` in their
/// `SourceContext`. Every label value is bounded: route templates (never paths), methods, status
/// codes, codecs and source names come from the code; machine rule names (files the operator writes)
/// are capped at ``ruleLimit`` distinct values, the rest recorded as `other`.
package final class ServerMetrics: Sendable {
    /// Distinct machine rule names recorded before the rest become `other`.
    package static let ruleLimit = 64
    /// Distinct route templates recorded before the rest become `other` (the router's routes are far fewer).
    package static let routeLimit = 64

    package let registry: PrometheusCollectorRegistry
    /// swift-metrics' factory writing into ``registry`` with the catalogue's help texts.
    package let factory: DescribedMetricsFactory
    private let routes = SharedBoundedLabelValues(limit: routeLimit)
    private let rules = SharedBoundedLabelValues(limit: ruleLimit)

    package init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        self.factory = DescribedMetricsFactory(registry: registry)
        // The families without labels exist from the start, at 0, so a rate never begins at a gap.
        for family in MetricCatalogue.all where family.labels.isEmpty && family.kind == .counter {
            _ = counter(family)
        }
    }

    private func counter(_ family: MetricDescription, _ labels: [(String, String)] = []) -> CoreMetrics.Counter {
        CoreMetrics.Counter(label: family.name, dimensions: labels, factory: factory)
    }

    private func timer(_ family: MetricDescription, _ labels: [(String, String)]) -> CoreMetrics.Timer {
        CoreMetrics.Timer(label: family.name, dimensions: labels, factory: factory)
    }

    private func gauge(_ family: MetricDescription) -> CoreMetrics.Gauge {
        CoreMetrics.Gauge(label: family.name, dimensions: [], factory: factory)
    }

    // MARK: - HTTP

    /// A response was sent (or given up on): `route` is the matched route template (nil or
    /// `NotFound` when none matched).
    package func requestCompleted(route: String?, method: String, status: Int, bytes: Int64, duration: Duration) {
        let route = route.map { $0 == "NotFound" ? "unmatched" : routes.admit($0) } ?? "unmatched"
        let method = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"].contains(method) ? method : "other"
        let status = (100...599).contains(status) ? String(status) : "other"
        counter(MetricCatalogue.httpRequests, [("route", route), ("method", method), ("status", status)]).increment()
        timer(MetricCatalogue.httpRequestDuration, [("route", route)]).recordNanoseconds(duration.nanoseconds)
        counter(MetricCatalogue.httpResponseBytes, [("route", route)]).increment(by: max(0, bytes))
    }

    // MARK: - Packing and the cache

    /// One store path was packed into the cache.
    package func archivePacked(codec: String, duration: Duration, inputBytes: UInt64, outputBytes: UInt64) {
        let labels = [("codec", codec)]
        counter(MetricCatalogue.archivesPacked, labels).increment()
        timer(MetricCatalogue.packingDuration, labels).recordNanoseconds(duration.nanoseconds)
        counter(MetricCatalogue.packingInputBytes, labels).increment(by: Int64(clamping: inputBytes))
        counter(MetricCatalogue.packingOutputBytes, labels).increment(by: Int64(clamping: outputBytes))
    }

    /// A packing failed; `outOfSpace` when the disk was full even after evicting.
    package func packingFailed(codec: String, outOfSpace: Bool) {
        counter(MetricCatalogue.packingFailures, [("codec", codec), ("reason", outOfSpace ? "out_of_space" : "error")]).increment()
    }

    /// An initrd looked up its archives: `hits` were ready, `misses` were not.
    package func cacheLookedUp(hits: Int, misses: Int) {
        if hits > 0 { counter(MetricCatalogue.cacheHits).increment(by: hits) }
        if misses > 0 { counter(MetricCatalogue.cacheMisses).increment(by: misses) }
    }

    /// `count` archives were evicted.
    package func evicted(_ count: Int) {
        if count > 0 { counter(MetricCatalogue.cacheEvictions).increment(by: count) }
    }

    /// An adopted archive was read against its checksum: it matched, or not (and was removed).
    package func verified(matched: Bool) {
        counter(matched ? MetricCatalogue.cacheVerifications : MetricCatalogue.cacheVerificationFailures).increment()
    }

    /// An archive's file vanished or changed size under the server.
    package func vanished() {
        counter(MetricCatalogue.cacheVanished).increment()
    }

    // MARK: - Dispatch

    /// A request to `/dispatch/SOURCE` ended; `source` is a registered source's name or `unknown`.
    package func dispatched(source: String, outcome: DispatchOutcome) {
        counter(MetricCatalogue.dispatches, [("source", source), ("outcome", outcome.rawValue)]).increment()
    }

    /// A dispatch of `source` chose machine rule `rule` and redirected to its boot.
    package func machineBooted(source: String, rule: String) {
        counter(MetricCatalogue.machineBoots, [("source", source), ("rule", rules.admit(rule))]).increment()
    }

    // MARK: - Missing paths

    /// A fetch of a missing store path ended (`--realise-missing`).
    package func missingPathFetchEnded(_ outcome: MissingPathFetchOutcome) {
        counter(MetricCatalogue.missingPathFetches, [("outcome", outcome.rawValue)]).increment()
    }

    // MARK: - Exposition

    /// Prometheus' text format of every family, after reading the gauges of `cache` as they are now.
    package func exposition(cache: CPIOCache) async -> [UInt8] {
        let load = cache.packingLoad
        gauge(MetricCatalogue.packingsRunning).record(load.running)
        gauge(MetricCatalogue.packingsQueued).record(load.queued)
        let usage = await cache.indexedUsage
        gauge(MetricCatalogue.cacheArchives).record(usage.archives)
        gauge(MetricCatalogue.cacheBytes).record(Int64(clamping: usage.bytes))
        gauge(MetricCatalogue.cacheCapacityBytes).record(Int64(clamping: cache.capacity))
        return registry.emitToBuffer()
    }
}
