import ServiceLifecycle
import Synchronization

/// Runs keyed work shared by its requesters, bounded, and owned by the service lifecycle.
///
/// Requesters ask for a key with ``run(_:priority:deadline:_:)``; the decisions (share, queue, refuse,
/// cancel) are ``CoordinationStateMachine``'s, and this type carries them out. Jobs run as child tasks
/// of ``run()``, the coordinator's service: nothing runs outside it, and when the service ends
/// (graceful shutdown or cancellation) running jobs are cancelled and every requester still waiting
/// gets its answer. A requester that stops waiting (cancelled, or its deadline passed) leaves its job
/// to the policy: the job goes on, or it is cancelled once nobody waits for it.
public final class WorkCoordinator<Key: Hashable & Sendable, Value: Sendable>: Service, Sendable {
    public typealias JobID = CoordinationStateMachine<Key, UInt64>.JobID
    /// The work of a job; it gets the job's id (which grows with the order jobs of a key start).
    public typealias Work = @Sendable (JobID) async throws -> Value

    /// What a requester gets.
    public enum Outcome: Sendable {
        /// The job it waited for ended, with this result.
        case finished(job: JobID, Result<Value, any Error>)
        /// Its deadline passed (or it was cancelled) first; the job goes on or is cancelled, as the
        /// policy says.
        case stillRunning
        /// Too much work is queued, or the coordinator is shutting down; nothing was started for it.
        case refused
    }

    struct State {
        var machine: CoordinationStateMachine<Key, UInt64>
        var waiters: [UInt64: CheckedContinuation<Outcome, Never>] = [:]
        var lastWaiter: UInt64 = 0
        var works: [JobID: Work] = [:]
        /// Hooks that end a running job's wait for cancellation, once it started on the service.
        var cancellationHooks: [JobID: CheckedContinuation<Void, Never>] = [:]
        var cancelledEarly: Set<JobID> = []
        /// Requesters that left (deadline, cancellation) before they had arrived: they do not arrive.
        var departedEarly: Set<UInt64> = []
        var stopped = false
    }

    public let policy: CoordinationPolicy
    private let state: Mutex<State>
    private let starts: AsyncStream<JobID>
    private let startContinuation: AsyncStream<JobID>.Continuation

    public init(policy: CoordinationPolicy) {
        self.policy = policy
        self.state = Mutex(State(machine: CoordinationStateMachine(policy: policy)))
        (starts, startContinuation) = AsyncStream.makeStream(of: JobID.self)
    }

    /// Jobs running now, and jobs waiting to start.
    public var load: (running: Int, queued: Int) { state.withLock { ($0.machine.running, $0.machine.queuedCount) } }

    /// Joins or starts the job of `key` and waits for it, at most `deadline` if given.
    ///
    /// `work` is used only if this call creates the job. A higher `priority` starts earlier when
    /// jobs queue. Cancelling the caller ends only its own wait.
    public func run(_ key: Key, priority: UInt64 = 0, deadline: Duration? = nil, _ work: @escaping Work) async -> Outcome {
        let waiter = state.withLock { state in
            state.lastWaiter += 1
            return state.lastWaiter
        }
        defer { state.withLock { _ = $0.departedEarly.remove(waiter) } }
        guard let deadline else { return await wait(key, waiter, priority, work) }
        return await withTaskGroup(of: Outcome?.self) { group in
            group.addTask { await self.wait(key, waiter, priority, work) }
            group.addTask {
                try? await Task.sleep(for: deadline)
                return nil
            }
            var outcome: Outcome = .stillRunning
            while let next = await group.next() {
                if let answer = next {
                    outcome = answer
                    break
                }
                self.leave(waiter)  // the deadline passed: the wait returns .stillRunning (or its result, if it won)
            }
            group.cancelAll()
            return outcome
        }
    }

