/// How far one packing pass has come: the paths and uncompressed bytes (NAR sizes) packed of those it
/// set out to pack, and what that says about the time left.
///
/// Pure: the caller tells it what finished and how long the pass has run. A pass learns its totals
/// from the registrations (``plan(paths:bytes:)``) before the first path finishes.
package struct PackingProgress: Sendable, Equatable {
    /// The system the pass packs (its store path's name).
    package let system: String
    package private(set) var totalPaths = 0
    package private(set) var totalBytes: UInt64 = 0
    package private(set) var donePaths = 0
    package private(set) var doneBytes: UInt64 = 0

    /// After this long a pass reports its progress in the log, then every ``reportInterval``.
    package static let firstReport: Duration = .seconds(2)
    package static let reportInterval: Duration = .seconds(5)

    /// The share of the work done before the time left is estimated.
    package static let estimateThreshold = 0.01

    package init(system: String) { self.system = system }

    /// Sets what the pass will pack: `paths` store paths of `bytes` uncompressed bytes in all.
    package mutating func plan(paths: Int, bytes: UInt64) {
        totalPaths = max(0, paths)
        totalBytes = bytes
    }

    /// Notes one path of `bytes` uncompressed bytes packed (or found packed by someone else).
    package mutating func finished(bytes: UInt64) {
        donePaths += 1
        doneBytes += bytes
        totalPaths = max(totalPaths, donePaths)
        totalBytes = max(totalBytes, doneBytes)
    }

    /// The share done, 0 to 1: by bytes when sizes are known, else by paths.
    package var fraction: Double {
        if totalBytes > 0 { return Double(doneBytes) / Double(totalBytes) }
        if totalPaths > 0 { return Double(donePaths) / Double(totalPaths) }
        return 0
    }

    /// The time left at the rate so far; nil until ``estimateThreshold`` of the work is done (before
    /// that, a small path that happened to finish first would promise hours).
    package func remaining(after elapsed: Duration) -> Duration? {
        let done = fraction
        guard done >= Self.estimateThreshold else { return nil }
        guard done < 1 else { return .zero }
        return elapsed * ((1 - done) / done)
    }

    /// The fields of a progress log line.
    package func logFields(elapsed: Duration) -> [(String, String)] {
        [
            ("system", system), ("paths", "\(donePaths)/\(totalPaths)"), ("bytes", "\(doneBytes)/\(totalBytes)"),
            ("percent", "\(Int(fraction * 100))"), ("elapsed-seconds", Self.seconds(elapsed)),
            ("remaining-seconds", remaining(after: elapsed).map(Self.seconds) ?? "unknown"),
        ]
    }

    /// The fields of the summary line of a pass: paths and bytes packed, seconds, and the rate in MB/s
    /// (10⁶ uncompressed bytes) per core of `cores`.
    package func summaryFields(elapsed: Duration, cores: Int) -> [(String, String)] {
        [
            ("packed", "\(donePaths)"), ("bytes", "\(doneBytes)"), ("seconds", Self.seconds(elapsed)),
            ("mb-per-second-per-core", Self.decimal(Self.megabytesPerSecond(doneBytes, elapsed) / Double(max(1, cores)), places: 1)),
        ]
    }

    /// `bytes` over `elapsed` in MB/s (0 when no time passed).
    package static func megabytesPerSecond(_ bytes: UInt64, _ elapsed: Duration) -> Double {
        let seconds = elapsed.inSeconds
        return seconds > 0 ? Double(bytes) / 1e6 / seconds : 0
    }

    /// Seconds with one decimal.
    package static func seconds(_ duration: Duration) -> String { decimal(duration.inSeconds, places: 1) }

    /// `value` rounded to `places` decimals (no Foundation).
    package static func decimal(_ value: Double, places: Int) -> String {
        guard value.isFinite else { return "0" }
        var scale = 1.0
        for _ in 0..<max(0, places) { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 9e15 else { return value < 0 ? "-\(Int64(abs(value)))" : "\(Int64(value))" }
        let units = Int64(scaled), whole = units / Int64(scale), fraction = units % Int64(scale)
        let sign = value < 0 && units > 0 ? "-" : ""
        guard places > 0 else { return sign + "\(whole)" }
        let digits = String(fraction)
        return sign + "\(whole)." + String(repeating: "0", count: places - digits.count) + digits
    }
}

extension Duration {
    /// The duration in seconds.
    package var inSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
