#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// How rules and boots are written in `/status` and the log: one line each, never the files' contents.
enum RuleText {
    /// `mac=… uuid=…` (sorted by key), or `any` for a default rule.
    static func match(_ rule: MachineRule) -> String {
        rule.match.isEmpty ? "any" : rule.match.sorted { $0.key < $1.key }.map { "\($0.key.rawValue)=\($0.value)" }.joined(separator: ",")
    }

    static func status(_ rule: MachineRule) -> String {
        "machine-rule \(rule.name) match \(match(rule)) boot \(rule.boot) cmdline-bytes \(rule.cmdline.utf8.count) files \(rule.fileCount)"
    }

    static func status(invalidFile file: String, reason: String) -> String {
        "machine-rule-invalid \(file) \(reason)"
    }

    static func status(machine: String, record: BootRecords.Record) -> String {
        "machine-boot \(machine) at \(utc(record.time)) client \(record.client) rule \(record.rule) path \(record.path)"
    }

    /// `2026-11-30T18:45:00Z`.
    static func utc(_ seconds: Int) -> String {
        var time = time_t(seconds), parts = tm()
        gmtime_r(&time, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }
}
