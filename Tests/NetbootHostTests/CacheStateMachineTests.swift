import NetbootHost
import XCTest

/// The cache's bookkeeping, without a disk.
final class CacheStateMachineTests: XCTestCase {
    typealias Machine = CacheStateMachine<String, Int>

    func testFirstRequesterPacksOthersWait() {
        var machine = Machine(capacity: 100, maximumConcurrentPackings: 2)
        XCTAssertEqual(machine.acquire("a", waiter: 1), .wait(startPacking: true))
        XCTAssertEqual(machine.acquire("a", waiter: 2), .wait(startPacking: false))
        XCTAssertEqual(machine.acquire("a", waiter: 3), .wait(startPacking: false))
        let done = machine.packingSucceeded("a", size: 10)
        XCTAssertEqual(done.waiters, [1, 2, 3])
        XCTAssertEqual(machine.entry("a")?.pins, 3)
        XCTAssertEqual(machine.acquire("a", waiter: 4), .ready(size: 10))
        XCTAssertEqual(machine.entry("a")?.pins, 4)
    }

    func testPackingsAreBoundedAndQueuedInOrder() {
        var machine = Machine(capacity: 1000, maximumConcurrentPackings: 2)
        XCTAssertEqual(machine.acquire("a", waiter: 1), .wait(startPacking: true))
        XCTAssertEqual(machine.acquire("b", waiter: 2), .wait(startPacking: true))
        XCTAssertEqual(machine.acquire("c", waiter: 3), .wait(startPacking: false))
        XCTAssertEqual(machine.acquire("d", waiter: 4), .wait(startPacking: false))
        XCTAssertEqual(machine.runningPackings, 2)
        XCTAssertEqual(machine.packingSucceeded("b", size: 1).start, ["c"])
        XCTAssertEqual(machine.packingFailed("a").start, ["d"])
        XCTAssertEqual(machine.runningPackings, 2)
        XCTAssertNil(machine.entry("a"), "a failed packing leaves nothing cached")
        XCTAssertEqual(machine.acquire("a", waiter: 5), .wait(startPacking: false), "full again: a waits in the queue")
    }

    func testCancelledWaiterLeavesThePackingToTheOthers() {
        var machine = Machine(capacity: 100, maximumConcurrentPackings: 1)
        _ = machine.acquire("a", waiter: 1)
        _ = machine.acquire("a", waiter: 2)
        XCTAssertTrue(machine.cancel("a", waiter: 1))
        XCTAssertFalse(machine.cancel("a", waiter: 1), "only once")
        let done = machine.packingSucceeded("a", size: 5)
        XCTAssertEqual(done.waiters, [2])
        XCTAssertEqual(machine.entry("a")?.pins, 1)
    }

    func testPackingWithEveryWaiterGoneStillCompletesIntoTheCache() {
        var machine = Machine(capacity: 100, maximumConcurrentPackings: 1)
        _ = machine.acquire("a", waiter: 1)
        XCTAssertTrue(machine.cancel("a", waiter: 1))
        XCTAssertEqual(machine.packingSucceeded("a", size: 5).waiters, [])
        XCTAssertEqual(machine.entry("a")?.size, 5)
        XCTAssertEqual(machine.entry("a")?.pins, 0)
    }

    func testQueuedKeyThatNobodyWantsIsDropped() {
        var machine = Machine(capacity: 100, maximumConcurrentPackings: 1)
        _ = machine.acquire("a", waiter: 1)
        _ = machine.acquire("b", waiter: 2)
        XCTAssertTrue(machine.cancel("b", waiter: 2))
        XCTAssertEqual(machine.packingSucceeded("a", size: 1).start, [], "b is not packed for nobody")
        XCTAssertEqual(machine.acquire("b", waiter: 3), .wait(startPacking: true))
    }

    func testLeastRecentlyUsedIsEvictedFirstByBytes() {
        var machine = Machine(capacity: 30, maximumConcurrentPackings: 4)
        for (key, waiter) in [("a", 1), ("b", 2), ("c", 3)] {
            _ = machine.acquire(key, waiter: waiter)
            _ = machine.packingSucceeded(key, size: 10)
            XCTAssertEqual(machine.release(key), [])
        }
        XCTAssertEqual(machine.pinIfReady("a"), 10)  // a is now the most recent
        XCTAssertEqual(machine.release("a"), [])
        _ = machine.acquire("d", waiter: 4)
        let done = machine.packingSucceeded("d", size: 15)
        XCTAssertEqual(done.evict, ["b", "c"], "oldest first, until under the limit")
        XCTAssertEqual(machine.totalBytes, 25)
    }

    func testPinnedEntriesAreNeverEvictedAndTrimmedAfterRelease() {
        var machine = Machine(capacity: 10, maximumConcurrentPackings: 4)
        for (key, waiter) in [("a", 1), ("b", 2), ("c", 3)] {
            _ = machine.acquire(key, waiter: waiter)
            XCTAssertEqual(machine.packingSucceeded(key, size: 8).evict, [], "pinned by the in-flight initrd")
        }
        XCTAssertEqual(machine.totalBytes, 24)
        XCTAssertEqual(machine.overshoot, 14)
        XCTAssertEqual(machine.release("a"), ["a"])
        XCTAssertEqual(machine.release("b"), ["b"])
        XCTAssertEqual(machine.release("c"), [], "c alone fits")
        XCTAssertEqual(machine.overshoot, 0)
    }

    func testAdoptedEntriesKeepTheirOrderAndRespectTheLimit() {
        var machine = Machine(capacity: 20, maximumConcurrentPackings: 1)
        XCTAssertEqual(machine.adopt("old", size: 10), [])
        XCTAssertEqual(machine.adopt("mid", size: 10), [])
        XCTAssertEqual(machine.adopt("new", size: 10), ["old"])
        XCTAssertEqual(machine.count, 2)
    }
}

