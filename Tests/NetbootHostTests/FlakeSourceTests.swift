import ArgumentParser
import Codecs
import FlakeSource
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NetbootHost
import NIOCore
import XCTest

/// `/dispatch/flake/NAME/HOST` with real `nix eval` and `nix-store` on `path:` flakes without inputs.
final class FlakeSourceTests: XCTestCase {
    func testAHostBuildsIsRootedAndRedirectsToItsScript() async throws {
        let flake = try makeTemporaryDirectory(self, "flake")
        let counter = flake + ".counter"
        let stamp = "v1-\(UUID())"
        try writeFlake(flake, hosts: ["rack-a": FlakeHost(version: stamp)], counter: counter)
        let test = try FlakeTestServer(self, flakes: ["infra": "path:" + flake])
        let app = Application(router: test.server.makeRouter())
        try await app.test(.router) { client in
            let query = "cmdline_suffix_args=quiet"
            let dispatch = try await client.execute(uri: "/dispatch/flake/infra/rack-a?\(query)", method: .get)
            XCTAssertEqual(dispatch.status, .found, String(buffer: dispatch.body))
            let location = try XCTUnwrap(dispatch.headers[.location])
            XCTAssertTrue(location.hasPrefix("/boot/") && location.hasSuffix("/netboot.ipxe?\(query)"), location)
            let name = location.dropFirst("/boot/".count).prefix { $0 != "/" }
            let path = try StorePath(name: String(name))
            XCTAssertEqual(try systemVersion(of: path), stamp)
            let script = try await client.execute(uri: location, method: .get)
            XCTAssertEqual(script.status, .ok)
            let text = String(buffer: script.body)
            XCTAssertTrue(text.hasPrefix("#!ipxe\n"), text)
            XCTAssertTrue(text.contains("rdinit=\(path.absolutePath)/init"), text)
            XCTAssertTrue(text.contains("quiet"), "the query reaches the script: \(text)")
            XCTAssertEqual(try test.rootTarget("flake-infra-rack%2Da"), path.absolutePath)
        }
        let roots = try shellString("nix-store --gc --print-roots | grep -F '\(test.stateDir)' || true")
        XCTAssertTrue(roots.contains("flake-infra-rack%2Da"), "a real GC root: \(roots)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: flake + "/flake.lock"), "the operator's lock file is never written")
    }

    func testEditingTheFlakeGivesTheNewSystem() async throws {
        let flake = try makeTemporaryDirectory(self, "flake")
        let counter = flake + ".counter"
        let test = try FlakeTestServer(self, flakes: ["infra": "path:" + flake])
        let stamp = UUID().uuidString
        try writeFlake(flake, hosts: ["h": FlakeHost(version: "one-\(stamp)")], counter: counter)
        guard case .storePath(let first) = try await test.resolve("infra", "h") else { return XCTFail("expected a store path") }
        try writeFlake(flake, hosts: ["h": FlakeHost(version: "two-\(stamp)")], counter: counter)
        guard case .storePath(let second) = try await test.resolve("infra", "h") else { return XCTFail("expected a store path") }
        XCTAssertEqual(try systemVersion(of: first), "one-\(stamp)")
        XCTAssertEqual(try systemVersion(of: second), "two-\(stamp)", "the edit is seen by the next dispatch")
        XCTAssertEqual(try test.rootTarget("flake-infra-h"), second.absolutePath)
    }

    func testTheRaceStillBootsEachRequestItsOwnBuild() async throws {
        let flake = try makeTemporaryDirectory(self, "flake")
        let counter = flake + ".counter"
        let test = try FlakeTestServer(self, flakes: ["infra": "path:" + flake], arguments: ["--build-timeout", "60"])
        let stamp = UUID().uuidString
        try writeFlake(flake, hosts: ["race": FlakeHost(version: "A-\(stamp)", sleep: 4)], counter: counter)
        let a = Task { try await test.resolve("infra", "race") }
        // Wait until A's build runs, then edit the flake and ask again.
        let deadline = Date().addingTimeInterval(30)
        while readLines(counter).isEmpty && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        XCTAssertEqual(readLines(counter), ["built-A-\(stamp)"])
        try writeFlake(flake, hosts: ["race": FlakeHost(version: "B-\(stamp)")], counter: counter)
        guard case .storePath(let b) = try await test.resolve("infra", "race") else { return XCTFail() }
        XCTAssertEqual(try systemVersion(of: b), "B-\(stamp)", "B is sent to B's result")
        XCTAssertEqual(try test.rootTarget("flake-infra-race"), b.absolutePath)
        guard case .storePath(let aPath) = try await a.value else { return XCTFail() }
        XCTAssertEqual(try systemVersion(of: aPath), "A-\(stamp)", "A is sent to A's result, not to a symlink read afterwards")
        XCTAssertEqual(try test.rootTarget("flake-infra-race"), b.absolutePath, "A's late build does not move the root back")
    }

    func testTheOperatorsLockFileIsNeverWritten() async throws {
        // A flake with one input (another local flake, no network): evaluating it without
        // --no-write-lock-file would create flake.lock next to flake.nix.
        let dependency = try makeTemporaryDirectory(self, "flake-input"), flake = try makeTemporaryDirectory(self, "flake")
        let stamp = "locked-\(UUID())"
        try "{ outputs = { self }: { version = \"\(stamp)\"; }; }".write(toFile: dependency + "/flake.nix", atomically: true, encoding: .utf8)
        try writeFlake(flake, hosts: ["h": FlakeHost(version: "${dependency.version}")], input: "path:" + dependency, counter: flake + ".counter")
        let test = try FlakeTestServer(self, flakes: ["infra": "path:" + flake])
        guard case .storePath(let path) = try await test.resolve("infra", "h") else { return XCTFail("expected a store path") }
        XCTAssertEqual(try systemVersion(of: path), stamp, "the input was used")
        XCTAssertFalse(FileManager.default.fileExists(atPath: flake + "/flake.lock"), "the operator's lock file is never written")
    }

    func testASlowBuildAnswers503AndTheRetryJoinsIt() async throws {
        let flake = try makeTemporaryDirectory(self, "flake")
        let counter = flake + ".counter"
        try writeFlake(flake, hosts: ["slow": FlakeHost(version: "v-\(UUID())", sleep: 3)], counter: counter)
        let test = try FlakeTestServer(self, flakes: ["infra": "path:" + flake], arguments: ["--build-timeout", "1"])
        let app = Application(router: test.server.makeRouter())
        try await app.test(.router) { client in
            let started = ContinuousClock.now
            let first = try await client.execute(uri: "/dispatch/flake/infra/slow", method: .get)
            XCTAssertEqual(first.status, .serviceUnavailable)
            XCTAssertLessThan(ContinuousClock.now - started, .seconds(2.5), "answered at the timeout, not when the build ended")
            XCTAssertEqual(first.headers[.retryAfter], "5")
            try await Task.sleep(for: .seconds(3))
            let second = try await client.execute(uri: "/dispatch/flake/infra/slow", method: .get)
            XCTAssertEqual(second.status, .found)
            XCTAssertEqual(readLines(counter).count, 1, "the retry joined the running build")
        }
    }

    func testAnUnknownNameContactsNothing() async throws {
        let flake = try makeTemporaryDirectory(self, "flake")
        try writeFlake(flake, hosts: ["h": FlakeHost(version: "v-\(UUID())")], counter: flake + ".counter")
        let (tool, log) = try countingTools(self)
        let test = try FlakeTestServer(self, flakes: ["infra": "path:" + flake], tool: tool)
        let app = Application(router: test.server.makeRouter())
        try await app.test(.router) { client in
            let unknown = try await client.execute(uri: "/dispatch/flake/other/h", method: .get)
            XCTAssertEqual(unknown.status, .notFound)
            XCTAssertTrue(String(buffer: unknown.body).contains("no flake named 'other'"), String(buffer: unknown.body))
            XCTAssertEqual(readLines(log), [], "nothing evaluated, no Nix process started")
            let known = try await client.execute(uri: "/dispatch/flake/infra/h", method: .get)
            XCTAssertEqual(known.status, .found, String(buffer: known.body))
            XCTAssertEqual(readLines(log).first, "nix", "the known name is evaluated with nix (so the count above could fail)")
        }
        let bare = try FlakeTestServer(self, flakes: [:])
        try await Application(router: bare.server.makeRouter()).test(.router) { client in
            let response = try await client.execute(uri: "/dispatch/flake/infra/h", method: .get)
            XCTAssertEqual(response.status, .notFound)
            XCTAssertTrue(String(buffer: response.body).contains("flake booting is not configured"), String(buffer: response.body))
        }
    }

    func testAFlakeThatFailsToEvaluateAnswersTheRetryScriptWithoutServerPaths() async throws {
        let flake = try makeTemporaryDirectory(self, "flake")
        try writeFlake(flake, hosts: ["h": FlakeHost(version: "x", evaluationError: "the $HOME config is broken")], counter: flake + ".counter")
        let test = try FlakeTestServer(self, flakes: ["infra": "path:" + flake + "/"])
        let app = Application(router: test.server.makeRouter())
        try await app.test(.router) { client in
            let query = "cmdline_suffix_args=quiet"
            try await client.execute(uri: "/dispatch/flake/infra/h?\(query)", method: .get) { response in
                XCTAssertEqual(response.status, .ok)
                let script = String(buffer: response.body)
                let lines = script.split(separator: "\n", omittingEmptySubsequences: false)
                XCTAssertEqual(lines.first, "#!ipxe")
                XCTAssertEqual(lines[1], "echo evaluating flake infra host h failed: error: the HOME config is broken", script)
                XCTAssertTrue(script.contains("chain --autofree "), script)
                XCTAssertTrue(script.contains("/dispatch/flake/infra/h?\(query)\n"), script)
                XCTAssertEqual(lines.count, 6, "one line of reason: \(script)")
            }
            // A host the flake does not have: Nix names the flake, the machine sees only its NAME.
            try await client.execute(uri: "/dispatch/flake/infra/absent", method: .get) { response in
                XCTAssertEqual(response.status, .ok)
                let script = String(buffer: response.body)
                XCTAssertTrue(script.contains("echo evaluating flake infra host absent failed: error: flake infra does not provide attribute"), script)
                XCTAssertFalse(script.contains(flake), "no server path in the answer: \(script)")
            }
        }
    }

    func testHostNamesAreQuotedAndRootNamesNeverCollide() async throws {
        // `a-b`/`c` and `a`/`b-c` would both be flake-a-b-c unescaped.
        let one = try makeTemporaryDirectory(self, "flake"), two = try makeTemporaryDirectory(self, "flake")
        let stamp = UUID().uuidString
        // `x.y` is one host name, not the attribute `y` of a host `x`; `"` cannot be named at all.
        try writeFlake(one, hosts: ["c": FlakeHost(version: "ab-c-\(stamp)"), "x.y": FlakeHost(version: "dotted-\(stamp)")],
            nested: ["x": ["y": FlakeHost(version: "nested-\(stamp)")]], counter: one + ".counter")
        let odd = "odd name+%41=é?#"
        try writeFlake(two, hosts: ["b-c": FlakeHost(version: "a-bc-\(stamp)"), odd: FlakeHost(version: "odd-\(stamp)")], counter: two + ".counter")
        let test = try FlakeTestServer(self, flakes: ["a-b": "path:" + one, "a": "path:" + two])
        guard case .storePath(let abc) = try await test.resolve("a-b", "c"),
            case .storePath(let aBC) = try await test.resolve("a", "b-c"),
            case .storePath(let dotted) = try await test.resolve("a-b", "x.y")
        else { return XCTFail("expected store paths") }
        XCTAssertEqual(try systemVersion(of: abc), "ab-c-\(stamp)")
        XCTAssertEqual(try systemVersion(of: aBC), "a-bc-\(stamp)")
        XCTAssertEqual(try systemVersion(of: dotted), "dotted-\(stamp)")
        XCTAssertEqual(try test.rootTarget("flake-a%2Db-c"), abc.absolutePath)
        XCTAssertEqual(try test.rootTarget("flake-a-b%2Dc"), aBC.absolutePath)
        XCTAssertEqual(try test.rootTarget("flake-a%2Db-x.y"), dotted.absolutePath)
        guard case .storePath(let oddPath) = try await test.resolve("a", odd) else { return XCTFail("expected a store path") }
        XCTAssertEqual(try systemVersion(of: oddPath), "odd-\(stamp)", "URL and attribute syntax in a host name is only a name")
        XCTAssertEqual(try test.rootTarget("flake-a-odd%20name%2B%2541%3D%C3%A9%3F%23"), oddPath.absolutePath)
        let app = Application(router: test.server.makeRouter())
        try await app.test(.router) { client in
            // A quote cannot be named; a host whose escaped root name would exceed a file name is refused.
            for bad in ["a%22b", "..", "a%2Fb", String(repeating: "x", count: 201), String(repeating: "-", count: 100)] {
                let response = try await client.execute(uri: "/dispatch/flake/a/\(bad)", method: .get)
                XCTAssertEqual(response.status, .badRequest, bad)
            }
            let one = try await client.execute(uri: "/dispatch/flake/a", method: .get)
            XCTAssertEqual(one.status, .badRequest)
        }
    }

    func testTheInstallableQuotesAndEncodesEveryAttributeName() throws {
        let installable = try FlakeInstallable(reference: "git+file:///srv/infra?ref=main", attributePath: ["nixosConfigurations", "a.b c#%", "drvPath"])
        XCTAssertEqual(installable.text, "git+file:///srv/infra?ref=main#%22nixosConfigurations%22.%22a.b%20c%23%25%22.%22drvPath%22")
        XCTAssertThrowsError(try FlakeInstallable(reference: "path:/srv", attributePath: ["a\"b"]))
        XCTAssertThrowsError(try FlakeInstallable(reference: "path:/srv", attributePath: [""]))
        XCTAssertThrowsError(try FlakeInstallable(reference: "path:/srv#x", attributePath: ["a"]))
        XCTAssertThrowsError(try FlakeInstallable(reference: "--impure", attributePath: ["a"]))
    }

    func testAMalformedFlakeOptionIsRefusedAtStartUp() throws {
        for (arguments, message) in [
            (["--flake", "infra"], "--flake takes NAME=FLAKEREF"),
            (["--flake", "in/fra=path:/srv"], "the name cannot appear in a URL"),
            (["--flake", "infra="], "the flake reference is empty"),
            (["--flake", "infra=path:/srv#nixosConfigurations"], "may not name an attribute"),
            (["--flake", "infra=--impure"], "may not start with '-'"),
            (["--flake", "infra=path:/a b"], "spaces or control characters"),
            (["--flake", "infra=path:/a", "--flake", "infra=path:/b"], "is given twice"),
        ] {
            XCTAssertThrowsError(try FlakeSource.Options.parse(arguments), "\(arguments)") { error in
                let text = FlakeSource.Options.message(for: error)
                XCTAssertTrue(text.contains(message), "\(arguments): \(text)")
            }
        }
        let result = try shell("'\(ServerProcess.binary)' --state-dir /nonexistent-nns --flake 'bad'", allowFailure: true)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.error.contains("--flake takes NAME=FLAKEREF, not 'bad'"), result.error)
    }
}

