import Foundation
import NetbootHost
import XCTest

/// Real boots through `/boot.ipxe` as the DHCP boot file: guests with different MACs boot their own
/// systems with their own overlay file and kernel arguments (BIOS both, UEFI one); an edited rule
/// takes effect at the next boot; an unknown machine waits until its rule is written, untouched.
/// One server for every guest; the systems' init prints what the machine received.
final class MachineBootTests: XCTestCase {
    static let macA = "52:54:00:aa:00:01", macB = "52:54:00:aa:00:02", macNew = "52:54:00:aa:00:03"

    override func setUp() async throws {
        guard !QEMUBootTests.kernel.isEmpty, FileManager.default.fileExists(atPath: QEMUBootTests.kernel) else {
            throw ShellError(description: "no kernel to boot: scripts/fetch-kernel.sh failed (or NNS_TEST_KERNEL is wrong)")
        }
    }

    /// The boot fixture for `variant`, reporting what a machine rule gave it.
    static func system(_ variant: String) throws -> StorePath {
        try StorePath(absolutePath: try shellString(
            "nix-build \(repositoryRoot)/Tests/fixtures/boot/system.nix --no-out-link --argstr kernelPath '\(QEMUBootTests.kernel)' --argstr variant \(variant) --arg showMachine true"))
    }

