import Foundation
import NetbootHost
import XCTest

/// The cache's faults against the real server binary: damaged and deleted archives, a removed
/// directory, `kill -9` mid-pack, a full disk, a read-only directory. Fixtures are NixOS-shaped
/// systems: `PackFixtures.system` (small) and `systems.nix`'s `big` (a blob of random bytes).
final class CacheLiveTests: XCTestCase {
    let fixtures = PackFixtures.shared

    /// A system whose closure holds `megabytes` of random bytes.
    static func bigSystem(megabytes: Int) throws -> StorePath {
        try StorePath(absolutePath: try shellString(
            "nix-build \(repositoryRoot)/Tests/fixtures/cache/systems.nix --no-out-link -A big --arg megabytes \(megabytes) --argstr busyboxDir \(busyboxDirectory)"))
    }

    /// Downloads an initrd: (HTTP status, bytes received, the body).
    func download(_ server: ServerProcess, _ root: StorePath, to file: String) throws -> (status: Int, size: Int, body: [UInt8]) {
        let out = try shellString("curl -sS -o \(file) -w '%{http_code} %{size_download}' \(server.base)/boot/\(root.name)/initrd")
        let parts = out.split(separator: " ").compactMap { Int($0) }
        guard parts.count == 2 else { throw ShellError(description: "curl said \(out)") }
        return (parts[0], parts[1], Array(try Data(contentsOf: URL(fileURLWithPath: file))))
    }

    func contentLength(_ server: ServerProcess, _ root: StorePath) throws -> Int {
        Int(try shellString("curl -sSI \(server.base)/boot/\(root.name)/initrd | tr -d '\\r' | awk 'tolower($1)==\"content-length:\" {print $2}'")) ?? -1
    }