/// What the `version` file of a test system says.
func systemVersion(of path: StorePath) throws -> String {
    try String(contentsOfFile: path.absolutePath + "/version", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// A server wired as the executable wires it with the flake source, on a temporary state directory.
struct FlakeTestServer {
    let stateDir: String
    let server: NetbootServer
    let options: ServerOptions

    init(_ test: XCTestCase, flakes: [String: String], arguments: [String] = [], tool: (@Sendable (String) -> NixCommand)? = nil) throws {
        stateDir = try makeTemporaryDirectory(test, "state")
        options = try ServerOptions.parse(["--state-dir", stateDir])
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let context = NetbootServer.sourceContext(options: options, store: tool.map { NixStoreCLI(tool: $0) } ?? NixStoreCLI(), logger: logger)
        let flakeArguments = flakes.sorted { $0.key < $1.key }.flatMap { ["--flake", "\($0.key)=\($0.value)"] }
        var registry = ModuleRegistry()
        try registry.register(compressor: ZstdCompressor())
        try registry.register(source: try FlakeSource(options: try FlakeSource.Options.parse(flakeArguments + arguments), context: context))
        server = try NetbootServer(options: options, registry: registry, store: NixStoreCLI(), logger: logger)
        startServices(server.services, for: test)
    }

    var source: FlakeSource { server.registry.source(named: "flake") as! FlakeSource }

    func resolve(_ name: String, _ host: String) async throws -> Resolution {
        try await source.resolve(DispatchRequest(segments: [name, host], query: nil))
    }

    func rootTarget(_ root: String) throws -> String {
        try FileManager.default.destinationOfSymbolicLink(atPath: options.directory(nil, "gc-roots") + "/" + root)
    }
}

/// One `nixosConfigurations.HOST` of a test flake: a NixOS-shaped system (stand-in `kernel` and
/// `init`) whose `version` file says `version`; its builder appends `built-VERSION` to the counter
/// and sleeps `sleep` seconds first. With `evaluationError`, the toplevel is a `throw`.
struct FlakeHost {
    var version: String
    var sleep: Double = 0
    var evaluationError: String?

    func expression(counter: String) -> String {
        if let evaluationError { return "throw \"\(evaluationError)\"" }
        let script = "echo built-\(version) >> \(counter); sleep \(sleep); mkdir $out; echo \(version) > $out/version; echo kernel > $out/kernel; echo init > $out/init"
        return "system ''\(script)''"
    }
}

/// Writes `DIR/flake.nix` (no inputs) and `DIR/busybox/bin/busybox`: the same busybox fixture the
/// other tests build with, copied into the flake so that its evaluation stays pure.
/// With `input`, the flake has one input `dependency` with that URL.
func writeFlake(_ dir: String, hosts: [String: FlakeHost], nested: [String: [String: FlakeHost]] = [:], input: String? = nil, counter: String) throws {
    let busybox = dir + "/busybox"
    if !FileManager.default.fileExists(atPath: busybox) { try FileManager.default.copyItem(atPath: busyboxDirectory, toPath: busybox) }
    func configuration(_ host: FlakeHost) -> String { "{ config.system.build.toplevel = \(host.expression(counter: counter)); }" }
    var entries = hosts.sorted { $0.key < $1.key }.map { "\"\($0.key)\" = \(configuration($0.value));" }
    for (outer, inner) in nested.sorted(by: { $0.key < $1.key }) {
        entries.append("\"\(outer)\" = { " + inner.sorted { $0.key < $1.key }.map { "\"\($0.key)\" = \(configuration($0.value));" }.joined(separator: " ") + " };")
    }
    try """
    {
      \(input.map { "inputs.dependency.url = \"\($0)\";" } ?? "")
      outputs = { self\(input == nil ? "" : ", dependency") }:
        let
          busybox = builtins.path { path = ./busybox; name = "busybox"; };
          system = script: derivation {
            name = "nixos-system-flake-test";
            system = "\(nixSystem)";
            builder = "${busybox}/bin/busybox";
            PATH = "${busybox}/bin";
            args = [ "sh" "-c" script ];
          };
        in {
          nixosConfigurations = {
            \(entries.joined(separator: "\n        "))
          };
        };
    }
    """.write(toFile: dir + "/flake.nix", atomically: true, encoding: .utf8)
}

/// Nix's name for this machine's platform (pure evaluation has no `builtins.currentSystem`).
let nixSystem: String = (try? shellString("nix-instantiate --eval -E builtins.currentSystem"))?.filter { $0 != "\"" } ?? "x86_64-linux"

/// Wrappers for `nix`, `nix-store` and `nix-instantiate` that write each tool's name to a log when it starts.
func countingTools(_ test: XCTestCase) throws -> (tool: @Sendable (String) -> NixCommand, log: String) {
    let dir = try makeTemporaryDirectory(test, "tools")
    let log = dir + "/runs.log"
    for name in ["nix", "nix-store", "nix-instantiate"] {
        let real = try shellString("command -v \(name)")
        try "#!/bin/sh\necho \(name) >> \(log)\nexec \(real) \"$@\"\n".write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
        chmod(dir + "/" + name, 0o755)
    }
    return ({ NixCommand(executable: dir + "/" + $0) }, log)
}
