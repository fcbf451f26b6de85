import ConfigurationSource
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NetbootHost
import NIOCore
import XCTest

/// `/dispatch/configuration/NAME` with real nix-instantiate and nix-store.
final class ConfigurationSourceTests: XCTestCase {
    func version(of path: StorePath) throws -> String {
        try String(contentsOfFile: path.absolutePath + "/version", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func rootTarget(_ test: TestServer, _ name: String) throws -> String {
        try FileManager.default.destinationOfSymbolicLink(atPath: test.options.directory(nil, "gc-roots") + "/configuration-" + name)
    }

    func testAConfigurationBuildsAndIsRooted() async throws {
        let test = try TestServer(self)
        let name = "ok-\(UUID().uuidString.prefix(8))"
        let counter = test.stateDir + "/counter"
        try writeConfiguration(stateDir: test.stateDir, name: name, version: "v1-\(UUID())", counter: counter)
        guard case .storePath(let path) = try await test.configurationSource.resolve(DispatchRequest(segments: [name], query: nil)) else {
            return XCTFail("expected a store path")
        }
        XCTAssertTrue(try version(of: path).hasPrefix("v1-"))
        XCTAssertEqual(try rootTarget(test, name), path.absolutePath)
        let roots = try shellString("nix-store --gc --print-roots | grep -F '\(test.stateDir)' || true")
        XCTAssertTrue(roots.contains(path.absolutePath), "a real GC root: \(roots)")
    }

    func testABuilderThatWrites4MBToStderrBuilds() async throws {
        let test = try TestServer(self)
        let name = "noisy-\(UUID().uuidString.prefix(8))"
        let counter = test.stateDir + "/counter"
        try writeConfiguration(stateDir: test.stateDir, name: name, version: "v1-\(UUID())", noise: 4 << 20, counter: counter)
        guard case .storePath(let path) = try await test.configurationSource.resolve(DispatchRequest(segments: [name], query: nil)) else {
            return XCTFail("expected a store path")
        }
        XCTAssertTrue(try version(of: path).hasPrefix("v1-"))
    }

    func testAFailedBuildAnswersASanitisedRetryScript() async throws {
        let test = try TestServer(self)
        let name = "broken-\(UUID().uuidString.prefix(8))"
        try writeConfiguration(stateDir: test.stateDir, name: name, version: "x", fail: true, counter: test.stateDir + "/counter")
        let app = Application(router: test.server.makeRouter())
        try await app.test(.router) { client in
            let query = "cmdline_suffix_args=quiet"
            try await client.execute(uri: "/dispatch/configuration/\(name)?\(query)", method: .get) { response in
                XCTAssertEqual(response.status, .ok)
                let script = String(buffer: response.body)
                let lines = script.split(separator: "\n", omittingEmptySubsequences: false)
                XCTAssertEqual(lines.first, "#!ipxe")
                XCTAssertTrue(lines[1].hasPrefix("echo building configuration \(name) failed"), script)
                XCTAssertFalse(lines[1].contains("$"), "no iPXE expansions: \(script)")
                XCTAssertTrue(script.contains("sleep 5\n"), script)
                XCTAssertTrue(script.contains("chain --autofree "), script)
                XCTAssertTrue(script.contains("/dispatch/configuration/\(name)?\(query)\n"), "the full URL with its query: \(script)")
                XCTAssertEqual(lines.count, 6, "one line of reason: \(script)")
            }
        }
    }

    func testTheRaceOfTheOriginalIsFixed() async throws {
        let test = try TestServer(self, configurationArguments: ["--build-timeout", "60"])
        let source = test.configurationSource
        let name = "race-\(UUID().uuidString.prefix(8))"
        let counter = test.stateDir + "/counter"
        let stamp = UUID().uuidString
        try writeConfiguration(stateDir: test.stateDir, name: name, version: "A-\(stamp)", sleep: 4, counter: counter)
        let a = Task { try await source.resolve(DispatchRequest(segments: [name], query: nil)) }
        // Wait until A's build runs, then edit the configuration and ask again.
        let deadline = Date().addingTimeInterval(30)
        while readLines(counter).isEmpty && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        XCTAssertEqual(readLines(counter), ["built-A-\(stamp)"])
        try writeConfiguration(stateDir: test.stateDir, name: name, version: "B-\(stamp)", sleep: 0, counter: counter)
        guard case .storePath(let b) = try await source.resolve(DispatchRequest(segments: [name], query: nil)) else { return XCTFail() }
        XCTAssertEqual(try version(of: b), "B-\(stamp)", "B is sent to B's result")
        XCTAssertEqual(try rootTarget(test, name), b.absolutePath)
        guard case .storePath(let aPath) = try await a.value else { return XCTFail() }
        XCTAssertEqual(try version(of: aPath), "A-\(stamp)", "A is sent to A's result, not to a symlink read afterwards")
        XCTAssertEqual(try rootTarget(test, name), b.absolutePath, "A's late build does not move the root back")
    }

    func testConcurrentRequestsShareEvaluationsAndOneBuild() async throws {
        let (tool, log) = try loggingTools(self)
        let test = try TestServer(self, tool: tool)
        let source = test.configurationSource
        let name = "many-\(UUID().uuidString.prefix(8))"
        let counter = test.stateDir + "/counter"
        try writeConfiguration(stateDir: test.stateDir, name: name, version: "v-\(UUID())", sleep: 1, counter: counter)
        let results = try await withThrowingTaskGroup(of: Resolution.self) { group in
            for _ in 0..<20 { group.addTask { try await source.resolve(DispatchRequest(segments: [name], query: nil)) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertEqual(Set(results.map { "\($0)" }).count, 1, "\(results)")
        guard case .storePath = results[0] else { return XCTFail("\(results[0])") }
        XCTAssertEqual(readLines(counter).count, 1, "one build")
        let evaluations = maximumOverlap(log, tool: "nix-instantiate")
        XCTAssertEqual(evaluations.overlap, 1, "one evaluation at a time")
        XCTAssertLessThanOrEqual(evaluations.runs, 2, "one running, the rest joined the queued one")
        XCTAssertEqual(maximumOverlap(log, tool: "nix-store").overlap, 1)
    }

    func testEvaluationsAcrossNamesAreBoundedByMaxEvaluations() async throws {
        let (tool, log) = try loggingTools(self, delay: 0.4)
        let test = try TestServer(self, configurationArguments: ["--max-evaluations", "2"], tool: tool)
        let source = test.configurationSource
        let names = (0..<10).map { "wide-\($0)-\(UUID().uuidString.prefix(8))" }
        for name in names {
            try writeConfiguration(stateDir: test.stateDir, name: name, version: "v-\(UUID())", counter: test.stateDir + "/counter")
        }
        let results = try await withThrowingTaskGroup(of: Resolution.self) { group in
            for name in names { group.addTask { try await source.resolve(DispatchRequest(segments: [name], query: nil)) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertEqual(results.filter { if case .storePath = $0 { true } else { false } }.count, 10, "\(results)")
        let evaluations = maximumOverlap(log, tool: "nix-instantiate")
        XCTAssertEqual(evaluations.runs, 10)
        XCTAssertEqual(evaluations.overlap, 2, "ten names, at most two evaluations at once")
    }

    func testAnEvaluationBeyondEvalTimeoutIsEndedWithWhatItStarted() async throws {
        let dir = try makeTemporaryDirectory(self, "tools")
        let real = try shellString("command -v nix-store")
        try "#!/bin/sh\nsleep 600 &\necho $! > \(dir)/child\nwait\n".write(toFile: dir + "/nix-instantiate", atomically: true, encoding: .utf8)
        try "#!/bin/sh\nexec \(real) \"$@\"\n".write(toFile: dir + "/nix-store", atomically: true, encoding: .utf8)
        chmod(dir + "/nix-instantiate", 0o755)
        chmod(dir + "/nix-store", 0o755)
        let test = try TestServer(self, configurationArguments: ["--eval-timeout", "1"], tool: { NixCommand(executable: dir + "/" + $0) })
        let name = "endless-\(UUID().uuidString.prefix(8))"
        try writeConfiguration(stateDir: test.stateDir, name: name, version: "x", counter: test.stateDir + "/counter")
        let started = ContinuousClock.now
        let resolution = try await test.configurationSource.resolve(DispatchRequest(segments: [name], query: nil))
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(10))
        guard case .failed(let reason) = resolution else { return XCTFail("\(resolution)") }
        XCTAssertTrue(reason.contains("longer than 1 seconds"), reason)
        let child = Int32(try String(contentsOfFile: dir + "/child", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        XCTAssertGreaterThan(child, 0)
        let gone = try await waitUntilGone(child)
        XCTAssertTrue(gone, "the evaluation's own children are ended with it")
    }

    func testASlowBuildAnswers503AndTheRetryJoinsIt() async throws {
        let test = try TestServer(self, configurationArguments: ["--build-timeout", "1"])
        let name = "slow-\(UUID().uuidString.prefix(8))"
        let counter = test.stateDir + "/counter"
        try writeConfiguration(stateDir: test.stateDir, name: name, version: "v-\(UUID())", sleep: 3, counter: counter)
        let app = Application(router: test.server.makeRouter())
        try await app.test(.router) { client in
            let started = ContinuousClock.now
            let first = try await client.execute(uri: "/dispatch/configuration/\(name)", method: .get)
            XCTAssertEqual(first.status, .serviceUnavailable)
            XCTAssertLessThan(ContinuousClock.now - started, .seconds(2.5), "answered at the timeout, not when the build ended")
            XCTAssertEqual(first.headers[.retryAfter], "5")
            try await Task.sleep(for: .seconds(3))
            let second = try await client.execute(uri: "/dispatch/configuration/\(name)", method: .get)
            XCTAssertEqual(second.status, .found)
            XCTAssertEqual(readLines(counter).count, 1, "the retry joined the running build")
        }
    }

    func testRefusals() async throws {
        let test = try TestServer(self)
        try FileManager.default.createDirectory(atPath: test.stateDir + "/configurations", withIntermediateDirectories: true)
        let app = Application(router: test.server.makeRouter())
        try await app.test(.router) { client in
            let missing = try await client.execute(uri: "/dispatch/configuration/nothing-here", method: .get)
            XCTAssertEqual(missing.status, .notFound)
            for bad in ["..", ".hidden", "a%2Fb", "a%00b", String(repeating: "x", count: 201)] {
                let response = try await client.execute(uri: "/dispatch/configuration/\(bad)", method: .get)
                XCTAssertEqual(response.status, .badRequest, bad)
            }
            let two = try await client.execute(uri: "/dispatch/configuration/a/b", method: .get)
            XCTAssertEqual(two.status, .badRequest)
        }
        let bare = try TestServer(self)
        try await Application(router: bare.server.makeRouter()).test(.router) { client in
            let response = try await client.execute(uri: "/dispatch/configuration/x", method: .get)
            XCTAssertEqual(response.status, .notFound)
            XCTAssertTrue(String(buffer: response.body).contains("configuration booting is not configured"), String(buffer: response.body))
        }
    }
}
