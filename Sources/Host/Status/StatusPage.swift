/// The status page for people: one self-contained HTML document (no scripts, no external assets)
/// that refreshes itself every ``refreshSeconds`` seconds.
///
/// Sections: packing now (a `<progress>` bar per pass), the cache (used of its limit as a bar),
/// recent systems, recent boots, sources and recent errors. Every text that reaches the page is
/// escaped with ``escape(_:)``: system names, clients and messages come from clients.
package enum StatusPage {
    package static let refreshSeconds = 5

    /// The page for `report`.
    package static func render(_ report: StatusReport) -> String {
        let activity = report.activity
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta http-equiv="refresh" content="\(refreshSeconds)">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>nix-netboot-serve</title>
            <style>\(style)</style>
            </head><body>
            <h1>nix-netboot-serve</h1>
            <p class="meta">codec \(escape(report.codec)) level \(report.level) · \(report.jobs) packing \(report.jobs == 1 ? "core" : "cores") · \
            archives packing: \(report.packingsRunning), queued: \(report.packingsQueued) · \(escape(UTCTime.readable(activity.time))) UTC</p>

            """
        html += "<section id=\"packing\"><h2>Packing now</h2>\n"
        if activity.passes.isEmpty {
            html += "<p class=\"none\">Nothing is being packed.</p>\n"
        } else {
            html += "<table><tr><th>System</th><th>Progress</th><th>Paths</th><th>Bytes</th><th>Elapsed</th><th>Left</th></tr>\n"
            for (progress, elapsed) in activity.passes {
                let percent = Int(progress.fraction * 100)
                html += "<tr class=\"pass\"><td><code>\(escape(progress.system))</code></td>"
                html += "<td><progress class=\"packing\" max=\"1000\" value=\"\(Int(progress.fraction * 1000))\">\(percent) %</progress> \(percent) %</td>"
                html += "<td>\(progress.donePaths) / \(progress.totalPaths)</td>"
                html += "<td>\(bytes(progress.doneBytes)) / \(bytes(progress.totalBytes))</td>"
                html += "<td>\(duration(elapsed))</td><td>\(progress.remaining(after: elapsed).map(duration) ?? "…")</td></tr>\n"
            }
            html += "</table>\n"
        }
        html += "</section>\n"

        let limit = max(report.cacheLimitBytes, 1)
        html += """
            <section id="cache"><h2>Cache</h2>
            <p><progress class="cache" max="1000" value="\(Int(min(1, Double(report.cacheBytes) / Double(limit)) * 1000))"></progress> \
            \(bytes(report.cacheBytes)) of \(bytes(report.cacheLimitBytes)) · \(report.archivesCached) archives · \
            \(report.archivesPacked) packed, \(report.archivesVerified) verified, \(report.archivesDropped) dropped since start</p>
            </section>

            """

        html += "<section id=\"systems\"><h2>Recent systems</h2>\n"
        if activity.systems.isEmpty {
            html += "<p class=\"none\">No system served yet.</p>\n"
        } else {
            html += "<table><tr><th>System</th><th>Initrd</th><th>Archives</th><th>Cold pack</th><th>Last served</th><th>Served</th></tr>\n"
            for system in activity.systems {
                html += "<tr class=\"system\"><td><code>\(escape(system.name))</code></td><td>\(system.initrdBytes.map(bytes) ?? "–")</td>"
                html += "<td>\(system.archives.map { "\($0)" } ?? "–")</td><td>\(system.coldPack.map(duration) ?? "–")</td>"
                html += "<td>\(system.lastServed.map { escape(UTCTime.readable($0)) } ?? "–")</td><td>\(system.served)</td></tr>\n"
            }
            html += "</table>\n"
        }
        html += "</section>\n"

        html += "<section id=\"boots\"><h2>Recent boots</h2>\n"
        if activity.boots.isEmpty {
            html += "<p class=\"none\">No initrd downloaded yet.</p>\n"
        } else {
            html += "<table><tr><th>Time (UTC)</th><th>Client</th><th>Rule</th><th>System</th><th>Bytes</th><th>Seconds</th></tr>\n"
            for boot in activity.boots {
                html += "<tr class=\"boot\"><td>\(escape(UTCTime.readable(boot.time)))</td><td>\(escape(boot.client))</td>"
                html += "<td>\(boot.rule.map(escape) ?? "–")</td><td><code>\(escape(boot.system))</code></td>"
                html += "<td>\(bytes(boot.bytes))</td><td>\(PackingProgress.seconds(boot.duration))</td></tr>\n"
            }
            html += "</table>\n"
        }
        html += "</section>\n"

        html += "<section id=\"sources\"><h2>Sources</h2>\n<ul>\n"
        for source in report.sources {
            html += "<li class=\"source \(source.state.rawValue)\"><b>\(escape(source.name))</b> \(escape(source.state.rawValue))"
            if let reason = source.reason { html += " — \(escape(reason))" }
            html += "</li>\n"
        }
        html += "</ul>\n"
        if !report.sourceLines.isEmpty {
            html += "<pre>" + report.sourceLines.map { escape(PlainTextError.oneLine($0)) }.joined(separator: "\n") + "</pre>\n"
        }
        html += "</section>\n"

        html += "<section id=\"errors\"><h2>Recent errors</h2>\n"
        if activity.errors.isEmpty {
            html += "<p class=\"none\">None.</p>\n"
        } else {
            html += "<table><tr><th>Time (UTC)</th><th>Error</th></tr>\n"
            for failure in activity.errors {
                html += "<tr class=\"error\"><td>\(escape(UTCTime.readable(failure.time)))</td><td>\(escape(failure.message))</td></tr>\n"
            }
            html += "</table>\n"
        }
        html += "</section>\n<p class=\"meta\">Also: <a href=\"/status\">/status</a> (text, or JSON with <code>Accept: application/json</code>) · <a href=\"/healthz\">/healthz</a></p>\n</body></html>\n"
        return html
    }

    /// `text` safe inside HTML text and attribute values.
    package static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    /// Bytes for people: `512 B`, `12.3 MB`, `4.7 GB` (powers of 1000).
    package static func bytes(_ count: UInt64) -> String {
        let units = ["B", "kB", "MB", "GB", "TB", "PB"]
        var value = Double(count), unit = 0
        while value >= 1000 && unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        return unit == 0 ? "\(count) B" : PackingProgress.decimal(value, places: 1) + " " + units[unit]
    }

    /// A duration for people: `4.2 s`, `3 min 05 s`.
    package static func duration(_ duration: Duration) -> String {
        let seconds = duration.inSeconds
        guard seconds >= 60 else { return PackingProgress.decimal(seconds, places: 1) + " s" }
        let whole = Int(seconds.rounded())
        let rest = whole % 60
        return "\(whole / 60) min \(rest < 10 ? "0" : "")\(rest) s"
    }

    static let style = """
        body{font:15px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:72em;padding:0 1em;color:#1d2330;background:#fafbfc}\
        h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em;border-bottom:1px solid #d8dde6}\
        .meta,.none{color:#5a6476}table{border-collapse:collapse;width:100%}\
        th,td{text-align:left;padding:.25em .6em;border-bottom:1px solid #e6e9ef;vertical-align:top;white-space:nowrap}\
        th{font-weight:600;color:#3b4456}code{font-size:.85em;word-break:break-all;white-space:normal}\
        progress{width:14em;height:1.1em;vertical-align:middle}tr.error td{color:#9b1c1c}\
        li.off,li.not-configured{color:#5a6476}pre{font-size:.85em;white-space:pre-wrap;word-break:break-all}
        """
}
