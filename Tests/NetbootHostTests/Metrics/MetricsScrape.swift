import Foundation

/// Prometheus' text format as a test reads it: each sample's value by name and labels (in any
/// order), and the `# HELP` and `# TYPE` lines by family.
struct MetricsScrape {
    let text: String
    private(set) var samples: [String: Double] = [:]
    private(set) var help: [String: String] = [:]
    private(set) var types: [String: String] = [:]

    init(_ text: String) throws {
        self.text = text
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ", maxSplits: 3)
                guard parts.count == 4 else { throw ShellError(description: "bad comment line: \(line)") }
                if parts[1] == "HELP" { help[String(parts[2])] = String(parts[3]) } else { types[String(parts[2])] = String(parts[3]) }
                continue
            }
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                throw ShellError(description: "bad sample line: \(line)")
            }
            let series = line[..<space]
            guard let brace = series.firstIndex(of: "{") else {
                samples[Self.key(String(series), [])] = value
                continue
            }
            let name = String(series[..<brace])
            var labels: [(String, String)] = []
            let inside = series[series.index(after: brace)..<(series.lastIndex(of: "}") ?? series.endIndex)]
            // Our label values hold no quotes or commas.
            for pair in inside.split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { throw ShellError(description: "bad labels: \(line)") }
                labels.append((String(parts[0]), String(parts[1].dropFirst().dropLast())))
            }
            samples[Self.key(name, labels)] = value
        }
    }

    static func key(_ name: String, _ labels: [(String, String)]) -> String {
        name + "{" + labels.sorted { $0.0 < $1.0 }.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
    }

    /// The sample's value; 0 when it is not there (a series not created yet).
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double {
        samples[Self.key(name, labels.map { ($0.key, $0.value) })] ?? 0
    }

    /// The samples of one family (or of a histogram's `_count`), with their labels.
    func series(_ name: String) -> [String: Double] {
        samples.filter { $0.key.hasPrefix(name + "{") }
    }

    /// The family names that have samples.
    var families: Set<String> { Set(types.keys) }
}
