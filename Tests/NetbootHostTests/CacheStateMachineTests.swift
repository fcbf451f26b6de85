import NetbootHost
import XCTest

/// The cache's bookkeeping, without a disk.
final class CacheStateMachineTests: XCTestCase {
    typealias Machine = CacheStateMachine<String>

    /// A packing of `key` that `waiters` waited for, each settling with a pin.
    func packed(_ machine: inout Machine, _ key: String, size: UInt64, waiters: Int = 1) -> [String] {
        for _ in 0..<waiters { XCTAssertEqual(machine.acquire(key), .pack) }
        var evicted = machine.packingSucceeded(key, size: size)
        for _ in 0..<waiters { evicted += machine.settle(key, pin: true).evict }
        return evicted
    }

    func testEveryRequesterOfAPackingIsPinnedWhenItSettles() {
        var machine = Machine(capacity: 100)
        XCTAssertEqual(machine.acquire("a"), .pack)
        XCTAssertEqual(machine.acquire("a"), .pack)
        XCTAssertEqual(machine.acquire("a"), .pack)
        XCTAssertEqual(machine.waiting(for: "a"), 3)
        XCTAssertEqual(machine.packingSucceeded("a", size: 10), [])
        XCTAssertEqual(machine.settle("a", pin: true).size, 10)
        XCTAssertEqual(machine.settle("a", pin: true).size, 10)
        XCTAssertEqual(machine.settle("a", pin: false).size, nil, "one gave up")
        XCTAssertEqual(machine.entry("a")?.pins, 2)
        XCTAssertEqual(machine.waiting(for: "a"), 0)
        XCTAssertEqual(machine.acquire("a"), .ready(size: 10))
        XCTAssertEqual(machine.entry("a")?.pins, 3)
    }

    func testAPackedEntryIsKeptForItsRequestersUntilTheySettleEvenOverTheLimit() {
        var machine = Machine(capacity: 10)
        XCTAssertEqual(packed(&machine, "old", size: 8), [])
        XCTAssertEqual(machine.release("old"), [])
        XCTAssertEqual(machine.acquire("new"), .pack)
        XCTAssertEqual(machine.packingSucceeded("new", size: 9), ["old"], "the old one goes, the new one is wanted")
        XCTAssertEqual(machine.entry("new")?.pins, 0)
        XCTAssertEqual(machine.evictUnpinned(atLeast: 100), [], "not even to make room: somebody waits for it")
        XCTAssertEqual(machine.settle("new", pin: true).size, 9)
    }

    func testAPackingWithEveryRequesterGoneStillCompletesIntoTheCache() {
        var machine = Machine(capacity: 100)
        XCTAssertEqual(machine.acquire("a"), .pack)
        XCTAssertEqual(machine.settle("a", pin: false).size, nil)
        XCTAssertEqual(machine.packingSucceeded("a", size: 5), [])
        XCTAssertEqual(machine.entry("a")?.size, 5)
        XCTAssertEqual(machine.entry("a")?.pins, 0)
    }

    func testAFailedPackingLeavesNothingAndTheNextRequestPacks() {
        var machine = Machine(capacity: 100)
        XCTAssertEqual(machine.acquire("a"), .pack)
        XCTAssertEqual(machine.settle("a", pin: true).size, nil, "nothing on disk")
        XCTAssertNil(machine.entry("a"))
        XCTAssertEqual(machine.acquire("a"), .pack)
    }

    func testLeastRecentlyUsedIsEvictedFirstByBytes() {
        var machine = Machine(capacity: 30)
        for key in ["a", "b", "c"] {
            _ = packed(&machine, key, size: 10)
            XCTAssertEqual(machine.release(key), [])
        }
        XCTAssertEqual(machine.pinIfReady("a"), 10)  // a is now the most recent
        XCTAssertEqual(machine.release("a"), [])
        XCTAssertEqual(packed(&machine, "d", size: 15), ["b", "c"], "oldest first, until under the limit")
        XCTAssertEqual(machine.totalBytes, 25)
    }

    func testPinnedEntriesAreNeverEvictedAndTrimmedAfterRelease() {
        var machine = Machine(capacity: 10)
        for key in ["a", "b", "c"] {
            XCTAssertEqual(packed(&machine, key, size: 8), [], "pinned by the in-flight initrd")
        }
        XCTAssertEqual(machine.totalBytes, 24)
        XCTAssertEqual(machine.overshoot, 14)
        XCTAssertEqual(machine.release("a"), ["a"])
        XCTAssertEqual(machine.release("b"), ["b"])
        XCTAssertEqual(machine.release("c"), [], "c alone fits")
        XCTAssertEqual(machine.overshoot, 0)
    }