    /// A guest with `mac` whose DHCP boot file is `/boot.ipxe`: its exit status and serial log.
    static func boot(port: Int, mac: String, uefi: Bool, log: String) async throws -> (status: Int32, serial: String) {
        let command = "bash \(repositoryRoot)/scripts/qemu-boot.sh --port \(port) --url /boot.ipxe --mac \(mac) --timeout 360 --log \(log)" + (uefi ? " --uefi" : "")
        let result = try await shellOffThread(command)
        return (result.status, ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").replacingOccurrences(of: "\r", with: ""))
    }

    /// The serial log of a boot, failing the test (with the log) unless the init reported success.
    func checked(_ boot: (status: Int32, serial: String), _ server: ServerProcess, mac: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        if boot.status != 0 {
            let tail = boot.serial.split(separator: "\n", omittingEmptySubsequences: false).suffix(60).joined(separator: "\n")
            XCTFail("boot of \(mac) failed, exit \(boot.status)\n--- serial ---\n\(tail)\n--- server ---\n\(server.log.suffix(4000))", file: file, line: line)
        }
        return boot.serial
    }

    func log() throws -> String { try makeTemporaryDirectory(self, "boot") + "/serial.log" }

    /// The `NNS-MACHINE …` line the init printed.
    func report(_ serial: String) -> String {
        serial.split(separator: "\n").first { $0.hasPrefix("NNS-MACHINE ") }.map(String.init) ?? "(no NNS-MACHINE line)"
    }

    func rule(mac: String, system: StorePath, name: String, file: String, mode: String = "0644") -> String {
        #"{"match": {"mac": "\#(mac)"}, "boot": "closure/\#(system.name)", "cmdline": "nns.machine=\#(name)", "files": {"/etc/netboot-machine": {"text": "\#(file)\n", "mode": "\#(mode)"}}}"#
    }

    func testTwoMachinesBootTheirOwnSystemsAndAnUnknownOneWaitsForItsRule() async throws {
        let a = try Self.system("ma"), b = try Self.system("mb")
        let state = try makeTemporaryDirectory(self, "state")
        let machines = state + "/machines"
        try FileManager.default.createDirectory(atPath: machines, withIntermediateDirectories: true)
        try rule(mac: "52-54-00-AA-00-01", system: a, name: "a", file: "node-a").write(toFile: machines + "/node-a.json", atomically: true, encoding: .utf8)
        try rule(mac: Self.macB, system: b, name: "b", file: "node-b", mode: "0600").write(toFile: machines + "/node-b.json", atomically: true, encoding: .utf8)
        let server = try ServerProcess(self, arguments: ["--state-dir", state])

        // Two guests at once, each by its MAC.
        let (port, logA, logB) = (server.port, try log(), try log())
        async let bootA = Self.boot(port: port, mac: Self.macA, uefi: false, log: logA)
        async let bootB = Self.boot(port: port, mac: Self.macB, uefi: false, log: logB)
        let (resultA, resultB) = try await (bootA, bootB)
        let serialA = checked(resultA, server, mac: Self.macA), serialB = checked(resultB, server, mac: Self.macB)
        XCTAssertTrue(serialA.contains("NNS-BOOT-OK variant=ma"), report(serialA))
        XCTAssertTrue(report(serialA).hasPrefix("NNS-MACHINE file=node-a mode=644 cmdline="), report(serialA))
        XCTAssertTrue(report(serialA).hasSuffix(" nns.params=kernel-params-ma nns.machine=a"), report(serialA))
        XCTAssertTrue(serialB.contains("NNS-BOOT-OK variant=mb"), report(serialB))
        XCTAssertTrue(report(serialB).hasPrefix("NNS-MACHINE file=node-b mode=600 cmdline="), report(serialB))
        XCTAssertTrue(report(serialB).hasSuffix(" nns.params=kernel-params-mb nns.machine=b"), report(serialB))

        // The rule of A edited while the server runs: its next boot (UEFI) gets the new system and files.
        try rule(mac: Self.macA, system: b, name: "a2", file: "node-a2").write(toFile: machines + "/node-a.json", atomically: true, encoding: .utf8)
        let serialA2 = checked(try await Self.boot(port: port, mac: Self.macA, uefi: true, log: try log()), server, mac: Self.macA)
        XCTAssertTrue(serialA2.contains("NNS-BOOT-OK variant=mb"), report(serialA2))
        XCTAssertTrue(report(serialA2).hasPrefix("NNS-MACHINE file=node-a2 mode=644 cmdline="), report(serialA2))
        XCTAssertTrue(report(serialA2).hasSuffix(" nns.machine=a2"), report(serialA2))

        // An unknown machine is told which file to create, and boots once it exists, untouched.
        let logNew = try log()
        let newMAC = Self.macNew
        let waiting = Task { [port, logNew, newMAC] in try await MachineBootTests.boot(port: port, mac: newMAC, uefi: false, log: logNew) }
        let deadline = Date().addingTimeInterval(300)
        while !server.log.contains("create=\(machines)/52-54-00-aa-00-03.json"), Date() < deadline {
            try await Task.sleep(for: .milliseconds(500))
        }
        XCTAssertTrue(server.log.contains("create=\(machines)/52-54-00-aa-00-03.json"), "the unknown machine asked")
        try rule(mac: Self.macNew, system: a, name: "new", file: "node-new").write(toFile: machines + "/52-54-00-aa-00-03.json", atomically: true, encoding: .utf8)
        let serialNew = checked(try await waiting.value, server, mac: Self.macNew)
        XCTAssertTrue(serialNew.contains("No machine rule matches this machine: MAC 52:54:00:aa:00:03"), serialNew.suffix(3000).description)
        XCTAssertTrue(serialNew.contains("create machines/52-54-00-aa-00-03.json"), serialNew.suffix(3000).description)
        XCTAssertTrue(serialNew.contains("NNS-BOOT-OK variant=ma"), report(serialNew))
        XCTAssertTrue(report(serialNew).hasPrefix("NNS-MACHINE file=node-new mode=644 cmdline="), report(serialNew))

        let status = try shellString("curl -sSf \(server.base)/status")
        for (mac, rule, system) in [(Self.macA, "node-a", b), (Self.macB, "node-b", b), (Self.macNew, "52-54-00-aa-00-03", a)] {
            XCTAssertTrue(status.contains("machine-boot \(mac) at ") && status.contains("rule \(rule) path \(system.name)"), status)
        }
    }
}
