import Codecs
import Foundation
import Logging
import NetbootHost
import NIOCore
import XCTest

/// Whole initrds of real closures assembled from a cache that was damaged, before and after a restart.
final class InitrdRecoveryTests: XCTestCase {
    let fixtures = PackFixtures.shared
    let logger = Logger(label: "test")

    func makeAssembler(_ dir: String, capacity: UInt64 = 1 << 30) throws -> InitrdAssembler {
        let cache = try CPIOCache(directory: dir, capacity: capacity, jobs: 2, logger: logger)
        let codec = ZstdCompressor()
        return running(try InitrdAssembler(store: NixStoreCLI(), cache: cache, packer: StorePathPacker(compressor: codec, level: codec.defaultLevel), logger: logger))
    }

    /// The whole initrd, as a response would send it (its size is the Content-Length).
    func download(_ assembler: InitrdAssembler, _ root: StorePath) async throws -> (size: UInt64, bytes: [UInt8]) {
        let initrd = try await assembler.initrd(for: root)
        var bytes: [UInt8] = []
        do {
            for try await chunk in initrd.bytes(chunkSize: 1 << 20) { bytes += chunk.readableBytesView }
        } catch {
            await initrd.release()
            throw error
        }
        await initrd.release()
        return (initrd.size, bytes)
    }

    func testAfterARestartTruncatedFlippedAndDeletedArchivesArePackedAgainByteIdentical() async throws {
        let dir = try makeTemporaryDirectory(self)
        let root = fixtures.system  // system, tree, single
        let original = try await download(try makeAssembler(dir), root)
        XCTAssertEqual(original.size, UInt64(original.bytes.count))
        try truncateFile(try archiveFile(of: fixtures.single, in: dir), to: 10)
        try flipBit(in: try archiveFile(of: fixtures.tree, in: dir))
        try FileManager.default.removeItem(atPath: try archiveFile(of: root, in: dir))

        let restarted = try makeAssembler(dir)
        let again = try await download(restarted, root)
        XCTAssertEqual(again.size, original.size, "the Content-Length is the true one")
        XCTAssertEqual(again.bytes, original.bytes, "byte-identical to the first")
        let packed = await restarted.cache.packedCount, dropped = await restarted.cache.droppedCount
        XCTAssertEqual(packed, 3, "all three packed again")
        XCTAssertEqual(dropped, 1, "the flipped one failed verification (the others never made it into the index)")
        _ = try KernelInitramfs.parse(again.bytes)
    }

    func testWhileRunningADeletedAndATruncatedArchiveArePackedAgainBeforeTheHeaders() async throws {
        let dir = try makeTemporaryDirectory(self)
        let root = try PackFixtures.many(40)
        let assembler = try makeAssembler(dir)
        let original = try await download(assembler, root)
        let closure = try await assembler.closure(of: root)
        try FileManager.default.removeItem(atPath: try archiveFile(of: closure[3], in: dir))
        try truncateFile(try archiveFile(of: closure[17], in: dir), to: 5)
        let again = try await download(assembler, root)
        XCTAssertEqual(again.size, original.size)
        XCTAssertEqual(again.bytes, original.bytes)
        let packed = await assembler.cache.packedCount, count = await assembler.cache.entryCount
        XCTAssertEqual(packed, 42)
        XCTAssertEqual(count, 40)
    }

    func testWhileRunningARemovedCacheDirectoryIsRecreatedAndRefilled() async throws {
        let parent = try makeTemporaryDirectory(self)
        let dir = parent + "/cpio-cache"
        let root = fixtures.system
        let assembler = try makeAssembler(dir)
        let original = try await download(assembler, root)
        try FileManager.default.removeItem(atPath: dir)
        let again = try await download(assembler, root)
        XCTAssertEqual(again.bytes, original.bytes)
        // Removed and made again empty (what `rm -rf; mkdir` does): the stale index must not serve.
        try FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        let third = try await download(assembler, root)
        XCTAssertEqual(third.bytes, original.bytes)
        let count = await assembler.cache.entryCount, bytes = await assembler.cache.totalBytes
        XCTAssertEqual(count, 3)
        let onDisk = try FileManager.default.contentsOfDirectory(atPath: dir).reduce(UInt64(0)) {
            $0 + UInt64(FileSystem.regularFileSize(dir + "/" + $1) ?? 0)
        }
        XCTAssertEqual(bytes, onDisk)
    }

    /// What verification costs: the first initrd of 500 paths after a restart (every archive read
    /// once against its CRC-32) against the same in the process that packed them (no reads).
    func testVerificationCostOnFiveHundredPaths() async throws {
        let dir = try makeTemporaryDirectory(self)
        let root = try PackFixtures.many(500)
        let clock = ContinuousClock()
        let packing = try makeAssembler(dir)
        _ = try await download(packing, root)
        let warmAssemble = try await clock.measure { await (try await packing.initrd(for: root)).release() }
        let warmDownload = try await clock.measure { _ = try await download(packing, root) }
        let restarted = try makeAssembler(dir)
        _ = try await restarted.closure(of: root)  // the same Nix query in both: leave it out
        let firstAssemble = try await clock.measure { await (try await restarted.initrd(for: root)).release() }
        let verified = await restarted.cache.verifiedCount, bytes = await restarted.cache.verifiedBytes
        XCTAssertEqual(verified, 500)
        let secondAssemble = try await clock.measure { await (try await restarted.initrd(for: root)).release() }
        let again = await restarted.cache.verifiedCount
        XCTAssertEqual(again, 500, "verified once per process")
        print("verification cost, 500 paths (\(bytes) bytes): first initrd after restart assembled in \(firstAssemble) (verifying), "
              + "then \(secondAssemble); in the packing process \(warmAssemble); a warm download \(warmDownload)")
    }
}

extension ContinuousClock {
    func measure(_ work: () async throws -> Void) async rethrows -> Duration {
        let start = now
        try await work()
        return now - start
    }
}
