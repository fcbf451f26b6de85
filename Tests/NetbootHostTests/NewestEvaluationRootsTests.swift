import Foundation
import Logging
import NetbootHost
import NetbootTesting
import Synchronization
import XCTest

/// The GC root of a built system follows the newest evaluation, whatever order builds and root
/// updates end in.
final class NewestEvaluationRootsTests: XCTestCase {
    func testANewerResultArrivingDuringAnUpdateIsAppliedAfterIt() async throws {
        let dir = try makeTemporaryDirectory(self, "roots")
        let memory = try InMemoryNixStore(directory: dir)
        let a = try memory.addSystem("a"), b = try memory.addSystem("b")
        let store = SlowRealiseStore(inner: memory, slow: a)
        try FileManager.default.createDirectory(atPath: dir + "/gc-roots", withIntermediateDirectories: true)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let roots = NewestEvaluationRoots(context: SourceContext(store: store, stateDirectory: dir, gcRootDirectory: dir + "/gc-roots", logger: logger))
        let drvA = Derivation(path: "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a.drv")
        let drvB = Derivation(path: "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b.drv")
        await roots.want("system", evaluation: 1, derivation: drvA)
        let first = Task { await roots.built(drvA, path: a) }
        while !store.slowStarted { try await Task.sleep(for: .milliseconds(10)) }
        // A's root update is under way; evaluation 2 gives B, which is built now.
        await roots.want("system", evaluation: 2, derivation: drvB)
        await roots.built(drvB, path: b)
        await first.value
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: roots.rootPath("system")), b.absolutePath,
            "the newer result is applied after the update in progress, not dropped")
        XCTAssertEqual(store.realised, [a, b])
    }
}

/// A store whose `realise` of one path takes half a second; it records what it realised, in order.
final class SlowRealiseStore: NixStore {
    let inner: any NixStore
    let slow: StorePath
    private let state = Mutex<(started: Bool, realised: [StorePath])>((false, []))

    init(inner: any NixStore, slow: StorePath) {
        self.inner = inner
        self.slow = slow
    }

    var slowStarted: Bool { state.withLock { $0.started } }
    var realised: [StorePath] { state.withLock { $0.realised } }

    func realise(_ path: StorePath, root: String) async throws {
        if path == slow {
            state.withLock { $0.started = true }
            try await Task.sleep(for: .milliseconds(500))
        }
        try await inner.realise(path, root: root)
        state.withLock { $0.realised.append(path) }
    }

    func isValid(_ path: StorePath) async throws -> Bool { try await inner.isValid(path) }
    func requisites(of path: StorePath) async throws -> [StorePath] { try await inner.requisites(of: path) }
    func registrations(of paths: [StorePath]) async throws -> [StorePath: [UInt8]] { try await inner.registrations(of: paths) }
    func instantiate(file: String) async throws -> Derivation { try await inner.instantiate(file: file) }
    func instantiate(flake reference: String, attributePath: [String]) async throws -> Derivation {
        try await inner.instantiate(flake: reference, attributePath: attributePath)
    }
    func build(_ derivation: Derivation) async throws -> [StorePath] { try await inner.build(derivation) }
}
