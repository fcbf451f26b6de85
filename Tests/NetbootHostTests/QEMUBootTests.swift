import Foundation
import NetbootHost
import XCTest

/// Real boots: the server binary, the real iPXE ROM in QEMU (TCG), a real Debian kernel, and a
/// NixOS-shaped closure whose init checks every file it received. One boot at a time (XCTest runs
/// the tests of a process one after another); each has a generous timeout, and a failure carries
/// the guest's serial log.
final class QEMUBootTests: XCTestCase {
    /// The Debian kernel: `NNS_TEST_KERNEL`, or fetched by `scripts/fetch-kernel.sh`.
    static let kernel: String = {
        if let given = ProcessInfo.processInfo.environment["NNS_TEST_KERNEL"], !given.isEmpty { return given }
        return (try? shellString("bash \(repositoryRoot)/scripts/fetch-kernel.sh")) ?? ""
    }()

    /// The toplevel of `Tests/fixtures/boot/system.nix` for `variant`.
    static func system(_ variant: String) throws -> StorePath {
        try StorePath(absolutePath: try shellString(
            "nix-build \(repositoryRoot)/Tests/fixtures/boot/system.nix --no-out-link --argstr kernelPath '\(kernel)' --argstr variant \(variant)"))
    }

    override func setUp() async throws {
        guard !Self.kernel.isEmpty, FileManager.default.fileExists(atPath: Self.kernel) else {
            throw ShellError(description: "no kernel to boot: scripts/fetch-kernel.sh failed (or NNS_TEST_KERNEL is wrong)")
        }
    }

    /// Boots a guest that fetches `url` first; fails the test with the serial log unless the init reports success.
    func boot(_ server: ServerProcess, _ url: String, uefi: Bool = false, expect variant: String, file: StaticString = #filePath, line: UInt = #line) async throws {
        let dir = try makeTemporaryDirectory(self, "boot")
        let log = dir + "/serial.log"
        let command = "bash \(repositoryRoot)/scripts/qemu-boot.sh --port \(server.port) --url '\(url)' --timeout 300 --log \(log)" + (uefi ? " --uefi" : "")
        let result = try await shellOffThread(command)
        let serial = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        guard result.status == 0 else {
            let tail = serial.split(separator: "\n", omittingEmptySubsequences: false).suffix(80).joined(separator: "\n")
            XCTFail("boot of \(url) (\(uefi ? "UEFI" : "BIOS")) failed, exit \(result.status)\n--- serial ---\n\(tail)\n--- server ---\n\(server.log.suffix(4000))", file: file, line: line)
            return
        }
        XCTAssertTrue(serial.contains("NNS-BOOT-OK variant=\(variant)"), "booted the wrong system: \(serial.suffix(2000))", file: file, line: line)
    }

