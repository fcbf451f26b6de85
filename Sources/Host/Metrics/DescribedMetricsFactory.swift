import CoreMetrics
import NetbootKit
import Prometheus

/// swift-metrics' factory over one Prometheus registry, registering each family with the help text
/// and buckets of the ``MetricCatalogue``.
///
/// swift-prometheus' own `PrometheusMetricsFactory` registers every family with empty help, so
/// Prometheus' text has no `# HELP` lines (`promtool check metrics` fails) — and a family registered
/// once with help and once without stops the process. A label the catalogue does not know is still
/// registered (without help), so a family missing from the catalogue shows up in `promtool`'s check
/// rather than as a crash.
package struct DescribedMetricsFactory: MetricsFactory {
    package let registry: PrometheusCollectorRegistry

    package init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// The family `label` as the registry takes it: its name and help text.
    private func descriptor(_ label: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: label, unitName: "", helpText: MetricCatalogue.byName[label]?.help ?? "")
    }

    private func buckets(_ label: String) -> [Duration] {
        if case .histogram(let buckets) = MetricCatalogue.byName[label]?.kind { return buckets }
        return MetricCatalogue.requestBuckets
    }

    package func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    package func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    package func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    package func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return registry.makeGauge(descriptor: descriptor(label), labels: dimensions) }
        let bounds = buckets(label).map { Double($0.nanoseconds) / 1e9 }
        return registry.makeValueHistogram(descriptor: descriptor(label), labels: dimensions, buckets: bounds)
    }

    package func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        registry.makeDurationHistogram(descriptor: descriptor(label), labels: dimensions, buckets: buckets(label))
    }

    // The server's families live as long as the server: nothing is destroyed.
    package func destroyCounter(_ handler: any CounterHandler) {}
    package func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    package func destroyMeter(_ handler: any MeterHandler) {}
    package func destroyRecorder(_ handler: any RecorderHandler) {}
    package func destroyTimer(_ handler: any TimerHandler) {}
}
