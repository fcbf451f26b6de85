/// How a ``CoordinationStateMachine`` shares, bounds and drops work.
public struct CoordinationPolicy: Sendable, Equatable {
    /// Whom an arriving requester joins.
    public enum Joining: Sendable, Equatable {
        /// Single-flight: the job of the key that is queued or running, if any.
        case anyJob
        /// Never a job that already started: the key's job that has not started yet, else a new one
        /// queued behind the running one (so per key at most one runs and one waits). A requester
        /// sees what the job reads as it was when the requester arrived, or newer.
        case notYetStarted
    }

    /// What happens to a job when its last requester goes away (cancelled, or its deadline passed).
    public enum WhenAbandoned: Sendable, Equatable {
        /// It goes on (its result is wanted anyway: a cache entry, a build a retry will join); if it
        /// has not started, it starts after every job someone waits for.
        case keepRunning
        /// It is dropped if it has not started, and cancelled if it has.
        case cancel
    }

    public var joining: Joining
    /// Most jobs running at once, across all keys.
    public var maximumRunning: Int
    /// Most jobs waiting to start, across all keys; a requester that would need one more is refused.
    public var maximumQueued: Int
    public var whenAbandoned: WhenAbandoned

    public init(joining: Joining = .anyJob, maximumRunning: Int, maximumQueued: Int = .max, whenAbandoned: WhenAbandoned) {
        precondition(maximumRunning > 0 && maximumQueued >= 0)
        self.joining = joining
        self.maximumRunning = maximumRunning
        self.maximumQueued = maximumQueued
        self.whenAbandoned = whenAbandoned
    }
}

/// The bookkeeping of keyed work shared by its requesters, without any I/O.
///
/// Requesters arrive for a key; the machine says whether a new job starts, whether they wait for one,
/// or whether they are refused because too much is queued. Jobs run at most
/// ``CoordinationPolicy/maximumRunning`` at once; the others queue, the highest priority first (jobs
/// somebody waits for before abandoned ones, then by priority, then by arrival). Every mutating
/// method returns what the caller must do: start jobs, resume waiters, cancel a job. The actor that
/// owns it (``WorkCoordinator``) does the I/O.
public struct CoordinationStateMachine<Key: Hashable, Waiter: Hashable> {
    /// A job's identity. Ids grow in the order jobs are created; per key that is also the order they start.
    public typealias JobID = UInt64

    /// What an arriving requester does.
    public enum Arrival: Equatable {
        /// Start job `id` now (the requester waits for it).
        case start(JobID)
        /// Wait for job `id`, queued or running.
        case wait(JobID)
        /// Too much is queued: answer "retry later".
        case refused
    }

    /// What follows a finished job.
    public struct Completion: Equatable {
        /// The requesters to resume with the job's result.
        public var waiters: [Waiter]
        /// Jobs to start now.
        public var start: [JobID]

        public init(waiters: [Waiter], start: [JobID]) {
            self.waiters = waiters
            self.start = start
        }
    }

    /// What follows a requester going away.
    public struct Departure: Equatable {
        /// Whether it was waiting (and must be resumed with its own answer).
        public var wasWaiting: Bool
        /// A running job to cancel: nobody waits for it and the policy says so.
        public var cancel: JobID?
        /// Jobs to start now.
        public var start: [JobID]

        public init(wasWaiting: Bool, cancel: JobID?, start: [JobID]) {
            self.wasWaiting = wasWaiting
            self.cancel = cancel
            self.start = start
        }
    }

    /// Where a job is.
    public enum Phase: Equatable {
        /// Behind the running job of its key (``CoordinationPolicy/Joining/notYetStarted``).
        case held
        /// Waiting for a free slot.
        case queued
        case running
        /// Cancelled while running; it ends on its own and then frees its slot.
        case cancelled
    }

    struct Job {
        var key: Key
        var phase: Phase
        var waiters: [Waiter]
        var priority: UInt64
    }

    public let policy: CoordinationPolicy
    private var jobs: [JobID: Job] = [:]
    /// Per key, the job arrivals join first (`anyJob`: the only one; `notYetStarted`: the running or
    /// queued one) and the job held behind it.
    private var current: [Key: JobID] = [:]
    private var held: [Key: JobID] = [:]
    private var waiting: [Waiter: JobID] = [:]
    private var queue: [JobID] = []
    private var lastID: JobID = 0
    /// Jobs holding a slot (running or cancelled and not yet ended).
    public private(set) var running = 0

    public init(policy: CoordinationPolicy) { self.policy = policy }

    /// Jobs waiting to start (held or queued).
    public var queuedCount: Int { queue.count + held.count }

    /// The key and phase of job `id`, if it exists.
    public func job(_ id: JobID) -> (key: Key, phase: Phase, waiters: [Waiter])? {
        jobs[id].map { ($0.key, $0.phase, $0.waiters) }
    }