    private func wait(_ key: Key, _ waiter: UInt64, _ priority: UInt64, _ work: @escaping Work) async -> Outcome {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
                let start: JobID? = state.withLock { state in
                    guard !state.stopped else {
                        continuation.resume(returning: .refused)
                        return nil
                    }
                    if state.departedEarly.remove(waiter) != nil {
                        continuation.resume(returning: .stillRunning)
                        return nil
                    }
                    switch state.machine.arrive(key, waiter: waiter, priority: priority) {
                    case .refused:
                        continuation.resume(returning: .refused)
                        return nil
                    case .start(let id):
                        state.works[id] = work
                        state.waiters[waiter] = continuation
                        return id
                    case .wait(let id):
                        if state.works[id] == nil { state.works[id] = work }
                        state.waiters[waiter] = continuation
                        return nil
                    }
                }
                if let start { startContinuation.yield(start) }
                if Task.isCancelled { leave(waiter) }
            }
        } onCancel: {
            self.leave(waiter)
        }
    }

    /// The service: runs every job that starts, until shutdown; then cancels what still runs.
    public func run() async throws {
        await withDiscardingTaskGroup { group in
            await withGracefulShutdownHandler {
                for await id in starts {
                    group.addTask { await self.execute(id) }
                }
            } onGracefulShutdown: {
                self.stop()
            }
            group.cancelAll()
        }
        stop()
        // Jobs that never started get no result: their requesters are refused.
        let stranded = state.withLock { state in
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in stranded { waiter.resume(returning: .refused) }
    }

    /// Runs job `id` until it ends or is cancelled, then reports it.
    private func execute(_ id: JobID) async {
        guard let work = state.withLock({ $0.works[id] }) else { return }
        let result: Result<Value, any Error> = await withTaskGroup(of: Result<Value, any Error>?.self) { group in
            group.addTask {
                do { return .success(try await work(id)) } catch { return .failure(error) }
            }
            group.addTask {
                await self.waitForCancellation(of: id)
                return nil
            }
            var outcome: Result<Value, any Error> = .failure(CancellationError())
            if let first = await group.next(), let ended = first { outcome = ended }
            group.cancelAll()
            return outcome
        }
        finished(id, result)
    }

    /// Returns when job `id` is cancelled by the policy, or when the calling task is cancelled.
    private func waitForCancellation(of id: JobID) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state in
                    if state.cancelledEarly.remove(id) != nil { return true }
                    state.cancellationHooks[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            self.cancelJob(id)
        }
    }

    private func cancelJob(_ id: JobID) {
        let hook = state.withLock { state in
            if let hook = state.cancellationHooks.removeValue(forKey: id) { return Optional(hook) }
            state.cancelledEarly.insert(id)
            return nil
        }
        hook?.resume()
    }

    private func finished(_ id: JobID, _ result: Result<Value, any Error>) {
        let (resume, start) = state.withLock { state in
            state.works[id] = nil
            state.cancellationHooks[id] = nil
            state.cancelledEarly.remove(id)
            let completion = state.machine.finished(id)
            return (completion.waiters.compactMap { state.waiters.removeValue(forKey: $0) }, completion.start)
        }
        for waiter in resume { waiter.resume(returning: .finished(job: id, result)) }
        for next in start { startContinuation.yield(next) }
    }

    private func leave(_ waiter: UInt64) {
        let (resume, cancel, start) = state.withLock { state in
            let departure = state.machine.leave(waiter)
            // Not arrived yet (or answered already): if it arrives later, it must not wait. The entry
            // goes when its `run` returns.
            if !departure.wasWaiting { state.departedEarly.insert(waiter) }
            let resume = departure.wasWaiting ? state.waiters.removeValue(forKey: waiter) : nil
            return (resume, departure.cancel, departure.start)
        }
        resume?.resume(returning: .stillRunning)
        if let cancel { cancelJob(cancel) }
        for next in start { startContinuation.yield(next) }
    }

    /// Takes no new jobs: the service's loop ends and its group cancels what still runs.
    private func stop() {
        state.withLock { $0.stopped = true }
        startContinuation.finish()
    }
}
