import Codecs
import Foundation
import Logging
import NetbootHost
import NIOCore
import XCTest

/// Whole initrds of real closures, read with the kernel's rules, and their register script run.
final class InitrdAssemblerTests: XCTestCase {
    let fixtures = PackFixtures.shared
    let logger = Logger(label: "test")

    func makeAssembler(_ dir: String, compressor: any Compressor = ZstdCompressor(), capacity: UInt64 = 1 << 30, store: any NixStore = NixStoreCLI()) throws -> InitrdAssembler {
        let cache = try CPIOCache(directory: dir, capacity: capacity, jobs: 2, logger: logger)
        return running(try InitrdAssembler(store: store, cache: cache, packer: StorePathPacker(compressor: compressor, level: compressor.defaultLevel), logger: logger))
    }

    func collect(_ initrd: Initrd, chunkSize: Int = 4096) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        for try await chunk in initrd.bytes(chunkSize: chunkSize) { bytes += chunk.readableBytesView }
        return bytes
    }

    func testChunkSizesGiveTheSameBytes() async throws {
        let assembler = try makeAssembler(try makeTemporaryDirectory(self))
        let initrd = try await assembler.initrd(for: try PackFixtures.many(40))
        let whole = try await collect(initrd, chunkSize: 1 << 20)  // small members gathered into one chunk
        XCTAssertEqual(UInt64(whole.count), initrd.size)
        for size in [97, 200, 300, 512, 4096, 65536] {  // members larger and smaller than a chunk, mixed
            let chunked = try await collect(initrd, chunkSize: size)
            XCTAssertEqual(chunked, whole, "chunk size \(size)")
        }
        await initrd.release()
        _ = try KernelInitramfs.parse(whole)
    }

    func testInitrdCarriesTheWholeClosureAndRegistrations() async throws {
        for codec in [ZstdCompressor(), XzCompressor(), GzipCompressor(), NoneCompressor()] as [any Compressor] {
            let dir = try makeTemporaryDirectory(self)
            let assembler = try makeAssembler(dir, compressor: codec)
            let initrd = try await assembler.initrd(for: fixtures.link)
            let bytes = try await collect(initrd)
            await initrd.release()
            XCTAssertEqual(UInt64(bytes.count), initrd.size, "exact size (\(codec.name))")
            let parsed = try KernelInitramfs.parse(bytes)  // no directory assumed: the leader must create them
            let closure = try shellString("nix-store -qR \(fixtures.link.absolutePath)").split(separator: "\n").map(String.init)
            XCTAssertEqual(Set(closure), Set([fixtures.link, fixtures.tree, fixtures.single].map(\.absolutePath)))
            for path in closure {
                let name = String(path.dropFirst("/nix/store/".count))
                XCTAssertEqual(describeKernelTree(parsed, prefix: "nix/store/\(name)"), try describeTree(path), "\(codec.name) \(name)")
                let registration = parsed.tree["nix/.nix-netboot-serve-db/registration/\(name)"]
                XCTAssertEqual(registration.map { Data($0.data) }, try shell("nix-store --dump-db \(path)").output)
            }
            XCTAssertEqual(parsed.tree["nix/store"]?.mode, 0o41775)
            XCTAssertEqual(parsed.tree["nix/store"]?.gid, 30000)
            let register = try XCTUnwrap(parsed.tree["nix/.nix-netboot-serve-db/register"])
            XCTAssertEqual(register.mode & 0o777, 0o555)
            // Leader and loader first and uncompressed, then one member per path.
            XCTAssertEqual(parsed.members.count, 2 + closure.count)
            XCTAssertTrue(parsed.members.prefix(2).allSatisfy { $0.compression == nil })
        }
    }

    func testRegisterScriptMakesEveryPathValidWithItsReferences() async throws {
        let dir = try makeTemporaryDirectory(self)
        let assembler = try makeAssembler(dir + "/cache")
        let initrd = try await assembler.initrd(for: fixtures.link)
        let bytes = try await collect(initrd)
        await initrd.release()
        let root = dir + "/root"
        try KernelInitramfs.parse(bytes).materialize(into: root)
        let env = ["NIX_REMOTE": "local?root=\(root)"]
        try shell("sh \(root)/nix/.nix-netboot-serve-db/register", environment: env)
        for path in [fixtures.link, fixtures.tree, fixtures.single] {
            try shell("nix-store --check-validity \(path.absolutePath)", environment: env)
            let references = try shellString("nix-store -q --references \(path.absolutePath) | sort", environment: env)
            let expected = try shellString("nix-store -q --references \(path.absolutePath) | sort")
            XCTAssertEqual(references, expected, path.name)
        }
        let empty = dir + "/empty"
        let invalid = try shell("nix-store --check-validity \(fixtures.tree.absolutePath)", environment: ["NIX_REMOTE": "local?root=\(empty)"], allowFailure: true)
        XCTAssertNotEqual(invalid.status, 0, "a store without the registrations knows nothing of the paths")
    }

    func testASecondClosurePacksOnlyWhatChanged() async throws {
        let dir = try makeTemporaryDirectory(self)
        let assembler = try makeAssembler(dir)
        let first = try await assembler.initrd(for: fixtures.link)
        await first.release()
        let cache = assembler.cache
        let packedFirst = await cache.packedCount
        XCTAssertEqual(packedFirst, 3)
        let again = try await assembler.initrd(for: fixtures.link)
        let warm = try await collect(again)
        await again.release()
        let packedAgain = await cache.packedCount
        XCTAssertEqual(packedAgain, 3, "warm: nothing packed")
        let cold = try await collect(try await makeAssembler(try makeTemporaryDirectory(self)).initrd(for: fixtures.link))
        XCTAssertEqual(warm, cold, "a warm initrd equals a cold one")
    }

    func testWarmRequestsDoNotAskNixAgain() async throws {
        let counting = CountingStore(inner: NixStoreCLI())
        let assembler = try makeAssembler(try makeTemporaryDirectory(self), store: counting)
        for _ in 0..<3 {
            let initrd = try await assembler.initrd(for: fixtures.tree)
            await initrd.release()
        }
        XCTAssertEqual(counting.calls, ["requisites", "registrations"])
    }

    func testConcurrentRequestsForOneSystemShareOnePackingPass() async throws {
        let counting = CountingStore(inner: NixStoreCLI())
        let assembler = try makeAssembler(try makeTemporaryDirectory(self), store: counting)
        let root = try PackFixtures.many(60)
        let sizes = try await withThrowingTaskGroup(of: UInt64.self) { group in
            for _ in 0..<16 {
                group.addTask {
                    let initrd = try await assembler.initrd(for: root)
                    await initrd.release()
                    return initrd.size
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertEqual(Set(sizes).count, 1)
        XCTAssertEqual(counting.calls.filter { $0 == "registrations" }.count, 1, "one nix-store --dump-db for the rack: \(counting.calls)")
        let packed = await assembler.cache.packedCount
        XCTAssertEqual(packed, 60)
    }

    func testAClosureLargerThanTheCacheStillAssembles() async throws {
        let dir = try makeTemporaryDirectory(self)
        let assembler = try makeAssembler(dir, capacity: 100)
        let initrd = try await assembler.initrd(for: fixtures.link)
        let bytes = try await collect(initrd)
        XCTAssertEqual(UInt64(bytes.count), initrd.size)
        _ = try KernelInitramfs.parse(bytes)
        await initrd.release()
        let left = try FileManager.default.contentsOfDirectory(atPath: dir)
        XCTAssertEqual(left.count, 0, "trimmed once released: \(left)")
    }

    func testAnInitrdDroppedWithoutReleaseGivesItsPinsBack() async throws {
        let dir = try makeTemporaryDirectory(self)
        let assembler = try makeAssembler(dir, capacity: 100)
        do {
            let initrd = try await assembler.initrd(for: fixtures.link)
            XCTAssertGreaterThan(initrd.members.count, 2)
            XCTAssertGreaterThan(try FileManager.default.contentsOfDirectory(atPath: dir).count, 0, "pinned while it lives")
        }
        // The initrd is gone; its deinit handed the pins back, applied at the cache's next operation.
        let count = await assembler.cache.entryCount
        XCTAssertEqual(count, 0, "trimmed once its pins are back")
    }

    func testPackAheadPacksASystemOnceAtATimeAndAgainWhenAskedLater() async throws {
        let dir = try makeTemporaryDirectory(self)
        let assembler = try makeAssembler(dir)
        let packAhead = PackAheadService(assembler: assembler, logger: logger)
        startServices([packAhead], for: self)
        let system = fixtures.system
        XCTAssertTrue(packAhead.request(system))
        XCTAssertFalse(packAhead.request(system), "a pass for it is pending or running: dropped")
        let deadline = Date().addingTimeInterval(30)
        while packAhead.pendingCount > 0 && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        XCTAssertEqual(packAhead.pendingCount, 0)
        let closure = try await assembler.closure(of: system)
        let pinned = await assembler.cache.pin(closure.map(assembler.key))
        XCTAssertFalse(pinned.contains(nil), "every archive of the closure is cached ahead")
        await assembler.cache.release(pinned.compactMap { $0?.key })
        XCTAssertTrue(packAhead.request(system), "done: it may be asked again")
    }

    func testOnlyOneCachedFileIsOpenAtATime() async throws {
        let dir = try makeTemporaryDirectory(self)
        let assembler = try makeAssembler(dir)
        let initrd = try await assembler.initrd(for: fixtures.link)
        var maximum = 0
        for try await _ in initrd.bytes(chunkSize: 512) {
            let open = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").filter {
                ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")) ?? "").hasPrefix(dir)
            }.count
            maximum = max(maximum, open)
        }
        await initrd.release()
        XCTAssertEqual(maximum, 1)
    }
}

/// A store that records which questions reach Nix.
final class CountingStore: NixStore, @unchecked Sendable {
    let inner: any NixStore
    private let lock = NSLock()
    private var log: [String] = []
    init(inner: any NixStore) { self.inner = inner }
    var calls: [String] { lock.withLock { log } }
    private func record(_ call: String) { lock.withLock { log.append(call) } }
    func isValid(_ path: StorePath) async throws -> Bool { record("isValid"); return try await inner.isValid(path) }
    func requisites(of path: StorePath) async throws -> [StorePath] { record("requisites"); return try await inner.requisites(of: path) }
    func registrations(of paths: [StorePath]) async throws -> [StorePath: [UInt8]] { record("registrations"); return try await inner.registrations(of: paths) }
    func realise(_ path: StorePath, root: String) async throws { record("realise"); try await inner.realise(path, root: root) }
    func instantiate(file: String) async throws -> Derivation { record("instantiate"); return try await inner.instantiate(file: file) }
    func instantiate(flake reference: String, attributePath: [String]) async throws -> Derivation {
        record("instantiate"); return try await inner.instantiate(flake: reference, attributePath: attributePath)
    }
    func build(_ derivation: Derivation) async throws -> [StorePath] { record("build"); return try await inner.build(derivation) }
}
