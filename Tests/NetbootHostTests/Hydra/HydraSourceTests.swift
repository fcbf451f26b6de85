import ArgumentParser
import Foundation
import Logging
import NetbootHost
import ServiceLifecycle
import Synchronization
import XCTest

@testable import HydraSource

/// The Hydra source against a stand-in Hydra and a real, signed binary cache, with real Nix.
final class HydraSourceTests: XCTestCase {
    let request = DispatchRequest(segments: ["local", "P", "J", "system"], query: nil)

    /// A source trusting `--hydra` values `hydras`, whose Nix tools see `nixConfig` (if any) and are
    /// found in `tools` (if given), with its services running until the test ends.
    func makeSource(_ hydras: [String], timeout: Int = 60, nixConfig: String? = nil, tools: String? = nil) throws -> (HydraSource, gcRoots: String) {
        let state = try temporaryDirectory(self, "state")
        let gcRoots = state + "/gc-roots"
        try FileManager.default.createDirectory(atPath: gcRoots, withIntermediateDirectories: true)
        let environment = nixConfig.map { ["NIX_CONFIG": $0] } ?? [:]
        var logger = Logger(label: "hydra-test")
        logger.logLevel = .critical
        let context = SourceContext(
            store: NixStoreCLI(tool: { name in NixCommand(executable: tools.map { $0 + "/" + name } ?? name, environment: environment) }),
            stateDirectory: state, gcRootDirectory: gcRoots, logger: logger)
        var options = try HydraSource.Options.parse([])
        options.hydras = hydras
        options.hydraTimeout = timeout
        let source = try HydraSource(options: options, context: context)
        // The source's coordinators run for the test, as the server runs them.
        let services = source.services
        let running = Task {
            await withDiscardingTaskGroup { group in
                for service in services { group.addTask { try? await service.run() } }
            }
        }
        addTeardownBlock {
            running.cancel()
            await running.value
        }
        return (source, gcRoots)
    }

    /// A store path that is valid already (no substitution needed), with a name of its own.
    func validPath(_ label: String) throws -> StorePath {
        let directory = try temporaryDirectory(self, label)
        try "\(label) \(UUID().uuidString)\n".write(toFile: directory + "/\(label)-hydra-build", atomically: true, encoding: .utf8)
        return try StorePath(absolutePath: try sh("nix-store --add \(directory)/\(label)-hydra-build").output)
    }

    func assertUpstreamFailure(
        _ source: HydraSource, _ request: DispatchRequest, mentioning expected: String,
        file: StaticString = #filePath, line: UInt = #line
    ) async {
        do {
            let resolution = try await source.resolve(request)
            XCTFail("expected a 502, got \(resolution)", file: file, line: line)
        } catch DispatchError.upstreamFailed(let reason) {
            XCTAssertTrue(reason.contains(expected), "reason: \(reason)", file: file, line: line)
            XCTAssertFalse(reason.contains("\n"), "one line: \(reason)", file: file, line: line)
        } catch {
            XCTFail("expected upstreamFailed, got \(error)", file: file, line: line)
        }
    }

    func testRealisesTheLatestBuildThroughASignedCacheAndRootsIt() async throws {
        let fixture = try SignedCacheFixture.make(in: try temporaryDirectory(self, "cache"))
        var setup = StandInHydra.Setup()
        setup.jobs["P/J/system"] = 1
        setup.builds[1] = StandInHydra.buildJSON(id: 1, job: "system", outPath: fixture.path.absolutePath)
        setup.cacheDirectory = fixture.cacheDirectory
        try await StandInHydra.with(setup) { hydra in
            let config = SignedCacheFixture.nixConfig(substituter: hydra.baseURL, trustedKey: fixture.publicKey)
            let (source, gcRoots) = try makeSource(["local=\(hydra.baseURL)"], nixConfig: config)
            let started = ContinuousClock.now
            let resolution = try await source.resolve(request)
            print("hydra resolve with substitution took \(ContinuousClock.now - started)")
            XCTAssertEqual(resolution, .storePath(fixture.path))

            // Substituted: valid again, the dependency too.
            try sh("nix-store --check-validity \(fixture.path.absolutePath) \(fixture.dependency.absolutePath)")
            // Rooted under an escaped per-job name, so it cannot be deleted now.
            let root = gcRoots + "/hydra-local+P+J+system"
            XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: root), fixture.path.absolutePath)
            let delete = try sh("nix-store --delete \(fixture.path.absolutePath)", allowFailure: true)
            XCTAssertNotEqual(delete.status, 0, "a rooted path must not be deletable")
            try sh("nix-store --check-validity \(fixture.path.absolutePath)")