    func testAdoptedEntriesKeepTheirOrderAndRespectTheLimit() {
        var machine = Machine(capacity: 20)
        XCTAssertEqual(machine.adopt("old", size: 10), [])
        XCTAssertEqual(machine.adopt("mid", size: 10), [])
        XCTAssertEqual(machine.adopt("new", size: 10), ["old"])
        XCTAssertEqual(machine.count, 2)
    }
}

extension CacheStateMachineTests {
    func testAdoptedEntriesAreNeverPinnedBeforeTheyAreVerified() {
        var machine = Machine(capacity: 100)
        _ = machine.adopt("a", size: 10)
        XCTAssertNil(machine.pinIfReady("a"), "unverified")
        XCTAssertEqual(machine.acquire("a"), .verify)
        XCTAssertEqual(machine.beginVerification("a"), 10)
        XCTAssertNil(machine.beginVerification("a"), "one verification at a time")
        XCTAssertTrue(machine.isVerifying("a"))
        XCTAssertEqual(machine.acquire("a"), .verify, "still unproven while being read")
        XCTAssertEqual(machine.count, 1)
        XCTAssertEqual(machine.totalBytes, 10)
        machine.verificationSucceeded("a")
        XCTAssertEqual(machine.pinIfReady("a"), 10)
        XCTAssertEqual(machine.entry("a")?.verified, true)
        XCTAssertNil(machine.beginVerification("a"), "verified once per process")
    }

    func testAFailedVerificationForgetsTheEntryAndTheNextRequestPacks() {
        var machine = Machine(capacity: 100)
        _ = machine.adopt("a", size: 10)
        XCTAssertEqual(machine.beginVerification("a"), 10)
        machine.verificationFailed("a")
        XCTAssertNil(machine.entry("a"))
        XCTAssertEqual(machine.totalBytes, 0)
        XCTAssertEqual(packed(&machine, "a", size: 10), [])
        XCTAssertEqual(machine.entry("a")?.verified, true, "what this process wrote is trusted")
    }

    func testAnAbandonedVerificationLeavesTheEntryUnverified() {
        var machine = Machine(capacity: 100)
        _ = machine.adopt("a", size: 10)
        XCTAssertEqual(machine.beginVerification("a"), 10)
        machine.verificationAbandoned("a")
        XCTAssertEqual(machine.entry("a")?.verified, false)
        XCTAssertTrue(machine.needsVerification("a"))
        XCTAssertEqual(machine.beginVerification("a"), 10, "verified at the next use")
    }

    func testUnverifiedEntriesAreEvictable() {
        var machine = Machine(capacity: 15)
        _ = machine.adopt("a", size: 10)
        XCTAssertEqual(machine.adopt("b", size: 10), ["a"])
    }

    func testADroppedPinnedEntryKeepsANewerEntryPinnedUntilEveryOldPinIsBack() {
        var machine = Machine(capacity: 10)
        _ = packed(&machine, "a", size: 5, waiters: 2)  // two pins
        XCTAssertTrue(machine.drop("a"))
        XCTAssertFalse(machine.drop("a"))
        XCTAssertEqual(machine.totalBytes, 0)
        XCTAssertEqual(machine.count, 0)
        _ = packed(&machine, "a", size: 8)  // the new entry, pinned by a third requester
        XCTAssertEqual(machine.release("a"), [])  // an old pin
        XCTAssertEqual(machine.entry("a")?.pins, 1)
        XCTAssertEqual(machine.release("a"), [])  // the other old pin
        XCTAssertEqual(machine.entry("a")?.pins, 1, "the new entry is still pinned by 3")
        XCTAssertEqual(packed(&machine, "b", size: 5), [], "a is pinned: over the limit for now")
        XCTAssertEqual(machine.release("a"), ["a"], "3 is done: a is least recently used")
    }

    func testEvictUnpinnedFreesLeastRecentlyUsedFirstAndNeverAPinnedEntry() {
        var machine = Machine(capacity: 1000)
        for key in ["a", "b", "c"] { _ = packed(&machine, key, size: 10) }
        _ = machine.release("b")
        _ = machine.release("c")
        _ = machine.pinIfReady("b")
        _ = machine.release("b")  // b is now more recent than c
        XCTAssertEqual(machine.unpinnedBytes, 20, "a is pinned")
        XCTAssertEqual(machine.evictUnpinned(atLeast: 5), ["c"])
        XCTAssertEqual(machine.evictUnpinned(atLeast: 100), ["b"])
        XCTAssertEqual(machine.evictUnpinned(atLeast: 100), [])
        XCTAssertEqual(machine.totalBytes, 10)
    }
}
