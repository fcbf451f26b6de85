import NetbootKit

/// One metric family the server exposes: its name, its type and the help text of its `# HELP` line.
///
/// Names follow Prometheus' conventions: `nns_` first, the unit last (`_seconds`, `_bytes`), counters
/// ending in `_total`.
package struct MetricDescription: Sendable {
    /// What kind of family it is; a histogram carries its bucket bounds (seconds).
    package enum Kind: Sendable, Equatable {
        case counter
        case gauge
        case histogram(buckets: [Duration])
    }

    package var name: String
    package var kind: Kind
    package var help: String
    /// Its label names, in the order they are always given.
    package var labels: [String]

    package init(_ name: String, _ kind: Kind, labels: [String] = [], help: String) {
        self.name = name
        self.kind = kind
        self.labels = labels
        self.help = help
    }
}

/// Every metric family of the server, by name: what the factory registers them with (help text,
/// buckets) and what the README lists.
package enum MetricCatalogue {
    /// Requests take from a millisecond (a script) to minutes (an initrd on a slow link).
    static let requestBuckets: [Duration] = [0.001, 0.005, 0.025, 0.1, 0.25, 1, 2.5, 10, 30, 60, 300].map(Self.seconds)
    /// One archive packs in milliseconds (a small path) to minutes (a large one with xz).
    static let packingBuckets: [Duration] = [0.01, 0.05, 0.25, 1, 2.5, 10, 30, 60, 300].map(Self.seconds)
    /// Evaluations and builds take seconds to an hour.
    static let buildBuckets: [Duration] = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600].map(Self.seconds)

    static func seconds(_ value: Double) -> Duration { .milliseconds(Int64(value * 1000)) }

    package static let httpRequests = MetricDescription(
        "nns_http_requests_total", .counter, labels: ["route", "method", "status"],
        help: "HTTP requests answered, by route template (unmatched when no route matched), method and status code.")
    package static let httpRequestDuration = MetricDescription(
        "nns_http_request_duration_seconds", .histogram(buckets: requestBuckets), labels: ["route"],
        help: "Time from a request's arrival until its response body was sent, by route template.")
    package static let httpResponseBytes = MetricDescription(
        "nns_http_response_bytes_total", .counter, labels: ["route"],
        help: "Response body bytes sent, by route template.")

    package static let archivesPacked = MetricDescription(
        "nns_archives_packed_total", .counter, labels: ["codec"],
        help: "Store paths packed into a compressed archive of the cache, by codec.")
    package static let packingDuration = MetricDescription(
        "nns_packing_duration_seconds", .histogram(buckets: packingBuckets), labels: ["codec"],
        help: "Time to pack one store path's archive (all its parts), by codec.")
    package static let packingInputBytes = MetricDescription(
        "nns_packing_input_bytes_total", .counter, labels: ["codec"],
        help: "Uncompressed bytes (NAR size) of the store paths packed, by codec.")
    package static let packingOutputBytes = MetricDescription(
        "nns_packing_output_bytes_total", .counter, labels: ["codec"],
        help: "Compressed archive bytes written to the cache, by codec.")
    package static let packingFailures = MetricDescription(
        "nns_packing_failures_total", .counter, labels: ["codec", "reason"],
        help: "Packings that failed (not counting those cancelled at shutdown), by codec and reason: out_of_space or error.")
    package static let packingsRunning = MetricDescription(
        "nns_packings_running", .gauge, help: "Archive packings running now.")
    package static let packingsQueued = MetricDescription(
        "nns_packings_queued", .gauge, help: "Archive packings waiting for a free job (--jobs) now.")

    package static let cacheArchives = MetricDescription(
        "nns_cache_archives", .gauge, help: "Archives in the cpio cache now.")
    package static let cacheBytes = MetricDescription(
        "nns_cache_bytes", .gauge, help: "Bytes of the archives in the cpio cache now.")
    package static let cacheCapacityBytes = MetricDescription(
        "nns_cache_capacity_bytes", .gauge, help: "The cpio cache's limit (--max-cpio-cache-bytes).")
    package static let cacheHits = MetricDescription(
        "nns_cache_hits_total", .counter, help: "Archives an initrd found ready in the cache.")
    package static let cacheMisses = MetricDescription(
        "nns_cache_misses_total", .counter, help: "Archives an initrd did not find ready in the cache (packed, or joined a packing).")
    package static let cacheEvictions = MetricDescription(
        "nns_cache_evictions_total", .counter, help: "Archives evicted from the cache to stay under its limit or to make room on a full disk.")
    package static let cacheVerifications = MetricDescription(
        "nns_cache_verified_archives_total", .counter,
        help: "Archives found at start-up that were read and matched their checksum before first use.")
    package static let cacheVerificationFailures = MetricDescription(
        "nns_cache_verification_failures_total", .counter,
        help: "Archives found at start-up that failed their checksum (or could not be read); removed and packed again.")
    package static let cacheVanished = MetricDescription(
        "nns_cache_vanished_total", .counter, help: "Archives whose file vanished or changed size under the server; dropped and packed again.")

    package static let dispatches = MetricDescription(
        "nns_dispatches_total", .counter, labels: ["source", "outcome"],
        help: """
            Requests to /dispatch/SOURCE, by source (unknown for no such source) and outcome: redirect, retry_later (503), \
            failed (retry script with a reason), waiting (retry script, nothing to boot yet), refused (4xx), error (5xx).
            """)
    package static let machineBoots = MetricDescription(
        "nns_machine_boots_total", .counter, labels: ["source", "rule"],
        help: "Dispatches that chose a machine rule and redirected to its boot, by source and rule (the first 64 rule names; the rest are other).")
    package static let evaluationDuration = MetricDescription(
        SystemBuildPipeline.DurationMetric.evaluation.rawValue, .histogram(buckets: buildBuckets), labels: ["source", "outcome"],
        help: "Time to evaluate a system to its derivation (configuration and flake sources), by source and outcome: success or failure.")
    package static let buildDuration = MetricDescription(
        SystemBuildPipeline.DurationMetric.build.rawValue, .histogram(buckets: buildBuckets), labels: ["source", "outcome"],
        help: "Time to build an evaluated system (configuration and flake sources), by source and outcome: success or failure.")
    package static let missingPathFetches = MetricDescription(
        "nns_missing_path_fetches_total", .counter, labels: ["outcome"],
        help: """
            Fetches from Nix's substituters of store paths /boot asked for and the store lacked (--realise-missing), by outcome: \
            fetched, not_found (no substituter has it) or failed.
            """)

    /// Every family.
    package static let all: [MetricDescription] = [
        httpRequests, httpRequestDuration, httpResponseBytes,
        archivesPacked, packingDuration, packingInputBytes, packingOutputBytes, packingFailures, packingsRunning, packingsQueued,
        cacheArchives, cacheBytes, cacheCapacityBytes, cacheHits, cacheMisses, cacheEvictions, cacheVerifications,
        cacheVerificationFailures, cacheVanished,
        dispatches, machineBoots, evaluationDuration, buildDuration, missingPathFetches,
    ]

    /// The families by name.
    package static let byName: [String: MetricDescription] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })
}
