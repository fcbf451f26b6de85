#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging
import Synchronization

/// The server's record of what it is doing and did lately (an ``ActivityLog`` behind a lock), fed
/// by the assembler, the routes and the error middleware, read by the status page and `/status`.
///
/// Every call is quick and synchronous, so it can be made from anywhere (an actor, a response body).
package final class ServerActivity: Sendable {
    private let log: Mutex<ActivityLog>
    private let clock = ContinuousClock()
    /// Seconds since the epoch (a test may fix it).
    private let wallClock: @Sendable () -> Int

    package init(limits: ActivityLog.Limits = .init(), wallClock: @escaping @Sendable () -> Int = { Int(time(nil)) }) {
        self.log = Mutex(ActivityLog(limits: limits))
        self.wallClock = wallClock
    }

    /// Seconds since the epoch now.
    package var now: Int { wallClock() }

    // MARK: Packing passes

    /// Starts tracking a packing pass over `system`.
    package func beginPass(system: String) -> UInt64 {
        let now = clock.now
        return log.withLock { $0.beginPass(system: system, at: now) }
    }

    /// Sets what a pass will pack.
    package func plan(_ pass: UInt64, paths: Int, bytes: UInt64) { log.withLock { $0.plan(pass, paths: paths, bytes: bytes) } }

    /// Notes one path of a pass packed.
    package func finished(_ pass: UInt64, bytes: UInt64) { log.withLock { $0.finished(pass, bytes: bytes) } }

    /// Ends a pass; returns its last progress and how long it ran.
    @discardableResult
    package func endPass(_ pass: UInt64) -> (progress: PackingProgress, elapsed: Duration)? {
        let now = clock.now
        return log.withLock { $0.endPass(pass, at: now) }
    }

    /// Logs the progress of `pass` after ``PackingProgress/firstReport`` and then every
    /// ``PackingProgress/reportInterval``, until the calling task is cancelled.
    package func reportProgress(of pass: UInt64, to logger: Logger) async {
        var wait = PackingProgress.firstReport
        while true {
            do { try await Task.sleep(for: wait) } catch { return }
            let now = clock.now
            guard let running = log.withLock({ $0.progress(pass, at: now) }) else { return }
            var metadata: Logger.Metadata = [:]
            for (key, value) in running.progress.logFields(elapsed: running.elapsed) { metadata[key] = "\(value)" }
            logger.info("packing", metadata: metadata)
            wait = PackingProgress.reportInterval
        }
    }

    // MARK: Systems, boots, errors

    /// Notes that the initrd of `system` was assembled.
    package func served(system: String, initrdBytes: UInt64, archives: Int) {
        let time = wallClock()
        log.withLock { $0.served(system: system, initrdBytes: initrdBytes, archives: archives, time: time) }
    }

    /// Notes that `client` fetched the boot script of `system` with additions named `rule`.
    package func noteRule(client: String?, system: String, rule: String) {
        log.withLock { $0.noteRule(client: client ?? "-", system: system, rule: rule) }
    }

    /// Notes that `client` downloaded the whole initrd of `system`, `duration` after asking for it.
    package func booted(client: String?, system: String, bytes: UInt64, duration: Duration) {
        let time = wallClock()
        log.withLock { $0.booted(client: client ?? "-", system: system, bytes: bytes, duration: duration, time: time) }
    }

    /// Notes a failure: a message fit for any client (no server paths).
    package func failed(_ message: String) {
        let time = wallClock()
        log.withLock { $0.failed(message, time: time) }
    }

    /// Everything for a status answer, at this moment.
    package func snapshot() -> ActivitySnapshot {
        let now = clock.now, time = wallClock()
        return log.withLock { log in
            ActivitySnapshot(time: time, passes: log.runningPasses(at: now), systems: log.systems, boots: log.boots, errors: log.errors)
        }
    }
}

/// The ``ActivityLog`` at one moment.
package struct ActivitySnapshot: Sendable {
    /// Seconds since the epoch when it was taken.
    package var time: Int
    package var passes: [(progress: PackingProgress, elapsed: Duration)]
    package var systems: [ActivityLog.System]
    package var boots: [ActivityLog.Boot]
    package var errors: [ActivityLog.Failure]

    package init(
        time: Int, passes: [(progress: PackingProgress, elapsed: Duration)] = [], systems: [ActivityLog.System] = [],
        boots: [ActivityLog.Boot] = [], errors: [ActivityLog.Failure] = []
    ) {
        self.time = time
        self.passes = passes
        self.systems = systems
        self.boots = boots
        self.errors = errors
    }
}
