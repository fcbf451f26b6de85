import HTTPTypes

/// Remembers store paths Nix confirmed as valid, so warm requests do not run `nix-store` again.
///
/// Only positive answers are kept (an invalid path may become valid when it is built), at most
/// `capacity` of them, the least recently asked for forgotten first. With a `realiser`, an invalid
/// path is fetched from Nix's substituters instead of refused.
package actor KnownValidPaths {
    private var known: RecentlyUsed<StorePath, Void>
    private let store: any NixStore
    private let realiser: MissingPathRealiser?

    package init(store: any NixStore, realiser: MissingPathRealiser? = nil, capacity: Int = 4096) {
        self.store = store
        self.realiser = realiser
        self.known = RecentlyUsed(capacity: capacity)
    }

    /// Throws 404 unless `path` is valid in the Nix database, or is made valid by the realiser
    /// (which throws its own answer: 503 while it fetches, 404, 502).
    package func requireValid(_ path: StorePath) async throws {
        if known.value(path) != nil { return }
        if try await !store.isValid(path) {
            guard let realiser else { throw PlainTextError(.notFound, "\(path) is not a valid store path on this server") }
            try await realiser.realise(path)
        }
        known.insert(path, ())
    }
}
