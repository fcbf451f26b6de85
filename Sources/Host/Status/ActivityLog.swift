/// What the server did lately, for the status page and `/status`: the packing passes running now and
/// bounded tables of the systems served, the boots (initrds downloaded in full) and the errors.
///
/// Pure: times come from the caller (``ServerActivity`` holds one behind a lock). Every table is
/// bounded by count and every text by length, since clients choose what is asked for.
package struct ActivityLog {
    /// Bounds of the tables.
    package struct Limits: Sendable, Equatable {
        package var passes = 64
        package var systems = 32
        package var boots = 50
        package var errors = 20
        /// Scripts fetched with a source's additions, remembered per (client, system) until the boot.
        package var ruleNotes = 256
        package init() {}
    }

    /// One packing pass running now.
    package struct Pass: Sendable, Equatable {
        package var progress: PackingProgress
        package var started: ContinuousClock.Instant
    }

    /// A system whose initrd was assembled lately.
    package struct System: Sendable, Equatable {
        package var name: String
        package var initrdBytes: UInt64?
        package var archives: Int?
        /// How long its last pass that packed something took.
        package var coldPack: Duration?
        /// Seconds since the epoch.
        package var lastServed: Int?
        package var served = 0

        package init(
            name: String, initrdBytes: UInt64? = nil, archives: Int? = nil, coldPack: Duration? = nil, lastServed: Int? = nil, served: Int = 0
        ) {
            self.name = name
            self.initrdBytes = initrdBytes
            self.archives = archives
            self.coldPack = coldPack
            self.lastServed = lastServed
            self.served = served
        }
    }

    /// One initrd downloaded in full.
    package struct Boot: Sendable, Equatable {
        /// Seconds since the epoch.
        package var time: Int
        package var client: String
        /// The additions' key the machine's script named (the machine source's rule), when known.
        package var rule: String?
        package var system: String
        package var bytes: UInt64
        package var duration: Duration

        package init(time: Int, client: String, rule: String?, system: String, bytes: UInt64, duration: Duration) {
            self.time = time
            self.client = client
            self.rule = rule
            self.system = system
            self.bytes = bytes
            self.duration = duration
        }
    }

    /// One failure (already a public, one-line message).
    package struct Failure: Sendable, Equatable {
        /// Seconds since the epoch.
        package var time: Int
        package var message: String

        package init(time: Int, message: String) {
            self.time = time
            self.message = message
        }
    }

    /// Longest text kept (client-chosen names, messages), in UTF-8 bytes.
    package static let maximumTextBytes = 300

    package let limits: Limits
    private(set) var passes: [UInt64: Pass] = [:]
    private var nextPass: UInt64 = 0
    /// Latest first.
    package private(set) var systems: [System] = []
    package private(set) var boots: [Boot] = []
    package private(set) var errors: [Failure] = []
    private var ruleNotes = RecentlyUsed<String, String>(capacity: 256)

    package init(limits: Limits = Limits()) {
        self.limits = limits
        ruleNotes = RecentlyUsed(capacity: max(1, limits.ruleNotes))
    }

    // MARK: Packing passes

    /// Starts tracking a pass over `system`; returns its id. Beyond ``Limits/passes`` the oldest is
    /// forgotten (its later updates are ignored).
    package mutating func beginPass(system: String, at now: ContinuousClock.Instant) -> UInt64 {
        nextPass += 1
        passes[nextPass] = Pass(progress: PackingProgress(system: Self.bounded(system)), started: now)
        while passes.count > max(1, limits.passes), let oldest = passes.keys.min() { passes[oldest] = nil }
        return nextPass
    }

    package mutating func plan(_ pass: UInt64, paths: Int, bytes: UInt64) { passes[pass]?.progress.plan(paths: paths, bytes: bytes) }

    package mutating func finished(_ pass: UInt64, bytes: UInt64) { passes[pass]?.progress.finished(bytes: bytes) }

    /// A pass's progress and how long it has run.
    package func progress(_ pass: UInt64, at now: ContinuousClock.Instant) -> (progress: PackingProgress, elapsed: Duration)? {
        passes[pass].map { ($0.progress, now - $0.started) }
    }

    /// Ends a pass; one that packed something sets its system's cold pack time. Returns its last state.
    @discardableResult
    package mutating func endPass(_ pass: UInt64, at now: ContinuousClock.Instant) -> (progress: PackingProgress, elapsed: Duration)? {
        guard let ended = passes.removeValue(forKey: pass) else { return nil }
        let elapsed = now - ended.started
        if ended.progress.donePaths > 0 {
            updateSystem(ended.progress.system) { $0.coldPack = elapsed }
        }
        return (ended.progress, elapsed)
    }

    /// The passes running, the oldest first.
    package func runningPasses(at now: ContinuousClock.Instant) -> [(progress: PackingProgress, elapsed: Duration)] {
        passes.sorted { $0.key < $1.key }.map { ($0.value.progress, now - $0.value.started) }
    }

    // MARK: Systems, boots, errors

    /// Notes that the initrd of `system` was assembled: `bytes` long, of `archives` archives.
    package mutating func served(system: String, initrdBytes: UInt64, archives: Int, time: Int) {
        updateSystem(system) {
            $0.initrdBytes = initrdBytes
            $0.archives = archives
            $0.lastServed = time
            $0.served += 1
        }
    }

    /// Notes that `client` fetched the boot script of `system` with a source's additions named `rule`.
    package mutating func noteRule(client: String, system: String, rule: String) {
        ruleNotes.insert(Self.ruleKey(client, system), Self.bounded(rule))
    }

    /// Notes that `client` downloaded the whole initrd of `system`.
    package mutating func booted(client: String, system: String, bytes: UInt64, duration: Duration, time: Int) {
        let rule = ruleNotes.value(Self.ruleKey(client, system))
        boots.insert(Boot(time: time, client: Self.bounded(client), rule: rule, system: Self.bounded(system), bytes: bytes, duration: duration), at: 0)
        if boots.count > max(1, limits.boots) { boots.removeLast(boots.count - max(1, limits.boots)) }
    }

    /// Notes a failure (a public message; made one line and bounded here).
    package mutating func failed(_ message: String, time: Int) {
        errors.insert(Failure(time: time, message: Self.bounded(PlainTextError.oneLine(message))), at: 0)
        if errors.count > max(1, limits.errors) { errors.removeLast(errors.count - max(1, limits.errors)) }
    }

    private mutating func updateSystem(_ name: String, _ change: (inout System) -> Void) {
        let name = Self.bounded(name)
        var system = systems.firstIndex { $0.name == name }.map { systems.remove(at: $0) } ?? System(name: name)
        change(&system)
        systems.insert(system, at: 0)
        if systems.count > max(1, limits.systems) { systems.removeLast(systems.count - max(1, limits.systems)) }
    }

    private static func ruleKey(_ client: String, _ system: String) -> String { bounded(client) + "\u{0}" + bounded(system) }

    /// `text` cut to ``maximumTextBytes`` (at a character boundary, with an ellipsis).
    package static func bounded(_ text: String) -> String {
        guard text.utf8.count > maximumTextBytes else { return text }
        var cut = ""
        for character in text {
            if cut.utf8.count + character.utf8.count + 3 > maximumTextBytes { break }
            cut.append(character)
        }
        return cut + "…"
    }
}