    /// `archives-cached` and `cache-bytes` from /status, and what the directory really holds.
    func statusAndDisk(_ server: ServerProcess, cacheDir: String) throws -> (status: [Int], disk: [Int]) {
        let text = try shellString("curl -sS \(server.base)/status")
        var status: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let value = Int(parts[1]) { status[String(parts[0])] = value }
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: cacheDir).filter { $0.contains("@nns-cpio-") }
        let bytes = names.reduce(0) { $0 + Int(FileSystem.regularFileSize(cacheDir + "/" + $1) ?? 0) }
        return ([status["archives-cached"] ?? -1, status["cache-bytes"] ?? -1], [names.count, bytes])
    }

    func testAfterARestartAFlippedATruncatedAndADeletedArchiveAreNeverServed() throws {
        let root = fixtures.system
        let state = try makeTemporaryDirectory(self, "state")
        let cacheDir = state + "/cpio-cache"
        let dir = try makeTemporaryDirectory(self)
        let first = try ServerProcess(self, arguments: ["--state-dir", state])
        let original = try download(first, root, to: dir + "/a")
        XCTAssertEqual(original.status, 200)
        first.stop()
        try flipBit(in: try archiveFile(of: fixtures.tree, in: cacheDir))
        try truncateFile(try archiveFile(of: fixtures.single, in: cacheDir), to: 100)

        let second = try ServerProcess(self, arguments: ["--state-dir", state])
        XCTAssertEqual(try contentLength(second, root), original.size, "HEAD gives the true length, before any byte is read")
        let again = try download(second, root, to: dir + "/b")
        XCTAssertEqual(again.status, 200)
        XCTAssertEqual(again.body, original.body, "byte-identical: the flipped archive was dropped and packed again")
        XCTAssertTrue(second.log.contains("failed verification"), second.log)
        XCTAssertTrue(second.log.contains("wrong size"), second.log)
        second.stop()

        try FileManager.default.removeItem(atPath: try archiveFile(of: fixtures.tree, in: cacheDir))
        let third = try ServerProcess(self, arguments: ["--state-dir", state])
        let status = try statusAndDisk(third, cacheDir: cacheDir)
        XCTAssertEqual(status.status, status.disk)
        XCTAssertEqual(try download(third, root, to: dir + "/c").body, original.body)
    }

    func testWhileRunningADeletedArchiveAndARemovedDirectoryAreNoticedBeforeTheHeaders() throws {
        let root = fixtures.system
        let state = try makeTemporaryDirectory(self, "state")
        let cacheDir = state + "/cpio-cache"
        let dir = try makeTemporaryDirectory(self)
        let server = try ServerProcess(self, arguments: ["--state-dir", state])
        let original = try download(server, root, to: dir + "/a")
        XCTAssertEqual(original.status, 200)

        try FileManager.default.removeItem(atPath: try archiveFile(of: fixtures.tree, in: cacheDir))
        var status = try statusAndDisk(server, cacheDir: cacheDir)
        XCTAssertEqual(status.status, status.disk, "/status counts only what is there")
        let afterDelete = try download(server, root, to: dir + "/b")
        XCTAssertEqual(afterDelete.status, 200)
        XCTAssertEqual(afterDelete.body, original.body)

        try shell("rm -rf \(cacheDir)")
        let afterRemove = try download(server, root, to: dir + "/c")
        XCTAssertEqual(afterRemove.status, 200)
        XCTAssertEqual(afterRemove.body, original.body)
        try shell("rm -rf \(cacheDir) && mkdir \(cacheDir)")
        let afterRecreate = try download(server, root, to: dir + "/d")
        XCTAssertEqual(afterRecreate.body, original.body, "a stale index is not served from an empty directory")
        status = try statusAndDisk(server, cacheDir: cacheDir)
        XCTAssertEqual(status.status, status.disk)
        XCTAssertEqual(status.disk[0], 3)
    }

    func testTheMidBodyCheckStillClosesTheConnectionWhenAnArchiveShrinksDuringADownload() async throws {
        // Larger than what loopback socket buffers hold (about 10 MB), so the server is still reading
        // the blob's archive when it shrinks.
        let root = try Self.bigSystem(megabytes: 24)
        let state = try makeTemporaryDirectory(self, "state")
        let cacheDir = state + "/cpio-cache"
        let dir = try makeTemporaryDirectory(self)
        let server = try ServerProcess(self, arguments: ["--state-dir", state, "--compression", "none"])
        XCTAssertEqual(try download(server, root, to: dir + "/a").status, 200)
        let blob = try StorePath(absolutePath: try shellString("nix-store -qR \(root.absolutePath) | grep cache-blob"))
        // A slow client: the headers are out long before the blob's archive is read to its end.
        let slow = Task { try await shellOffThread("curl -sS --limit-rate 2M -o \(dir)/b -w '%{http_code} %{size_download}' \(server.base)/boot/\(root.name)/initrd") }
        try await Task.sleep(for: .seconds(1))
        try truncateFile(try archiveFile(of: blob, in: cacheDir), to: 1)
        let result = try await slow.value
        XCTAssertNotEqual(result.status, 0, "curl must see a broken transfer, not a complete short body: \(String(decoding: result.output, as: UTF8.self))")
        XCTAssertTrue([18, 52, 56].contains(result.status), "curl exit \(result.status): \(result.error)")
        XCTAssertEqual(try download(server, root, to: dir + "/c").status, 200, "the next request repacks it")
    }

    func testKillNineMidPackThenRestartGivesTheInitrdOfAFreshCache() async throws {
        let root = try Self.bigSystem(megabytes: 8)
        let state = try makeTemporaryDirectory(self, "state")
        let cacheDir = state + "/cpio-cache"
        let dir = try makeTemporaryDirectory(self)
        let arguments = ["--compression", "xz", "--jobs", "1"]
        let killed = try ServerProcess(self, arguments: ["--state-dir", state] + arguments)
        let request = Task { try await shellOffThread("curl -sS -o /dev/null \(killed.base)/boot/\(root.name)/initrd") }
        let deadline = Date().addingTimeInterval(60)
        var sawTemporary = false
        while Date() < deadline {
            // Mid-pack: the blob's temporary is being written.
            if temporaries(in: cacheDir).contains(where: { $0.contains("cache-blob") }) {
                sawTemporary = true
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        XCTAssertTrue(sawTemporary, "packing the blob takes long enough to be killed")
        kill(killed.process.processIdentifier, SIGKILL)
        killed.process.waitUntilExit()
        _ = try? await request.value

        let restarted = try ServerProcess(self, arguments: ["--state-dir", state] + arguments)
        XCTAssertEqual(temporaries(in: cacheDir), [], "the half-written archive was removed at start")
        let recovered = try download(restarted, root, to: dir + "/a")
        let fresh = try ServerProcess(self, arguments: arguments)
        let reference = try download(fresh, root, to: dir + "/b")
        XCTAssertEqual(recovered.status, 200)
        XCTAssertEqual(reference.status, 200)
        XCTAssertEqual(recovered.size, reference.size)
        XCTAssertTrue(recovered.body == reference.body, "byte-identical to an initrd from a fresh cache")
    }

    func testAFullDiskGives507LeavesNoTemporariesAndKeepsServingWhatItHas() throws {
        let big = try Self.bigSystem(megabytes: 16)
        let small = fixtures.system
        let cacheDir = try mountTmpfs(self, size: "8m")
        let dir = try makeTemporaryDirectory(self)
        let server = try ServerProcess(self, arguments: ["--cpio-cache-dir", cacheDir])
        let before = try download(server, small, to: dir + "/small-a")
        XCTAssertEqual(before.status, 200)

        let full = try shell("curl -sS -D \(dir)/headers -o \(dir)/body -w '%{http_code}' \(server.base)/boot/\(big.name)/initrd")
        XCTAssertEqual(String(decoding: full.output, as: UTF8.self), "507")
        let body = try String(contentsOfFile: dir + "/body", encoding: .utf8)
        XCTAssertEqual(body.filter { $0 == "\n" }.count, 1, "one line: \(body)")
        XCTAssertFalse(body.contains("/"), "no paths in the answer: \(body)")
        XCTAssertTrue(server.log.contains("out of space"), server.log)
        XCTAssertEqual(temporaries(in: cacheDir), [])

        let after = try download(server, small, to: dir + "/small-b")
        XCTAssertEqual(after.status, 200)
        XCTAssertEqual(after.body, before.body, "the cached system is still served")
        let status = try statusAndDisk(server, cacheDir: cacheDir)
        XCTAssertEqual(status.status, status.disk)
        XCTAssertTrue(server.process.isRunning)
    }

    func testAReadOnlyCacheDirectoryStopsTheServerAtStartWithAClearMessage() throws {
        let cacheDir = try mountTmpfs(self, size: "1m", readOnly: true)
        XCTAssertThrowsError(try ServerProcess(self, arguments: ["--cpio-cache-dir", cacheDir])) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("is not writable (Read-only file system)"), text)
        }
    }
}
