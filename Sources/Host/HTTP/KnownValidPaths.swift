import HTTPTypes

/// Remembers store paths Nix confirmed as valid, so warm requests do not run `nix-store` again.
///
/// Only positive answers are kept (an invalid path may become valid when it is built), at most
/// `capacity` of them, the least recently asked for forgotten first.
package actor KnownValidPaths {
    private var known: RecentlyUsed<StorePath, Void>
    private let store: any NixStore

    package init(store: any NixStore, capacity: Int = 4096) {
        self.store = store
        self.known = RecentlyUsed(capacity: capacity)
    }

    /// Throws 404 unless `path` is valid in the Nix database.
    package func requireValid(_ path: StorePath) async throws {
        if known.value(path) != nil { return }
        guard try await store.isValid(path) else {
            throw PlainTextError(.notFound, "\(path) is not a valid store path on this server")
        }
        known.insert(path, ())
    }
}
