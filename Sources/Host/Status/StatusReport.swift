/// Everything `/status` and the status page show, gathered at one moment: the cache's counters,
/// the sources, the sources' own lines and the ``ActivitySnapshot``.
///
/// Rendered as plain text (``text``: today's lines first and verbatim, additions after them), as
/// JSON (``json``) and as HTML (``StatusPage``).
package struct StatusReport: Sendable {
    /// A boot source as configured on this server.
    package struct Source: Sendable, Equatable {
        package enum State: String, Sendable { case on, off, notConfigured = "not-configured" }
        package var name: String
        package var state: State
        /// Why it is not configured (its public reason), when it is not.
        package var reason: String?

        package init(name: String, state: State, reason: String? = nil) {
            self.name = name
            self.state = state
            self.reason = reason
        }
    }

    package var codec: String
    package var level: Int
    /// `--jobs`: cores packing at once.
    package var jobs: Int
    package var archivesPacked: Int
    package var archivesCached: Int
    package var cacheBytes: UInt64
    package var cacheLimitBytes: UInt64
    package var archivesVerified: Int
    package var archivesDropped: Int
    package var packingsRunning: Int
    package var packingsQueued: Int
    package var sources: [Source]
    /// The sources' own `/status` lines, one line each.
    package var sourceLines: [String]
    package var activity: ActivitySnapshot

    package init(
        codec: String, level: Int, jobs: Int, archivesPacked: Int, archivesCached: Int, cacheBytes: UInt64, cacheLimitBytes: UInt64,
        archivesVerified: Int, archivesDropped: Int, packingsRunning: Int, packingsQueued: Int, sources: [Source],
        sourceLines: [String], activity: ActivitySnapshot
    ) {
        self.codec = codec
        self.level = level
        self.jobs = jobs
        self.archivesPacked = archivesPacked
        self.archivesCached = archivesCached
        self.cacheBytes = cacheBytes
        self.cacheLimitBytes = cacheLimitBytes
        self.archivesVerified = archivesVerified
        self.archivesDropped = archivesDropped
        self.packingsRunning = packingsRunning
        self.packingsQueued = packingsQueued
        self.sources = sources
        self.sourceLines = sourceLines
        self.activity = activity
    }

    /// The plain-text `/status`: the four lines scripts parse, the sources' lines, then the additions
    /// (one record per line, fields separated by spaces; absent values are `-`).
    package var text: String {
        var lines = [
            "codec \(codec) level \(level)",
            "archives-packed \(archivesPacked)",
            "archives-cached \(archivesCached)",
            "cache-bytes \(cacheBytes)",
        ]
        lines += sourceLines.map(PlainTextError.oneLine)
        lines += [
            "cache-limit-bytes \(cacheLimitBytes)",
            "archives-verified \(archivesVerified)",
            "archives-dropped \(archivesDropped)",
            "jobs \(jobs)",
            "packings-running \(packingsRunning)",
            "packings-queued \(packingsQueued)",
        ]
        for (progress, elapsed) in activity.passes {
            lines.append(
                "packing \(progress.system) paths \(progress.donePaths)/\(progress.totalPaths) bytes \(progress.doneBytes)/\(progress.totalBytes)"
                    + " elapsed-seconds \(PackingProgress.seconds(elapsed)) remaining-seconds \(progress.remaining(after: elapsed).map(PackingProgress.seconds) ?? "-")")
        }
        for system in activity.systems {
            lines.append(
                "system \(system.name) initrd-bytes \(system.initrdBytes.map { "\($0)" } ?? "-") archives \(system.archives.map { "\($0)" } ?? "-")"
                    + " cold-pack-seconds \(system.coldPack.map(PackingProgress.seconds) ?? "-") last-served \(system.lastServed.map(UTCTime.iso8601) ?? "-")")
        }
        for boot in activity.boots {
            lines.append(
                "boot \(UTCTime.iso8601(boot.time)) client \(Self.word(boot.client)) rule \(boot.rule.map(Self.word) ?? "-") system \(boot.system)"
                    + " bytes \(boot.bytes) seconds \(PackingProgress.seconds(boot.duration))")
        }
        for source in sources { lines.append("source \(source.name) \(source.state.rawValue)") }
        for failure in activity.errors { lines.append("error \(UTCTime.iso8601(failure.time)) \(PlainTextError.oneLine(failure.message))") }
        return lines.map { $0 + "\n" }.joined()
    }

    /// A value as one space-free word of a text line.
    static func word(_ text: String) -> String {
        let cleaned = PlainTextError.oneLine(text).replacingOccurrences(of: " ", with: "_")
        return cleaned.isEmpty ? "-" : cleaned
    }

    /// The same data as JSON (an object; keys in snake case, times in ISO 8601 UTC, durations in
    /// seconds, absent values `null`).
    package var json: String {
        var object = JSONText.Object()
        object["codec"] = .string(codec)
        object["level"] = .int(Int64(level))
        object["archives_packed"] = .int(Int64(archivesPacked))
        object["archives_cached"] = .int(Int64(archivesCached))
        object["cache_bytes"] = .uint(cacheBytes)
        object["cache_limit_bytes"] = .uint(cacheLimitBytes)
        object["archives_verified"] = .int(Int64(archivesVerified))
        object["archives_dropped"] = .int(Int64(archivesDropped))
        object["jobs"] = .int(Int64(jobs))
        object["packings_running"] = .int(Int64(packingsRunning))
        object["packings_queued"] = .int(Int64(packingsQueued))
        object["time"] = .string(UTCTime.iso8601(activity.time))
        object["packing"] = .array(activity.passes.map { (running) -> JSONText in
            let (progress, elapsed) = running
            var pass = JSONText.Object()
            pass["system"] = .string(progress.system)
            pass["paths_done"] = .int(Int64(progress.donePaths))
            pass["paths_total"] = .int(Int64(progress.totalPaths))
            pass["bytes_done"] = .uint(progress.doneBytes)
            pass["bytes_total"] = .uint(progress.totalBytes)
            pass["elapsed_seconds"] = .number(elapsed.inSeconds)
            pass["remaining_seconds"] = progress.remaining(after: elapsed).map { JSONText.number($0.inSeconds) } ?? .null
            return .object(pass)
        })
        object["systems"] = .array(activity.systems.map { (system) -> JSONText in
            var entry = JSONText.Object()
            entry["name"] = .string(system.name)
            entry["initrd_bytes"] = system.initrdBytes.map { JSONText.uint($0) } ?? .null
            entry["archives"] = system.archives.map { JSONText.int(Int64($0)) } ?? .null
            entry["cold_pack_seconds"] = system.coldPack.map { JSONText.number($0.inSeconds) } ?? .null
            entry["last_served"] = system.lastServed.map { JSONText.string(UTCTime.iso8601($0)) } ?? .null
            entry["served"] = .int(Int64(system.served))
            return .object(entry)
        })
        object["boots"] = .array(activity.boots.map { (boot) -> JSONText in
            var entry = JSONText.Object()
            entry["time"] = .string(UTCTime.iso8601(boot.time))
            entry["client"] = .string(boot.client)
            entry["rule"] = boot.rule.map { JSONText.string($0) } ?? .null
            entry["system"] = .string(boot.system)
            entry["bytes"] = .uint(boot.bytes)
            entry["seconds"] = .number(boot.duration.inSeconds)
            return .object(entry)
        })
        object["errors"] = .array(activity.errors.map { (failure) -> JSONText in
            var entry = JSONText.Object()
            entry["time"] = .string(UTCTime.iso8601(failure.time))
            entry["message"] = .string(failure.message)
            return .object(entry)
        })
        object["sources"] = .array(sources.map { (source) -> JSONText in
            var entry = JSONText.Object()
            entry["name"] = .string(source.name)
            entry["state"] = .string(source.state.rawValue)
            entry["reason"] = source.reason.map { JSONText.string($0) } ?? .null
            return .object(entry)
        })
        object["source_lines"] = .array(sourceLines.map { JSONText.string($0) })
        return JSONText.object(object).rendered + "\n"
    }
}

extension String {
    /// This string with every `target` character replaced by `replacement`.
    func replacingOccurrences(of target: Character, with replacement: String) -> String {
        Substring(self).replacingOccurrences(of: target, with: replacement)
    }
}
