import NetbootHost
import ServiceLifecycle
import Synchronization
import XCTest

/// The coordinator with real tasks: sharing, deadlines, cancellation, shutdown.
final class WorkCoordinatorTests: XCTestCase {
    /// Runs `body` while `coordinator`'s service runs; stops the service afterwards.
    func withService<K, V>(_ coordinator: WorkCoordinator<K, V>, _ body: () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await coordinator.run() }
            try await body()
            group.cancelAll()
            try await group.waitForAll()
        }
    }

    func testConcurrentRequestersShareOneRun() async throws {
        let coordinator = WorkCoordinator<String, Int>(policy: .init(maximumRunning: 2, whenAbandoned: .keepRunning))
        let runs = Shared(0)
        try await withService(coordinator) {
            let results = await withTaskGroup(of: Int?.self) { group in
                for _ in 0..<20 {
                    group.addTask {
                        guard case .finished(_, .success(let value)) = await coordinator.run("k", { _ in
                            runs.withLock { $0 += 1 }
                            try await Task.sleep(for: .milliseconds(200))
                            return 42
                        }) else { return nil }
                        return value
                    }
                }
                return await group.reduce(into: [Int?]()) { $0.append($1) }
            }
            XCTAssertEqual(results, Array(repeating: 42, count: 20))
        }
        XCTAssertEqual(runs.withLock { $0 }, 1)
    }

    func testADeadlineAnswersStillRunningAndTheWorkGoesOnForTheNextRequester() async throws {
        let coordinator = WorkCoordinator<String, String>(policy: .init(maximumRunning: 1, whenAbandoned: .keepRunning))
        let runs = Shared(0)
        try await withService(coordinator) {
            let work: WorkCoordinator<String, String>.Work = { _ in
                runs.withLock { $0 += 1 }
                try await Task.sleep(for: .milliseconds(600))
                return "built"
            }
            guard case .stillRunning = await coordinator.run("k", deadline: .milliseconds(100), work) else { return XCTFail("expected a timeout") }
            guard case .finished(_, .success("built")) = await coordinator.run("k", work) else { return XCTFail("expected to join") }
        }
        XCTAssertEqual(runs.withLock { $0 }, 1, "the retry joined the running job")
    }

    func testADeadlineThatPassesBeforeTheRequesterArrivesIsNotLost() async throws {
        let coordinator = WorkCoordinator<Int, Int>(policy: .init(maximumRunning: 4, whenAbandoned: .keepRunning))
        try await withService(coordinator) {
            for key in 0..<500 {
                let outcome = await coordinator.run(key % 3, deadline: .zero, { _ in
                    try await Task.sleep(for: .seconds(30))
                    return 0
                })
                if case .finished = outcome { XCTFail("a zero deadline never waits for the job") }
            }
        }
    }

    func testAbandonedWorkIsCancelledWhenThePolicySaysSo() async throws {
        let coordinator = WorkCoordinator<String, String>(policy: .init(maximumRunning: 1, whenAbandoned: .cancel))
        let sawCancellation = Shared(false)
        try await withService(coordinator) {
            guard case .stillRunning = await coordinator.run("k", deadline: .milliseconds(100), { _ in
                do { try await Task.sleep(for: .seconds(30)) } catch { sawCancellation.withLock { $0 = true }; throw error }
                return "never"
            }) else { return XCTFail("expected a timeout") }
            // The slot frees once the cancelled job ends: a new job runs at once.
            let started = ContinuousClock.now
            guard case .finished(_, .success("next")) = await coordinator.run("other", { _ in "next" }) else { return XCTFail() }
            XCTAssertLessThan(ContinuousClock.now - started, .seconds(5))
        }
        XCTAssertTrue(sawCancellation.withLock { $0 })
    }

    func testBeyondTheQueueRequestersAreRefused() async throws {
        let coordinator = WorkCoordinator<Int, Int>(policy: .init(maximumRunning: 1, maximumQueued: 1, whenAbandoned: .cancel))
        try await withService(coordinator) {
            let outcomes = await withTaskGroup(of: String.self) { group in
                for key in 0..<5 {
                    group.addTask {
                        switch await coordinator.run(key, { _ in try await Task.sleep(for: .milliseconds(300)); return key }) {
                        case .finished: "finished"
                        case .refused: "refused"
                        case .stillRunning: "still"
                        }
                    }
                }
                return await group.reduce(into: [String]()) { $0.append($1) }
            }
            XCTAssertEqual(outcomes.filter { $0 == "finished" }.count, 2, "\(outcomes)")
            XCTAssertEqual(outcomes.filter { $0 == "refused" }.count, 3, "\(outcomes)")
        }
    }

    func testShutdownCancelsRunningJobsAndAnswersEveryone() async throws {
        let coordinator = WorkCoordinator<Int, Int>(policy: .init(maximumRunning: 1, whenAbandoned: .keepRunning))
        let service = Task { try await coordinator.run() }
        let outcomes = await withTaskGroup(of: String.self) { group in
            for key in 0..<3 {
                group.addTask {
                    switch await coordinator.run(key, { _ in try await Task.sleep(for: .seconds(60)); return key }) {
                    case .finished(_, .failure(let error)) where error is CancellationError: return "cancelled"
                    case .refused: return "refused"
                    default: return "other"
                    }
                }
            }
            try? await Task.sleep(for: .milliseconds(200))
            service.cancel()
            return await group.reduce(into: [String]()) { $0.append($1) }
        }
        try await service.value
        XCTAssertEqual(outcomes.sorted(), ["cancelled", "refused", "refused"], "the running job is cancelled, the queued ones never start")
        guard case .refused = await coordinator.run(9, { _ in 9 }) else { return XCTFail("a stopped coordinator takes no work") }
    }
}

/// A value shared by test tasks.
final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}
