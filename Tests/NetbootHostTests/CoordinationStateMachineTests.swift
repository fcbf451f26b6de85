import NetbootHost
import XCTest

/// The keyed coordination core without I/O: sharing, queueing, bounds, abandonment.
final class CoordinationStateMachineTests: XCTestCase {
    typealias Machine = CoordinationStateMachine<String, Int>

    func testSingleFlightSharesOneJobPerKey() {
        var machine = Machine(policy: .init(maximumRunning: 4, whenAbandoned: .keepRunning))
        XCTAssertEqual(machine.arrive("a", waiter: 1), .start(1))
        XCTAssertEqual(machine.arrive("a", waiter: 2), .wait(1))
        XCTAssertEqual(machine.arrive("b", waiter: 3), .start(2))
        XCTAssertEqual(machine.finished(1), .init(waiters: [1, 2], start: []))
        XCTAssertEqual(machine.arrive("a", waiter: 4), .start(3), "a finished job is not joined")
    }

    func testOneRunningOneQueuedPerKeyThatLaterArrivalsJoin() {
        var machine = Machine(policy: .init(joining: .notYetStarted, maximumRunning: 4, whenAbandoned: .cancel))
        XCTAssertEqual(machine.arrive("a", waiter: 1), .start(1))
        XCTAssertEqual(machine.arrive("a", waiter: 2), .wait(2), "never the job that started before it")
        XCTAssertEqual(machine.arrive("a", waiter: 3), .wait(2))
        XCTAssertEqual(machine.job(2)?.phase, .held)
        XCTAssertEqual(machine.finished(1), .init(waiters: [1], start: [2]))
        XCTAssertEqual(machine.arrive("a", waiter: 4), .wait(3))
        XCTAssertEqual(machine.finished(2), .init(waiters: [2, 3], start: [3]))
        XCTAssertEqual(machine.finished(3), .init(waiters: [4], start: []))
    }

    func testANotYetStartedJobIsJoinedWhileItQueuesForASlot() {
        var machine = Machine(policy: .init(joining: .notYetStarted, maximumRunning: 1, whenAbandoned: .cancel))
        XCTAssertEqual(machine.arrive("x", waiter: 1), .start(1))
        XCTAssertEqual(machine.arrive("a", waiter: 2), .wait(2))
        XCTAssertEqual(machine.job(2)?.phase, .queued)
        XCTAssertEqual(machine.arrive("a", waiter: 3), .wait(2), "it has not started: joining it sees the newest input")
    }

    func testTheBoundOnRunningJobsAcrossKeysAndTheQueueOrder() {
        var machine = Machine(policy: .init(maximumRunning: 2, whenAbandoned: .keepRunning))
        XCTAssertEqual(machine.arrive("a", waiter: 1), .start(1))
        XCTAssertEqual(machine.arrive("b", waiter: 2), .start(2))
        XCTAssertEqual(machine.arrive("c", waiter: 3, priority: 1), .wait(3))
        XCTAssertEqual(machine.arrive("d", waiter: 4, priority: 9), .wait(4))
        XCTAssertEqual(machine.arrive("e", waiter: 5, priority: 9), .wait(5))
        XCTAssertEqual(machine.running, 2)
        XCTAssertEqual(machine.finished(1).start, [4], "highest priority first, then the older")
        XCTAssertEqual(machine.finished(2).start, [5])
        XCTAssertEqual(machine.finished(4).start, [3])
    }

    func testTheQueueIsBoundedAndRefusesBeyondIt() {
        var machine = Machine(policy: .init(maximumRunning: 1, maximumQueued: 2, whenAbandoned: .cancel))
        XCTAssertEqual(machine.arrive("a", waiter: 1), .start(1))
        XCTAssertEqual(machine.arrive("b", waiter: 2), .wait(2))
        XCTAssertEqual(machine.arrive("c", waiter: 3), .wait(3))
        XCTAssertEqual(machine.arrive("d", waiter: 4), .refused)
        XCTAssertEqual(machine.arrive("b", waiter: 5), .wait(2), "joining a queued job needs no room")
        XCTAssertEqual(machine.finished(1).start, [2])
        XCTAssertEqual(machine.arrive("d", waiter: 6), .wait(4))
    }

    func testAbandonedWorkIsCancelledOrDroppedWhenThePolicySaysSo() {
        var machine = Machine(policy: .init(maximumRunning: 1, whenAbandoned: .cancel))
        XCTAssertEqual(machine.arrive("a", waiter: 1), .start(1))
        XCTAssertEqual(machine.arrive("a", waiter: 2), .wait(1))
        XCTAssertEqual(machine.arrive("b", waiter: 3), .wait(2))
        XCTAssertEqual(machine.leave(2), .init(wasWaiting: true, cancel: nil, start: []), "one requester is left")
        XCTAssertEqual(machine.leave(3), .init(wasWaiting: true, cancel: nil, start: []), "a queued job nobody wants is dropped")
        XCTAssertNil(machine.job(2))
        XCTAssertEqual(machine.leave(1), .init(wasWaiting: true, cancel: 1, start: []))
        XCTAssertEqual(machine.job(1)?.phase, .cancelled)
        XCTAssertEqual(machine.arrive("a", waiter: 4), .wait(3), "a new job: the cancelled one still holds the slot")
        XCTAssertEqual(machine.finished(1), .init(waiters: [], start: [3]))
        XCTAssertEqual(machine.leave(99), .init(wasWaiting: false, cancel: nil, start: []))
    }

    func testAbandonedWorkGoesOnButYieldsToWantedWork() {
        var machine = Machine(policy: .init(maximumRunning: 1, whenAbandoned: .keepRunning))
        XCTAssertEqual(machine.arrive("a", waiter: 1), .start(1))
        XCTAssertEqual(machine.arrive("big", waiter: 2, priority: 100), .wait(2))
        XCTAssertEqual(machine.arrive("small", waiter: 3, priority: 1), .wait(3))
        XCTAssertEqual(machine.leave(1), .init(wasWaiting: true, cancel: nil, start: []), "the running job goes on")
        XCTAssertEqual(machine.leave(2), .init(wasWaiting: true, cancel: nil, start: []))
        XCTAssertEqual(machine.finished(1), .init(waiters: [], start: [3]), "a wanted job starts before an abandoned bigger one")
        XCTAssertEqual(machine.finished(3).start, [2], "the abandoned one still runs")
    }

    func testCancellingARunningJobLetsItsHeldSuccessorQueue() {
        var machine = Machine(policy: .init(joining: .notYetStarted, maximumRunning: 1, whenAbandoned: .cancel))
        XCTAssertEqual(machine.arrive("a", waiter: 1), .start(1))
        XCTAssertEqual(machine.arrive("a", waiter: 2), .wait(2))
        XCTAssertEqual(machine.leave(1), .init(wasWaiting: true, cancel: 1, start: []), "no free slot until job 1 ends")
        XCTAssertEqual(machine.job(2)?.phase, .queued)
        XCTAssertEqual(machine.finished(1), .init(waiters: [], start: [2]))
    }
}
