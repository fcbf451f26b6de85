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
        html += tableSection(
            id: "packing", title: "Packing now", empty: "Nothing is being packed.", rowClass: "pass",
            headers: ["System", "Progress", "Paths", "Bytes", "Elapsed", "Left"],
            rows: activity.passes.map { progress, elapsed in
                let percent = Int(progress.fraction * 100)
                return [
                    "<code>\(escape(progress.system))</code>",
                    "<progress class=\"packing\" max=\"1000\" value=\"\(Int(progress.fraction * 1000))\">\(percent) %</progress> \(percent) %",
                    "\(progress.donePaths) / \(progress.totalPaths)",
                    "\(bytes(progress.doneBytes)) / \(bytes(progress.totalBytes))",
                    duration(elapsed), progress.remaining(after: elapsed).map(duration) ?? "…",
                ]
            })

        let limit = max(report.cacheLimitBytes, 1)
        html += """
            <section id="cache"><h2>Cache</h2>
            <p><progress class="cache" max="1000" value="\(Int(min(1, Double(report.cacheBytes) / Double(limit)) * 1000))"></progress> \
            \(bytes(report.cacheBytes)) of \(bytes(report.cacheLimitBytes)) · \(report.archivesCached) archives · \
            \(report.archivesPacked) packed, \(report.archivesVerified) verified, \(report.archivesDropped) dropped since start</p>
            </section>

            """

        html += tableSection(
            id: "systems", title: "Recent systems", empty: "No system served yet.", rowClass: "system",
            headers: ["System", "Initrd", "Archives", "Cold pack", "Last served", "Served"],
            rows: activity.systems.map { system in
                [
                    "<code>\(escape(system.name))</code>", system.initrdBytes.map(bytes) ?? "–",
                    system.archives.map { "\($0)" } ?? "–", system.coldPack.map(duration) ?? "–",
                    system.lastServed.map { escape(UTCTime.readable($0)) } ?? "–", "\(system.served)",
                ]
            })
        html += tableSection(
            id: "boots", title: "Recent boots", empty: "No initrd downloaded yet.", rowClass: "boot",
            headers: ["Time (UTC)", "Client", "Rule", "System", "Bytes", "Seconds"],
            rows: activity.boots.map { boot in
                [
                    escape(UTCTime.readable(boot.time)), escape(boot.client), boot.rule.map(escape) ?? "–",
                    "<code>\(escape(boot.system))</code>", bytes(boot.bytes), PackingProgress.seconds(boot.duration),
                ]
            })

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

        html += tableSection(
            id: "errors", title: "Recent errors", empty: "None.", rowClass: "error", headers: ["Time (UTC)", "Error"],
            rows: activity.errors.map { [escape(UTCTime.readable($0.time)), escape($0.message)] })
        html += "<p class=\"meta\">Also: <a href=\"/status\">/status</a> (text, or JSON with <code>Accept: application/json</code>) · <a href=\"/healthz\">/healthz</a></p>\n</body></html>\n"
        return html
    }

    /// A section holding a table of `rows` (cells already HTML), or one line saying it is empty.
    static func tableSection(id: String, title: String, empty: String, rowClass: String, headers: [String], rows: [[String]]) -> String {
        var html = "<section id=\"\(id)\"><h2>\(title)</h2>\n"
        if rows.isEmpty {
            html += "<p class=\"none\">\(empty)</p>\n"
        } else {
            html += "<table><tr>" + headers.map { "<th>\($0)</th>" }.joined() + "</tr>\n"
            for row in rows { html += "<tr class=\"\(rowClass)\">" + row.map { "<td>\($0)</td>" }.joined() + "</tr>\n" }
            html += "</table>\n"
        }
        return html + "</section>\n"
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
