#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Times of the status answers: seconds since the epoch written in UTC.
package enum UTCTime {
    /// `2026-11-30T19:45:12Z`.
    package static func iso8601(_ seconds: Int) -> String {
        let (date, time) = parts(seconds)
        return date + "T" + time + "Z"
    }

    /// `2026-11-30 19:45:12` (UTC), for people.
    package static func readable(_ seconds: Int) -> String {
        let (date, time) = parts(seconds)
        return date + " " + time
    }

    static func parts(_ seconds: Int) -> (date: String, time: String) {
        var value = time_t(seconds)
        var fields = tm()
        guard gmtime_r(&value, &fields) != nil else { return ("?", "?") }
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return ("\(fields.tm_year + 1900)-\(two(fields.tm_mon + 1))-\(two(fields.tm_mday))", "\(two(fields.tm_hour)):\(two(fields.tm_min)):\(two(fields.tm_sec))")
    }
}
