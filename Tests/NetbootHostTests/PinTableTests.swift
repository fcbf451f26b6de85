import NetbootHost
import XCTest

/// The pin bookkeeping without I/O: one root per path, expiry pushed by each dispatch, a cap.
final class PinTableTests: XCTestCase {
    func testTheFirstDispatchCreatesLaterOnesOnlyExtend() {
        var table = PinTable<String>(lifetime: 100, capacity: 10)
        XCTAssertEqual(table.dispatch("a", now: 0), .create(evict: []))
        XCTAssertEqual(table.dispatch("a", now: 0), .wait, "a second dispatch while the root is made waits for it")
        table.creationEnded("a", succeeded: true, now: 1)
        XCTAssertEqual(table.dispatch("a", now: 1), .extended(persist: false), "same second: nothing to write")
        XCTAssertEqual(table.dispatch("a", now: 50), .extended(persist: true))
        XCTAssertEqual(table.dispatch("a", now: 50), .extended(persist: false))
        XCTAssertEqual(table.entry("a"), .pinned(lastUse: 50, persisted: 50))
        XCTAssertTrue(table.isPinned("a", now: 149))
        XCTAssertFalse(table.isPinned("a", now: 150))
    }

    func testAPinExpiresALifetimeAfterItsLastUse() {
        var table = PinTable<String>(lifetime: 100, capacity: 10)
        _ = table.dispatch("a", now: 0)
        table.creationEnded("a", succeeded: true, now: 0)
        _ = table.dispatch("a", now: 90)
        XCTAssertEqual(table.sweep(now: 150), [], "pushed forward by the dispatch at 90")
        XCTAssertEqual(table.sweep(now: 190), ["a"])
        XCTAssertNil(table.entry("a"))
        XCTAssertEqual(table.dispatch("a", now: 191), .create(evict: []), "an expired pin is made again")
    }

    func testAnExpiredButUnsweptPinIsMadeAgain() {
        var table = PinTable<String>(lifetime: 10, capacity: 10)
        _ = table.dispatch("a", now: 0)
        table.creationEnded("a", succeeded: true, now: 0)
        XCTAssertEqual(table.dispatch("a", now: 10), .create(evict: []))
    }

    func testAFailedCreationLeavesNoPin() {
        var table = PinTable<String>(lifetime: 10, capacity: 10)
        _ = table.dispatch("a", now: 0)
        table.creationEnded("a", succeeded: false, now: 0)
        XCTAssertNil(table.entry("a"))
        XCTAssertEqual(table.dispatch("a", now: 0), .create(evict: []))
    }

    func testTheCapReleasesTheLeastRecentlyUsedButNeverOneBeingMade() {
        var table = PinTable<String>(lifetime: 1000, capacity: 2)
        _ = table.dispatch("a", now: 0)
        table.creationEnded("a", succeeded: true, now: 0)
        _ = table.dispatch("b", now: 1)  // still being made
        _ = table.dispatch("a", now: 2)
        XCTAssertEqual(table.dispatch("c", now: 3), .create(evict: ["a"]), "b is being made: a goes though it is newer")
        table.creationEnded("b", succeeded: true, now: 4)
        table.creationEnded("c", succeeded: true, now: 4)
        _ = table.dispatch("b", now: 5)
        XCTAssertEqual(table.dispatch("d", now: 6), .create(evict: ["c"]))
        XCTAssertEqual(table.count, 2)
    }

    func testAdoptionAtStartUp() {
        var table = PinTable<String>(lifetime: 100, capacity: 2)
        XCTAssertEqual(table.adopt("old", lastUse: 0, now: 100), ["old"], "expired: its root goes")
        XCTAssertEqual(table.adopt("a", lastUse: 10, now: 100), [])
        XCTAssertEqual(table.adopt("b", lastUse: 20, now: 100), [])
        XCTAssertEqual(table.adopt("c", lastUse: 30, now: 100), ["a"], "beyond the cap the oldest goes")
        XCTAssertEqual(table.dispatch("b", now: 100), .extended(persist: true))
        XCTAssertEqual(table.sweep(now: 130), ["c"])
    }
}
