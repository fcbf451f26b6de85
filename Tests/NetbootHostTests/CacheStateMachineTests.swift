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
}
