/// How a fetch of a missing store path ended (`--realise-missing`), as the
/// `nns_missing_path_fetches_total` metric labels it.
package enum MissingPathFetchOutcome: String, Sendable, CaseIterable {
    /// The path and its closure are in the store now.
    case fetched
    /// No substituter has the path (the request was answered 404).
    case notFound = "not_found"
    /// A substituter or Nix failed (502).
    case failed
}
