import NetbootKit

/// What a lookup found: the `out` path of a job's latest build, and how to name that build.
struct HydraLookup: Sendable {
    var path: StorePath
    /// `build ID of JOB`, for reasons shown to the machine.
    var buildName: String
}

/// The key of a realise: a job's build path, rooted under the job's GC root.
struct HydraRealisation: Hashable, Sendable {
    var job: HydraJob
    var path: StorePath
}