    /// The key of job `id` (it must exist).
    public func key(of id: JobID) -> Key? { jobs[id]?.key }

    /// A requester for `key`. A higher `priority` starts earlier when jobs queue.
    public mutating func arrive(_ key: Key, waiter: Waiter, priority: UInt64 = 0) -> Arrival {
        precondition(waiting[waiter] == nil, "a waiter arrives once")
        if let id = current[key], let job = jobs[id] {
            switch (policy.joining, job.phase) {
            case (.anyJob, _), (.notYetStarted, .queued):
                join(id, waiter, priority)
                return .wait(id)
            case (.notYetStarted, _):
                if let next = held[key] {
                    join(next, waiter, priority)
                    return .wait(next)
                }
                guard queuedCount < policy.maximumQueued else { return .refused }
                let id = create(key, .held, waiter, priority)
                held[key] = id
                return .wait(id)
            }
        }
        if running < policy.maximumRunning {
            let id = create(key, .running, waiter, priority)
            current[key] = id
            running += 1
            return .start(id)
        }
        guard queuedCount < policy.maximumQueued else { return .refused }
        let id = create(key, .queued, waiter, priority)
        current[key] = id
        queue.append(id)
        return .wait(id)
    }

    /// Job `id` ended (with a result, an error, or after being cancelled).
    public mutating func finished(_ id: JobID) -> Completion {
        guard let job = jobs.removeValue(forKey: id) else { preconditionFailure("finished: unknown job \(id)") }
        precondition(job.phase == .running || job.phase == .cancelled, "finished: job \(id) was not running")
        running -= 1
        for waiter in job.waiters { waiting[waiter] = nil }
        if current[job.key] == id { promoteHeld(job.key) }
        return Completion(waiters: job.waiters, start: fillSlots())
    }

    /// A requester went away (cancelled, or its deadline passed).
    public mutating func leave(_ waiter: Waiter) -> Departure {
        guard let id = waiting.removeValue(forKey: waiter), var job = jobs[id] else {
            return Departure(wasWaiting: false, cancel: nil, start: [])
        }
        job.waiters.removeAll { $0 == waiter }
        jobs[id] = job
        guard job.waiters.isEmpty, policy.whenAbandoned == .cancel else {
            return Departure(wasWaiting: true, cancel: nil, start: [])
        }
        switch job.phase {
        case .held:
            jobs[id] = nil
            held[job.key] = nil
            return Departure(wasWaiting: true, cancel: nil, start: [])
        case .queued:
            jobs[id] = nil
            queue.removeAll { $0 == id }
            promoteHeld(job.key)
            return Departure(wasWaiting: true, cancel: nil, start: fillSlots())
        case .running:
            jobs[id]?.phase = .cancelled
            promoteHeld(job.key)
            return Departure(wasWaiting: true, cancel: id, start: fillSlots())
        case .cancelled:
            return Departure(wasWaiting: true, cancel: nil, start: [])
        }
    }

    private mutating func create(_ key: Key, _ phase: Phase, _ waiter: Waiter, _ priority: UInt64) -> JobID {
        lastID += 1
        jobs[lastID] = Job(key: key, phase: phase, waiters: [waiter], priority: priority)
        waiting[waiter] = lastID
        return lastID
    }

    private mutating func join(_ id: JobID, _ waiter: Waiter, _ priority: UInt64) {
        jobs[id]?.waiters.append(waiter)
        if let known = jobs[id]?.priority, priority > known { jobs[id]?.priority = priority }
        waiting[waiter] = id
    }

    /// The key's current job is gone: the held one (if any) becomes current and queues for a slot.
    private mutating func promoteHeld(_ key: Key) {
        if let next = held.removeValue(forKey: key) {
            current[key] = next
            jobs[next]?.phase = .queued
            queue.append(next)
        } else {
            current[key] = nil
        }
    }

    /// Starts queued jobs while slots are free: wanted ones first, then by priority, then by age.
    private mutating func fillSlots() -> [JobID] {
        var started: [JobID] = []
        while running < policy.maximumRunning, let best = bestQueued() {
            let id = queue.remove(at: best)
            jobs[id]?.phase = .running
            running += 1
            started.append(id)
        }
        return started
    }

    private func bestQueued() -> Int? {
        var best: (index: Int, rank: (UInt64, UInt64, UInt64))?
        for (index, id) in queue.enumerated() {
            guard let job = jobs[id] else { continue }
            let rank: (UInt64, UInt64, UInt64) = (job.waiters.isEmpty ? 0 : 1, job.priority, JobID.max - id)
            if let known = best, rank <= known.rank { continue }
            best = (index, rank)
        }
        return best?.index
    }
}
