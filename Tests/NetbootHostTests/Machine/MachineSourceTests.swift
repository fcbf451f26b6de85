import Logging
import MachineSource
import NetbootHost
import NetbootKit
import NetbootTesting
import XCTest

/// The machine source composing others through the host's ``RegistryRouter``, and the host's
/// generic parts for boot additions (script, retry script, query).
final class MachineSourceTests: XCTestCase {
    func makeRouter(rules: [String: String], disabled: Set<String> = []) throws -> (MachineSource, RegistryRouter) {
        let dir = try makeTemporaryDirectory(self, "machines")
        for (name, json) in rules { try json.write(toFile: "\(dir)/\(name).json", atomically: true, encoding: .utf8) }
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let machine = MachineSource(directory: dir, logger: logger, now: { 1_700_000_000 })
        let path = PackFixtures.shared.system
        let scripted = ScriptedSource(answers: [
            "ready": .storePath(path), "wait": .stillWorking("still building"), "broken": .failed(reason: "the configuration is broken"),
        ])
        return (machine, RegistryRouter(sources: [scripted, machine], disabled: disabled))
    }

    func testTheRuleBootsWhateverItsSourceAnswers() async throws {
        let (machine, router) = try makeRouter(rules: [
            "ready": #"{"match": {"mac": "52:54:00:00:00:01"}, "boot": "scripted/ready", "cmdline": "x=1", "files": {"/etc/a": "b"}}"#,
            "wait": #"{"match": {"mac": "52:54:00:00:00:02"}, "boot": "scripted/wait"}"#,
            "broken": #"{"match": {"mac": "52:54:00:00:00:03"}, "boot": "scripted/broken"}"#,
            "missing": #"{"match": {"mac": "52:54:00:00:00:04"}, "boot": "scripted/nothing"}"#,
        ])
        func resolve(_ mac: String) async throws -> Resolution {
            try await router.resolve(source: "machine", DispatchRequest(segments: [], query: "mac=\(mac)&uuid=", client: "10.0.2.15"))
        }
        let expected = BootAdditions(key: "ready", kernelArguments: "x=1", overlay: [.directory(path: "etc", mode: 0o755), .file(path: "etc/a", mode: 0o644, contents: [UInt8(ascii: "b")])])
        let resolvedReady = try await resolve("52-54-00-00-00-01")
        XCTAssertEqual(resolvedReady, .boot(PackFixtures.shared.system, additions: expected))
        let resolvedWait = try await resolve("52-54-00-00-00-02")
        XCTAssertEqual(resolvedWait, .stillWorking("still building"))
        let resolvedBroken = try await resolve("52-54-00-00-00-03")
        XCTAssertEqual(resolvedBroken, .failed(reason: "the configuration is broken"))
        do {
            _ = try await resolve("52-54-00-00-00-04")
            XCTFail("a missing answer is the source's 404")
        } catch { XCTAssertEqual(error as? DispatchError, .notFound("no scripted answer 'nothing'")) }
        let unknown = try await resolve("52-54-00-00-00-05")
        XCTAssertEqual(unknown, .waitAndRetry(lines: MachineScripts.unknownMachine(try MachineIdentity.from(query: "mac=52-54-00-00-00-05")), seconds: 30))
        let additions = try await machine.additions(forKey: "ready", router: router)
        XCTAssertEqual(additions, expected)
        let gone = try await machine.additions(forKey: "nothing-by-that-name", router: router)
        XCTAssertNil(gone)
        let status = await machine.statusLines(router: router)
        XCTAssertEqual(status.last, "machine-boot 52:54:00:00:00:01 at 2023-11-14T22:13:20Z client 10.0.2.15 rule ready path \(PackFixtures.shared.system.name)")
        XCTAssertEqual(status.filter { $0.hasPrefix("machine-boot") }.count, 1, "only boots are recorded")
    }

    func testARuleNamingATurnedOffSourceIsSkipped() async throws {
        let (machine, router) = try makeRouter(rules: ["ready": #"{"boot": "scripted/ready"}"#], disabled: ["scripted"])
        let status = await machine.statusLines(router: router)
        XCTAssertEqual(status, ["machine-rule-invalid ready.json boot names the source 'scripted', which this server does not have (sources: )"])
    }

    func testTheScriptNamesTheOverlayAfterTheSharedInitrdAndBothOnTheKernelLine() throws {
        let path = PackFixtures.shared.system
        var script = IPXEScript(path: path, kernelParameters: "console=ttyS0", prefix: "p=1", suffix: "s=1")
        let plain = script.text
        script.additionalArguments = "nns.machine=a"
        XCTAssertEqual(script.text, plain.replacingOccurrences(of: "console=ttyS0 s=1", with: "console=ttyS0 nns.machine=a s=1"))
        script.overlayURL = "/overlay/machine/a"
        XCTAssertEqual(script.text, """
            #!ipxe
            echo Booting NixOS closure \(path.name).
            kernel bzImage initrd=initrd initrd=overlay rdinit=\(path.absolutePath)/init p=1 console=ttyS0 nns.machine=a s=1
            initrd initrd
            initrd --name overlay /overlay/machine/a
            boot

            """)
    }

    func testTheRetryScriptShowsEveryLineAndWaitsAsAsked() {
        XCTAssertEqual(RetryScript(lines: ["one $x", "two; three"], seconds: 30, url: "http://h/dispatch/machine?mac=a b").text, """
            #!ipxe
            echo one x
            echo two three
            echo Trying again in 30 seconds.
            sleep 30
            chain --autofree http://h/dispatch/machine?mac=a%20b

            """)
        XCTAssertEqual(RetryScript(lines: ["r"], seconds: 5, url: "/u").text, RetryScript(reason: "r", url: "/u").text)
    }

    func testTheRedirectNamesTheAdditionsOnceWhateverTheClientSent() throws {
        XCTAssertEqual(BootAdditionsQuery.appending(source: "machine", key: "a", to: nil), "boot_additions=machine%2Fa")
        XCTAssertEqual(
            BootAdditionsQuery.appending(source: "machine", key: "a", to: "mac=1&boot_additions=machine%2Fb&boot%5Fadditions=x&x=2"),
            "mac=1&x=2&boot_additions=machine%2Fa")
        XCTAssertEqual(try BootAdditionsQuery.reference(in: "boot_additions=machine%2Fa")?.key, "a")
        XCTAssertThrowsError(try BootAdditionsQuery.reference(in: "boot_additions=machine%2F..%2Fx"))
    }
}