            // The lookup: /latest, then the redirect to /build/1, both asking for JSON.
            let seen = hydra.requests
            XCTAssertEqual(Array(seen.prefix(2)), [
                .init(path: "/job/P/J/system/latest", accept: "application/json"),
                .init(path: "/build/1", accept: "application/json"),
            ])
            // Then Nix, from the stand-in's cache: its narinfo and NARs.
            let paths = seen.dropFirst(2).map(\.path)
            XCTAssertTrue(paths.contains("/\(fixture.path.hashPart).narinfo"), "\(paths)")
            XCTAssertTrue(paths.contains("/\(fixture.dependency.hashPart).narinfo"), "\(paths)")
            XCTAssertTrue(paths.contains { $0.hasPrefix("/nar/") }, "\(paths)")
        }
    }

    func testAWrongSigningKeyFailsTheRealise() async throws {
        let directory = try temporaryDirectory(self, "cache")
        let fixture = try SignedCacheFixture.make(in: directory)
        let other = try SignedCacheFixture.makeKeyPair(named: "hydra-test-other", in: directory)
        var setup = StandInHydra.Setup()
        setup.jobs["P/J/system"] = 1
        setup.builds[1] = StandInHydra.buildJSON(id: 1, job: "system", outPath: fixture.path.absolutePath)
        setup.cacheDirectory = fixture.cacheDirectory
        try await StandInHydra.with(setup) { hydra in
            let config = SignedCacheFixture.nixConfig(substituter: hydra.baseURL, trustedKey: other.publicKey)
            let (source, gcRoots) = try makeSource(["local=\(hydra.baseURL)"], nixConfig: config)
            await assertUpstreamFailure(source, request, mentioning: "could not realise \(fixture.path)")
            let invalid = try sh("nix-store --check-validity --print-invalid \(fixture.path.absolutePath)").output
            XCTAssertEqual(invalid, fixture.path.absolutePath, "an unverified path must not become valid")
            XCTAssertFalse(FileManager.default.fileExists(atPath: gcRoots + "/hydra-local+P+J+system"))
            XCTAssertTrue(hydra.requests.contains { $0.path == "/\(fixture.path.hashPart).narinfo" }, "Nix did ask the cache")
        }
    }

    func testAnUnknownHydraIsRefusedWithoutAnyRequest() async throws {
        try await StandInHydra.with(.init()) { hydra in
            let (source, _) = try makeSource(["local=\(hydra.baseURL)"])
            do {
                _ = try await source.resolve(DispatchRequest(segments: ["elsewhere", "P", "J", "system"], query: nil))
                XCTFail("an unnamed Hydra must be refused")
            } catch DispatchError.notFound(let reason) {
                XCTAssertTrue(reason.contains("elsewhere"), reason)
            }
            do {
                _ = try await source.resolve(DispatchRequest(segments: ["local", "P", "J"], query: nil))
                XCTFail("three segments are not a job")
            } catch DispatchError.badRequest(let reason) {
                XCTAssertTrue(reason.contains("/dispatch/hydra/HYDRA/PROJECT/JOBSET/JOB"), reason)
            }
            XCTAssertEqual(hydra.requests, [], "nothing may be contacted")
        }
    }

    func testHydraFailuresAreUpstreamFailures() async throws {
        var setup = StandInHydra.Setup()
        setup.jobs["P/J/bad-json"] = 2
        setup.builds[2] = #"{"id": 2, "buildoutputs": {"out": {"path": "/nix/store/"#  // cut short
        setup.jobs["P/J/no-out"] = 3
        setup.builds[3] = StandInHydra.buildJSON(id: 3, job: "no-out", outPath: nil)
        setup.jobs["P/J/not-in-store"] = 4
        setup.builds[4] = StandInHydra.buildJSON(id: 4, job: "not-in-store", outPath: "/tmp/elsewhere")
        setup.jobs["P/J/failed"] = 5
        setup.builds[5] = #"{"id":5,"finished":1,"buildstatus":1,"buildoutputs":{"out":{"path":"/nix/store/00000000000000000000000000000000-x"}}}"#
        setup.jobs["P/J/array"] = 6
        setup.builds[6] = "[1, 2, 3]"
        try await StandInHydra.with(setup) { hydra in
            let (source, _) = try makeSource(["local=\(hydra.baseURL)"])
            func job(_ name: String) -> DispatchRequest { DispatchRequest(segments: ["local", "P", "J", name], query: nil) }
            await assertUpstreamFailure(source, job("missing"), mentioning: "has no successful build of local/P/J/missing (404")
            await assertUpstreamFailure(source, job("bad-json"), mentioning: "not build JSON")
            await assertUpstreamFailure(source, job("array"), mentioning: "not build JSON")
            await assertUpstreamFailure(source, job("no-out"), mentioning: "build 3 of local/P/J/no-out has no 'out' output path")
            await assertUpstreamFailure(source, job("not-in-store"), mentioning: "is not a store path")
            await assertUpstreamFailure(source, job("failed"), mentioning: "did not succeed (buildstatus 1)")
            // A job name that needs escaping reaches Hydra escaped.
            await assertUpstreamFailure(source, job("a b+c"), mentioning: "404")
            XCTAssertEqual(hydra.requests.last?.path, "/job/P/J/a%20b%2Bc/latest")
        }
    }

    func testAnUnreachableHydraFailsQuickly() async throws {
        let closedPort = try await StandInHydra.with(.init()) { $0.port }  // stopped: nothing listens there now
        let (source, _) = try makeSource(["gone=http://127.0.0.1:\(closedPort)"])
        let started = ContinuousClock.now
        await assertUpstreamFailure(
            source, DispatchRequest(segments: ["gone", "P", "J", "system"], query: nil), mentioning: "could not reach Hydra 'gone'")
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(5))
    }

    func testASlowHydraAnswersRetryLaterAndTheAbandonedLookupIsDropped() async throws {
        // A path that is already valid: this test is about waiting, not substituting.
        let path = try validPath("slow")
        var setup = StandInHydra.Setup()
        setup.jobs["P/J/system"] = 1
        setup.builds[1] = StandInHydra.buildJSON(id: 1, job: "system", outPath: path.absolutePath)
        setup.firstLookupDelay = .seconds(4)
        try await StandInHydra.with(setup) { hydra in
            let (source, gcRoots) = try makeSource(["local=\(hydra.baseURL)"], timeout: 1)
            let clock = ContinuousClock()
            let started = clock.now
            var answers: [Resolution] = []
            var firstAnswerAfter: Duration?
            while clock.now - started < .seconds(30) {
                let answer = try await source.resolve(request)
                if firstAnswerAfter == nil { firstAnswerAfter = clock.now - started }
                answers.append(answer)
                if case .storePath = answer { break }
            }
            guard case .retryLater(seconds: 5, let reason) = answers.first else {
                return XCTFail("the first answer must be retry-later: \(answers)")
            }
            XCTAssertTrue(reason.contains("local/P/J/system"), reason)
            // Told to retry at the deadline, not when the lookup ends.
            XCTAssertLessThan(firstAnswerAfter ?? .seconds(99), .milliseconds(2000))
            XCTAssertEqual(answers, [answers[0], .storePath(path)])
            XCTAssertLessThan(clock.now - started, .seconds(10))
            // Nobody waited for the first lookup any more: it was dropped, and the retry asked anew
            // (and was answered at once) instead of waiting for the held one.
            XCTAssertEqual(hydra.requests.filter { $0.path.hasSuffix("/latest") }.count, 2)
            XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: gcRoots + "/hydra-local+P+J+system"), path.absolutePath)
            // The dropped lookup's transfer stopped long before the stand-in would have answered it.
            while source.lookups.load.running > 0, clock.now - started < .seconds(5) {
                try await Task.sleep(for: .milliseconds(20))
            }
            XCTAssertLessThan(clock.now - started, .milliseconds(3500), "the held lookup was cancelled, not waited out")
        }
    }

    func testASlowRealiseAnswersRetryLaterAndTheRetryJoinsIt() async throws {
        let path = try validPath("slow-realise")
        // nix-store that takes 2.5 s and logs each run.
        let tools = try temporaryDirectory(self, "tools")
        let log = tools + "/runs.log"
        try """
            #!/bin/sh
            echo "$@" >> \(log)
            sleep 2.5
            exec \(try sh("command -v nix-store").output) "$@"
            """.write(toFile: tools + "/nix-store", atomically: true, encoding: .utf8)
        try sh("chmod +x \(tools)/nix-store")
        var setup = StandInHydra.Setup()
        setup.jobs["P/J/system"] = 1
        setup.builds[1] = StandInHydra.buildJSON(id: 1, job: "system", outPath: path.absolutePath)
        try await StandInHydra.with(setup) { hydra in
            let (source, gcRoots) = try makeSource(["local=\(hydra.baseURL)"], timeout: 1, tools: tools)
            let clock = ContinuousClock()
            let started = clock.now
            var answers: [Resolution] = []
            while clock.now - started < .seconds(30) {
                let answer = try await source.resolve(request)
                if answers.isEmpty { XCTAssertLessThan(clock.now - started, .milliseconds(2000), "answered at the deadline") }
                answers.append(answer)
                if case .storePath = answer { break }
            }
            guard case .retryLater(seconds: 5, let reason) = answers.first else {
                return XCTFail("the first answer must be retry-later: \(answers)")
            }
            XCTAssertTrue(reason.contains("build 1 of local/P/J/system"), reason)
            XCTAssertEqual(answers.last, .storePath(path))
            XCTAssertLessThan(clock.now - started, .seconds(10))
            XCTAssertEqual(readLines(log).count, 1, "the retries joined the one realise: \(readLines(log))")
            XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: gcRoots + "/hydra-local+P+J+system"), path.absolutePath)
        }
    }

    /// The hostile probe of issue 9: hundreds of distinct jobs against a Hydra that never answers.
    func testHundredsOfJobsAgainstASilentHydraStayBoundedAndAreCancelled() async throws {
        let path = try validPath("after-the-storm")
        var setup = StandInHydra.Setup()
        setup.jobs["P/J/system"] = 1
        setup.builds[1] = StandInHydra.buildJSON(id: 1, job: "system", outPath: path.absolutePath)
        try await StandInHydra.with(setup) { working in
            try await SilentHydra.with { silent in
                let timeout = 2, jobs = 300, cap = try HydraSource.Options.parse([]).maxHydraLookups
                let (source, _) = try makeSource(["silent=\(silent.baseURL)", "local=\(working.baseURL)"], timeout: timeout)
                let before = ProcessLoad.of()
                let peak = Mutex((load: before, connections: 0))
                let sampling = Task {
                    while !Task.isCancelled {
                        let now = ProcessLoad.of(), counts = silent.counts
                        peak.withLock {
                            $0.load = ProcessLoad(threads: max($0.load.threads, now.threads), files: max($0.load.files, now.files))
                            $0.connections = max($0.connections, counts.accepted - counts.closed)
                        }
                        try? await Task.sleep(for: .milliseconds(10))
                    }
                }
                let clock = ContinuousClock()
                let answers = await withTaskGroup(of: (status: Int, reason: String, took: Duration).self) { group in
                    for index in 0..<jobs {
                        group.addTask {
                            let started = clock.now
                            do {
                                let answer = try await source.resolve(DispatchRequest(segments: ["silent", "P", "J", "job\(index)"], query: nil))
                                guard case .retryLater(5, let reason) = answer else { return (200, "\(answer)", clock.now - started) }
                                return (503, reason, clock.now - started)
                            } catch DispatchError.upstreamFailed(let reason) {
                                return (502, reason, clock.now - started)
                            } catch {
                                return (500, "\(error)", clock.now - started)
                            }
                        }
                    }
                    return await group.reduce(into: []) { $0.append($1) }
                }
                sampling.cancel()
                await sampling.value
                let (high, connections) = peak.withLock { $0 }
                print("\(jobs) jobs against a silent Hydra: before \(before), peak \(high), \(connections) connections at once, \(silent.counts.accepted) in all, slowest answer \(answers.map(\.took).max() ?? .zero)")

                // Every request answered, 503 (or 502), and none after the deadline and some slack.
                XCTAssertEqual(answers.count, jobs)
                XCTAssertEqual(answers.filter { $0.status != 503 && $0.status != 502 }.map(\.reason), [])
                XCTAssertLessThan(answers.map(\.took).max() ?? .zero, .seconds(timeout) + .milliseconds(1500))
                // Beyond the cap and the queue, refused at once.
                let refused = answers.filter { $0.reason.contains("too many Hydra lookups") }
                XCTAssertGreaterThanOrEqual(refused.count, jobs - cap - HydraSource.maximumQueuedLookups)
                XCTAssertLessThan(refused.map(\.took).max() ?? .zero, .seconds(1))
                // Threads and fds bounded by the cap, not by the jobs.
                XCTAssertLessThanOrEqual(high.threads - before.threads, cap + 4, "threads: \(before) → \(high)")
                // Per lookup: its socket, the socketpair of curl's wait, and the stand-in's end.
                XCTAssertLessThanOrEqual(high.files - before.files, 5 * cap + 8, "fds: \(before) → \(high)")

                // The abandoned lookups were cancelled: their transfers stopped and closed their connections.
                var waited = Duration.zero
                while source.lookups.load != (0, 0) || silent.counts.closed < silent.counts.accepted, waited < .seconds(3) {
                    try await Task.sleep(for: .milliseconds(50))
                    waited += .milliseconds(50)
                }
                let counts = silent.counts
                XCTAssertTrue(source.lookups.load == (0, 0), "lookups left: \(source.lookups.load)")
                XCTAssertGreaterThan(counts.accepted, 0)
                XCTAssertLessThanOrEqual(connections, cap, "at most the cap of lookups at once")
                XCTAssertEqual(counts.closed, counts.accepted, "every connection closed")
                let after = ProcessLoad.of()
                XCTAssertLessThanOrEqual(after.threads, before.threads + 2, "threads: \(before) → \(after)")
                XCTAssertLessThanOrEqual(after.files, before.files + 2, "fds: \(before) → \(after)")

                // The same source still answers a real job from a working Hydra.
                let answer = try await source.resolve(request)
                XCTAssertEqual(answer, .storePath(path))
            }
        }
    }

    func testNotConfiguredWithoutHydras() throws {
        let (source, _) = try makeSource([])
        XCTAssertEqual(source.name, "hydra")
        XCTAssertEqual(source.notConfiguredReason, "hydra booting is not configured on this server (no --hydra)")
        let (configured, _) = try makeSource(["a=http://127.0.0.1:1"])
        XCTAssertNil(configured.notConfiguredReason)
    }

    func testOptionsAreValidated() throws {
        for bad in [
            ["--hydra", "x"],
            ["--hydra", "x=ftp://hydra.example.org"],
            ["--hydra", "x=file:///etc"],
            ["--hydra", "x=http://"],
            ["--hydra", "x=http://hydra.example.org/?q=1"],
            ["--hydra", ".x=http://hydra.example.org"],
            ["--hydra", "=http://hydra.example.org"],
            ["--hydra", "x=http://a", "--hydra", "x=http://b"],
            ["--hydra-timeout", "0"],
            ["--max-hydra-lookups", "0"],
            ["--max-hydra-realises", "0"],
        ] {
            XCTAssertThrowsError(try HydraSource.Options.parse(bad), "\(bad)")
        }
        let options = try HydraSource.Options.parse([
            "--hydra", "main=https://hydra.example.org/", "--hydra", "lab=HTTP://10.0.0.2:3000/hydra", "--hydra-timeout", "5",
        ])
        XCTAssertEqual(options.hydras.count, 2)
        XCTAssertEqual(options.hydraTimeout, 5)
        XCTAssertEqual(try HydraSource.Options.parse([]).hydraTimeout, 60)
        XCTAssertEqual(try HydraSource.Options.parse([]).maxHydraLookups, 8)
        XCTAssertEqual(try HydraSource.Options.parse([]).maxHydraRealises, 4)
        XCTAssertEqual(try HydraSource.Options.parse(["--max-hydra-lookups", "3"]).maxHydraLookups, 3)

        // The source checks too, for options made in code.
        var unchecked = HydraSource.Options()
        unchecked.hydras = ["x=ftp://hydra.example.org"]
        XCTAssertThrowsError(try makeSource(unchecked.hydras)) { error in
            XCTAssertTrue(error is ValidationError, "\(error)")
        }
    }

    func testURLsAndRootNamesAreEscapedUnambiguously() throws {
        let server = try HydraServer(argument: "main=https://hydra.example.org/ci/")
        let job = HydraJob(hydra: "main", project: "p", jobset: "j s", job: "a+b%c/é")
        XCTAssertEqual(server.latestBuildURL(of: job), "https://hydra.example.org/ci/job/p/j%20s/a%2Bb%25c%2F%C3%A9/latest")
        XCTAssertEqual(job.gcRootName, "hydra-main+p+j%20s+a%2Bb%25c%2F%C3%A9")
        // Where the separator would otherwise be ambiguous.
        let one = HydraJob(hydra: "h", project: "a+b", jobset: "c", job: "d")
        let two = HydraJob(hydra: "h", project: "a", jobset: "b+c", job: "d")
        XCTAssertNotEqual(one.gcRootName, two.gcRootName)
        XCTAssertFalse(job.gcRootName.contains("/"))
        // Too long for a file name once escaped: refused before anything is contacted.
        let long = HydraJob(hydra: "h", project: String(repeating: "é", count: 100), jobset: "j", job: "x")
        XCTAssertThrowsError(try long.gcRoot(in: "/roots")) { error in
            guard case DispatchError.badRequest = error else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(try one.gcRoot(in: "/roots/"), "/roots/hydra-h+a%2Bb+c+d")
    }
}
