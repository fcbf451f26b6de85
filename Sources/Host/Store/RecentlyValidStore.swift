/// A ``NixStore`` that remembers, for a short while, which paths Nix confirmed as valid.
///
/// Boot sources check the validity of what they resolve on every dispatch; a rack powering on asks
/// for the same few systems thousands of times a minute, and each check is a `nix-store` process.
/// A path a dispatch resolved is pinned by a GC root right after, so it stays valid for at least the
/// pin's lifetime; remembering the answer for `lifetime` (far shorter) cannot send a machine to a
/// collected path that a pin would not have caught: a pin for a path that vanished fails loudly.
/// Only positive answers are kept (an invalid path may be built at any moment), at most `capacity`.
package actor RecentlyValidStore: NixStore {
    package let base: any NixStore
    package let lifetime: Duration
    package let capacity: Int
    private var confirmed: [StorePath: ContinuousClock.Instant] = [:]

    package init(base: any NixStore, lifetime: Duration = .seconds(60), capacity: Int = 4096) {
        self.base = base
        self.lifetime = lifetime
        self.capacity = max(1, capacity)
    }

    package func isValid(_ path: StorePath) async throws -> Bool {
        let now = ContinuousClock.now
        if let when = confirmed[path], now - when < lifetime { return true }
        guard try await base.isValid(path) else {
            confirmed[path] = nil
            return false
        }
        if confirmed.count >= capacity { confirmed = confirmed.filter { now - $0.value < lifetime } }
        if confirmed.count >= capacity, let oldest = confirmed.min(by: { $0.value < $1.value }) { confirmed[oldest.key] = nil }
        confirmed[path] = now
        return true
    }

    package nonisolated func requisites(of path: StorePath) async throws -> [StorePath] { try await base.requisites(of: path) }

    package nonisolated func registrations(of paths: [StorePath]) async throws -> [StorePath: [UInt8]] {
        try await base.registrations(of: paths)
    }

    package nonisolated func realise(_ path: StorePath, root: String) async throws { try await base.realise(path, root: root) }

    package nonisolated func instantiate(file: String) async throws -> Derivation { try await base.instantiate(file: file) }
    package nonisolated func instantiate(flake reference: String, attributePath: [String]) async throws -> Derivation {
        try await base.instantiate(flake: reference, attributePath: attributePath)
    }

    package nonisolated func build(_ derivation: Derivation) async throws -> [StorePath] { try await base.build(derivation) }
}
