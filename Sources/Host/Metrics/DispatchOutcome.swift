/// How a request to `/dispatch/SOURCE/…` ended, as the `outcome` label of `nns_dispatches_total`.
package enum DispatchOutcome: String, Sendable, CaseIterable {
    /// 302 to the system's boot script.
    case redirect
    /// 503 with `Retry-After`: still evaluating, building or fetching.
    case retryLater = "retry_later"
    /// The retry script with a reason: the evaluation or build failed, or the path is no bootable system.
    case failed
    /// The retry script without a failure: nothing to boot yet (e.g. no machine rule matches).
    case waiting
    /// A 4xx: no such source, turned off, a bad segment or query, or the source refused.
    case refused
    /// A 5xx: the server failed (pinning, a source's broken answer).
    case error

    /// The outcome of an answer with `status`: a 2xx is the retry script of a failure (the caller
    /// knows when it is ``waiting``).
    package init(status: Int) {
        switch status {
        case 503: self = .retryLater
        case 500...: self = .error
        case 400..<500: self = .refused
        case 300..<400: self = .redirect
        default: self = .failed
        }
    }
}
