import ConfigurationSource
import XCTest

/// The evaluation queue's bookkeeping, without Nix.
final class CoalescingQueueTests: XCTestCase {
    func testOneRunningOneQueuedLaterArrivalsJoinTheQueued() {
        var queue = CoalescingQueue<String, Int>()
        XCTAssertEqual(queue.arrive("a", waiter: 1), .start(id: 1))
        XCTAssertEqual(queue.arrive("a", waiter: 2), .wait(id: 2), "may not join the running one: it read the file earlier")
        XCTAssertEqual(queue.arrive("a", waiter: 3), .wait(id: 2))
        XCTAssertEqual(queue.arrive("b", waiter: 4), .start(id: 3), "names are independent")
        let first = queue.finished("a")
        XCTAssertEqual(first.waiters, [1])
        XCTAssertEqual(first.start, 2)
        XCTAssertEqual(queue.arrive("a", waiter: 5), .wait(id: 4), "a new queued job after the queued one started")
        let second = queue.finished("a")
        XCTAssertEqual(second.waiters, [2, 3])
        XCTAssertEqual(second.start, 4)
        XCTAssertEqual(queue.finished("a").waiters, [5])
        XCTAssertNil(queue.state("a").running)
    }

    func testCancelledWaitersAndEmptyQueuedJobs() {
        var queue = CoalescingQueue<String, Int>()
        _ = queue.arrive("a", waiter: 1)
        _ = queue.arrive("a", waiter: 2)
        XCTAssertTrue(queue.cancel("a", waiter: 2))
        XCTAssertNil(queue.state("a").queued, "nobody waits for it: dropped")
        XCTAssertTrue(queue.cancel("a", waiter: 1))
        XCTAssertNotNil(queue.state("a").running, "the running one goes on")
        XCTAssertFalse(queue.cancel("a", waiter: 1))
        let done = queue.finished("a")
        XCTAssertEqual(done.waiters, [])
        XCTAssertNil(done.start)
    }
}

/// The bounded single-flight used for builds and Hydra lookups.
final class SingleFlightTests: XCTestCase {
    func testJoinersShareOneRunAndATimeoutLeavesItRunning() async throws {
        let flight = SingleFlightProbe()
        let outcome = await flight.flight.run("k", timeout: .milliseconds(100)) { try await flight.work() }
        guard case .stillRunning = outcome else { return XCTFail("\(outcome)") }
        let value = try await flight.flight.run("k") { try await flight.work() }
        XCTAssertEqual(value, 1, "joined the run the timed-out caller started")
        let again = try await flight.flight.run("k") { try await flight.work() }
        XCTAssertEqual(again, 2, "a finished run is not reused")
    }
}

import NetbootHost

final class SingleFlightProbe: @unchecked Sendable {
    let flight = SingleFlight<String, Int>()
    private let counter = PackCounter()
    func work() async throws -> Int {
        counter.increment()
        let n = counter.value
        try await Task.sleep(for: .milliseconds(400))
        return n
    }
}