    func status(_ server: ServerProcess) throws -> [String: Int] {
        var values: [String: Int] = [:]
        for line in try shellString("curl -sSf \(server.base)/status").split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let value = Int(parts[1]) { values[String(parts[0])] = value }
        }
        return values
    }

    func testBIOSBootsWithEveryCodecAndUEFIWithZstd() async throws {
        let system = try Self.system("a")
        for codec in ["zstd", "xz", "gzip"] {
            let server = try ServerProcess(self, arguments: ["--compression", codec])
            try await boot(server, "/boot/\(system.name)/netboot.ipxe", expect: "a")
            if codec == "zstd" {
                try await boot(server, "/boot/\(system.name)/netboot.ipxe", uefi: true, expect: "a")
            }
            server.stop()
        }
    }

    func testALargeStorePathCutIntoMembersBootsOnBIOSAndUEFI() async throws {
        let system = try Self.system("large")
        let large = try XCTUnwrap(try shellString("nix-store -qR \(system.absolutePath) | grep -- '/[0-9a-z]\\{32\\}-nns-test-large$'"))
        let server = try ServerProcess(self, arguments: ["--jobs", "2"])
        try await boot(server, "/boot/\(system.name)/netboot.ipxe", expect: "large")
        try await boot(server, "/boot/\(system.name)/netboot.ipxe", uefi: true, expect: "large")
        // The large path's archive really is several zstd frames.
        let cacheDirectory = try XCTUnwrap(server.stateDirectory) + "/cpio-cache"
        let archive = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: cacheDirectory)
            .first { $0.hasPrefix(URL(fileURLWithPath: large).lastPathComponent + "@") })
        let parsed = try KernelInitramfs.parse(
            [UInt8](try Data(contentsOf: URL(fileURLWithPath: cacheDirectory + "/" + archive))),
            existingDirectories: leaderDirectories)
        XCTAssertGreaterThanOrEqual(parsed.members.count, 3, "members of \(archive)")
        server.stop()
    }

    func testASystemDifferingInOnePathPacksOnlyThatPathAndTheToplevel() async throws {
        let a = try Self.system("a"), b = try Self.system("b")
        let server = try ServerProcess(self, arguments: [])
        try await boot(server, "/boot/\(a.name)/netboot.ipxe", expect: "a")
        let afterA = try status(server)["archives-packed"] ?? -1
        let closureA = try shellString("nix-store -qR \(a.absolutePath) | wc -l")
        XCTAssertEqual("\(afterA)", closureA, "every path of the first system packed once")
        try await boot(server, "/boot/\(b.name)/netboot.ipxe?cmdline_suffix_args=nns.extra%3D1", expect: "b")
        let afterB = try status(server)["archives-packed"] ?? -1
        XCTAssertEqual(afterB - afterA, 2, "only the changed path and the toplevel are packed again")
        XCTAssertTrue(server.log.contains("packed=2 paths=\(closureA)"), server.log.suffix(3000).description)
    }

    func testBootsThroughTheProfileConfigurationAndHydraSources() async throws {
        // Profile: a Nix-style chain in the profiles directory.
        let profileSystem = try Self.system("p")
        let state = try makeTemporaryDirectory(self, "sources")
        try FileManager.default.createDirectory(atPath: state + "/profiles", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: state + "/profiles/rack-1-link", withDestinationPath: profileSystem.absolutePath)
        try FileManager.default.createSymbolicLink(atPath: state + "/profiles/rack", withDestinationPath: "rack-1-link")
        // Configuration: a default.nix that builds the system with its own variant, by a builder that
        // first writes 4 MB to stderr, as a real compile does (the server keeps only the tail).
        try FileManager.default.createDirectory(atPath: state + "/configurations/lab", withIntermediateDirectories: true)
        try """
        let system = import \(repositoryRoot)/Tests/fixtures/boot/system.nix { kernelPath = "\(Self.kernel)"; variant = "c"; };
            script = builtins.elemAt system.drvAttrs.args 3;
        in derivation (system.drvAttrs // {
          args = [ "sh" "-e" "-c" ("yes 'a builder that talks: 4 MB of log on stderr' | head -c 4194304 >&2\n" + script) ];
        })
        """.write(toFile: state + "/configurations/lab/default.nix", atomically: true, encoding: .utf8)
        // Hydra: the system of variant "h" in a signed binary cache, gone from the local store.
        let hydraVariant = "h-\(UUID().uuidString.prefix(8).lowercased())"
        let hydraSystem = try Self.system(hydraVariant)
        let key = try SignedCacheFixture.makeKeyPair(named: "boot-test", in: state)
        try shell("nix --extra-experimental-features nix-command copy --to 'file://\(state)/cache?secret-key=\(key.secretFile)' \(hydraSystem.absolutePath)")
        try shell("nix-store --delete \(hydraSystem.absolutePath)")
        var setup = StandInHydra.Setup()
        setup.jobs["infra/lab/netboot"] = 42
        setup.builds[42] = StandInHydra.buildJSON(id: 42, job: "netboot", outPath: hydraSystem.absolutePath)
        setup.cacheDirectory = state + "/cache"
        try await StandInHydra.with(setup) { hydra in
            let server = try ServerProcess(
                self, arguments: ["--state-dir", state, "--hydra", "lab=\(hydra.baseURL)"],
                environment: ["NIX_CONFIG": SignedCacheFixture.nixConfig(substituter: hydra.baseURL, trustedKey: key.publicKey)])
            try await boot(server, "/dispatch/profile/rack", expect: "p")
            try await boot(server, "/dispatch/configuration/lab?cmdline_prefix_args=nns.from%3Dconfig", expect: "c")
            try await boot(server, "/dispatch/hydra/lab/infra/lab/netboot", expect: hydraVariant)
            XCTAssertTrue(hydra.requests.contains { $0.path == "/job/infra/lab/netboot/latest" })
            XCTAssertTrue(hydra.requests.contains { $0.path.hasSuffix(".narinfo") }, "the system came from the binary cache")
        }
    }
}

/// Runs a shell command on a thread of its own, so a long wait blocks no task of the cooperative pool.
func shellOffThread(_ command: String) async throws -> (status: Int32, output: Data, error: String) {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try shell(command, allowFailure: true) })
        }
    }
}
