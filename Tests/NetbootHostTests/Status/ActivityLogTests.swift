import NetbootHost
import XCTest

/// The status model's tables, without I/O: passes, systems, boots with their rule, errors, bounds.
final class ActivityLogTests: XCTestCase {
    func testAPassIsTrackedUntilItEndsAndAPassThatPackedSetsTheColdPackTime() throws {
        var log = ActivityLog()
        let start = ContinuousClock.now
        let pass = log.beginPass(system: "abc-sys", at: start)
        log.plan(pass, paths: 3, bytes: 300)
        log.finished(pass, bytes: 100)
        let running = log.runningPasses(at: start + .seconds(2))
        XCTAssertEqual(running.count, 1)
        XCTAssertEqual(running.first?.progress.donePaths, 1)
        XCTAssertEqual(running.first?.elapsed, .seconds(2))
        let ended = try XCTUnwrap(log.endPass(pass, at: start + .seconds(7)))
        XCTAssertEqual(ended.elapsed, .seconds(7))
        XCTAssertTrue(log.runningPasses(at: start).isEmpty)
        XCTAssertEqual(log.systems.first?.name, "abc-sys")
        XCTAssertEqual(log.systems.first?.coldPack, .seconds(7))
        XCTAssertNil(log.endPass(pass, at: start), "ended once")
        // A pass that packed nothing (all found cached meanwhile) leaves no cold pack time.
        let idle = log.beginPass(system: "def-sys", at: start)
        log.endPass(idle, at: start + .seconds(1))
        XCTAssertFalse(log.systems.contains { $0.name == "def-sys" })
    }

    func testSystemsAreKeptLatestServedFirstOncePerName() {
        var log = ActivityLog()
        log.served(system: "a", initrdBytes: 10, archives: 2, time: 100)
        log.served(system: "b", initrdBytes: 20, archives: 3, time: 101)
        log.served(system: "a", initrdBytes: 10, archives: 2, time: 102)
        XCTAssertEqual(log.systems.map(\.name), ["a", "b"])
        XCTAssertEqual(log.systems.first?.served, 2)
        XCTAssertEqual(log.systems.first?.lastServed, 102)
    }

    func testABootCarriesTheRuleItsClientsScriptNamedForThatSystemOnly() {
        var log = ActivityLog()
        log.noteRule(client: "10.0.0.5", system: "sys", rule: "rack-a")
        log.booted(client: "10.0.0.5", system: "sys", bytes: 5, duration: .seconds(1), time: 1)
        log.booted(client: "10.0.0.6", system: "sys", bytes: 5, duration: .seconds(1), time: 2)
        log.booted(client: "10.0.0.5", system: "other", bytes: 5, duration: .seconds(1), time: 3)
        XCTAssertEqual(log.boots.map(\.rule), [nil, nil, "rack-a"], "latest first")
        XCTAssertEqual(log.boots.map(\.time), [3, 2, 1])
    }

    func testEveryTableAndEveryTextIsBounded() {
        var limits = ActivityLog.Limits()
        (limits.passes, limits.systems, limits.boots, limits.errors, limits.ruleNotes) = (2, 3, 4, 5, 6)
        var log = ActivityLog(limits: limits)
        let now = ContinuousClock.now
        let huge = String(repeating: "x", count: 10_000)
        for index in 0..<1000 {
            _ = log.beginPass(system: "p\(index)", at: now)
            log.served(system: "s\(index)" + huge, initrdBytes: 1, archives: 1, time: index)
            log.noteRule(client: "c\(index)", system: "s", rule: huge)
            log.booted(client: huge, system: huge, bytes: 1, duration: .zero, time: index)
            log.failed("line one\nline two " + huge, time: index)
        }
        XCTAssertEqual(log.runningPasses(at: now).map(\.progress.system), ["p998", "p999"])
        XCTAssertEqual(log.systems.count, 3)
        XCTAssertEqual(log.boots.count, 4)
        XCTAssertEqual(log.errors.count, 5)
        XCTAssertEqual(log.errors.first?.time, 999)
        for text in log.systems.map(\.name) + log.boots.flatMap({ [$0.client, $0.system] }) + log.errors.map(\.message) {
            XCTAssertLessThanOrEqual(text.utf8.count, ActivityLog.maximumTextBytes)
        }
        XCTAssertFalse(log.errors.contains { $0.message.contains("\n") })
        // The oldest rule notes are forgotten: the first clients' boots carry none.
        log.booted(client: "c0", system: "s", bytes: 1, duration: .zero, time: 0)
        XCTAssertNil(log.boots.first?.rule)
        log.booted(client: "c999", system: "s", bytes: 1, duration: .zero, time: 0)
        XCTAssertNotNil(log.boots.first?.rule)
    }
}