extension CacheStateMachineTests {
    func testQueuedPackingsStartLargestFirst() {
        var machine = Machine(capacity: 1000, maximumConcurrentPackings: 1)
        XCTAssertEqual(machine.acquire("first", waiter: 1, priority: 1), .wait(startPacking: true))
        _ = machine.acquire("small", waiter: 2, priority: 10)
        _ = machine.acquire("large", waiter: 3, priority: 500)
        _ = machine.acquire("medium", waiter: 4, priority: 100)
        _ = machine.acquire("medium-later", waiter: 5, priority: 100)
        XCTAssertEqual(machine.packingSucceeded("first", size: 1).start, ["large"])
        XCTAssertEqual(machine.packingSucceeded("large", size: 1).start, ["medium"], "equal priorities in arrival order")
        XCTAssertEqual(machine.packingSucceeded("medium", size: 1).start, ["medium-later"])
        XCTAssertEqual(machine.packingSucceeded("medium-later", size: 1).start, ["small"])
    }

    func testAdoptedEntriesAreNeverPinnedBeforeTheyAreVerified() {
        var machine = Machine(capacity: 100, maximumConcurrentPackings: 1)
        _ = machine.adopt("a", size: 10)
        XCTAssertNil(machine.pinIfReady("a"), "unverified")
        XCTAssertEqual(machine.acquire("a", waiter: 1), .verify)
        XCTAssertEqual(machine.beginVerification("a"), 10)
        XCTAssertNil(machine.beginVerification("a"), "one verification at a time")
        XCTAssertTrue(machine.isVerifying("a"))
        XCTAssertEqual(machine.acquire("a", waiter: 2), .verify, "still unproven while being read")
        XCTAssertEqual(machine.count, 1)
        XCTAssertEqual(machine.totalBytes, 10)
        machine.verificationSucceeded("a")
        XCTAssertEqual(machine.pinIfReady("a"), 10)
        XCTAssertEqual(machine.entry("a")?.verified, true)
        XCTAssertNil(machine.beginVerification("a"), "verified once per process")
    }

    func testAFailedVerificationForgetsTheEntryAndTheNextRequestPacks() {
        var machine = Machine(capacity: 100, maximumConcurrentPackings: 1)
        _ = machine.adopt("a", size: 10)
        XCTAssertEqual(machine.beginVerification("a"), 10)
        machine.verificationFailed("a")
        XCTAssertNil(machine.entry("a"))
        XCTAssertEqual(machine.totalBytes, 0)
        XCTAssertEqual(machine.acquire("a", waiter: 1), .wait(startPacking: true))
        XCTAssertEqual(machine.packingSucceeded("a", size: 10).waiters, [1])
        XCTAssertEqual(machine.entry("a")?.verified, true, "what this process wrote is trusted")
    }

    func testUnverifiedEntriesAreEvictable() {
        var machine = Machine(capacity: 15, maximumConcurrentPackings: 1)
        _ = machine.adopt("a", size: 10)
        XCTAssertEqual(machine.adopt("b", size: 10), ["a"])
    }

    func testADroppedPinnedEntryKeepsANewerEntryPinnedUntilEveryOldPinIsBack() {
        var machine = Machine(capacity: 10, maximumConcurrentPackings: 1)
        _ = machine.acquire("a", waiter: 1)
        _ = machine.acquire("a", waiter: 2)
        _ = machine.packingSucceeded("a", size: 5)  // two pins
        XCTAssertTrue(machine.drop("a"))
        XCTAssertFalse(machine.drop("a"))
        XCTAssertEqual(machine.totalBytes, 0)
        XCTAssertEqual(machine.count, 0)
        XCTAssertEqual(machine.acquire("a", waiter: 3), .wait(startPacking: true))
        _ = machine.packingSucceeded("a", size: 8)  // the new entry, pinned by 3
        XCTAssertEqual(machine.release("a"), [])  // an old pin
        XCTAssertEqual(machine.entry("a")?.pins, 1)
        XCTAssertEqual(machine.release("a"), [])  // the other old pin
        XCTAssertEqual(machine.entry("a")?.pins, 1, "the new entry is still pinned by 3")
        _ = machine.acquire("b", waiter: 4)
        XCTAssertEqual(machine.packingSucceeded("b", size: 5).evict, [], "a is pinned: over the limit for now")
        XCTAssertEqual(machine.release("a"), ["a"], "3 is done: a is least recently used")
    }

    func testFailQueuedStopsWhatHasNotStarted() {
        var machine = Machine(capacity: 100, maximumConcurrentPackings: 1)
        _ = machine.acquire("a", waiter: 1)
        _ = machine.acquire("b", waiter: 2)
        _ = machine.acquire("c", waiter: 3)
        _ = machine.acquire("c", waiter: 4)
        let stopped = machine.failQueued()
        XCTAssertEqual(Set(stopped.keys), ["b", "c"])
        XCTAssertEqual(Set(stopped.waiters), [2, 3, 4])
        XCTAssertEqual(machine.packingFailed("a").start, [], "nothing queued is started")
        XCTAssertEqual(machine.runningPackings, 0)
        XCTAssertEqual(machine.acquire("b", waiter: 5), .wait(startPacking: true), "a later request packs again")
    }

    func testEvictUnpinnedFreesLeastRecentlyUsedFirstAndNeverAPinnedEntry() {
        var machine = Machine(capacity: 1000, maximumConcurrentPackings: 1)
        for (key, waiter) in [("a", 1), ("b", 2), ("c", 3)] {
            _ = machine.acquire(key, waiter: waiter)
            _ = machine.packingSucceeded(key, size: 10)
        }
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
