import ArgumentParser
import Foundation
import Logging
import NetbootHost
import XCTest

@testable import HydraSource

/// The Hydra source against a stand-in Hydra and a real, signed binary cache, with real Nix.
final class HydraSourceTests: XCTestCase {
    let request = DispatchRequest(segments: ["local", "P", "J", "system"], query: nil)

    /// A source trusting `--hydra` values `hydras`, whose Nix tools see `nixConfig` (if any).
    func makeSource(_ hydras: [String], timeout: Int = 60, nixConfig: String? = nil) throws -> (HydraSource, gcRoots: String) {
        let state = try temporaryDirectory(self, "state")
        let gcRoots = state + "/gc-roots"
        try FileManager.default.createDirectory(atPath: gcRoots, withIntermediateDirectories: true)
        let environment = nixConfig.map { ["NIX_CONFIG": $0] } ?? [:]
        var logger = Logger(label: "hydra-test")
        logger.logLevel = .critical
        let context = SourceContext(
            store: NixStoreCLI(tool: { NixCommand(executable: $0, environment: environment) }),
            stateDirectory: state, gcRootDirectory: gcRoots, logger: logger)
        var options = HydraSource.Options()
        options.hydras = hydras
        options.hydraTimeout = timeout
        return (try HydraSource(options: options, context: context), gcRoots)
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

    func testASlowHydraAnswersRetryLaterAndTheRetryJoinsTheLookup() async throws {
        // A path that is already valid: this test is about waiting, not substituting.
        let directory = try temporaryDirectory(self, "slow")
        try "slow \(UUID().uuidString)\n".write(toFile: directory + "/slow-hydra-build", atomically: true, encoding: .utf8)
        let path = try StorePath(absolutePath: try sh("nix-store --add \(directory)/slow-hydra-build").output)
        var setup = StandInHydra.Setup()
        setup.jobs["P/J/system"] = 1
        setup.builds[1] = StandInHydra.buildJSON(id: 1, job: "system", outPath: path.absolutePath)
        setup.firstLookupDelay = .milliseconds(2500)
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
            XCTAssertEqual(answers.last, .storePath(path))
            XCTAssertGreaterThanOrEqual(answers.count, 2)
            XCTAssertLessThan(clock.now - started, .seconds(10))
            XCTAssertEqual(hydra.requests.filter { $0.path.hasSuffix("/latest") }.count, 1, "the retries joined the one lookup")
            XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: gcRoots + "/hydra-local+P+J+system"), path.absolutePath)
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
        ] {
            XCTAssertThrowsError(try HydraSource.Options.parse(bad), "\(bad)")
        }
        let options = try HydraSource.Options.parse([
            "--hydra", "main=https://hydra.example.org/", "--hydra", "lab=HTTP://10.0.0.2:3000/hydra", "--hydra-timeout", "5",
        ])
        XCTAssertEqual(options.hydras.count, 2)
        XCTAssertEqual(options.hydraTimeout, 5)
        XCTAssertEqual(try HydraSource.Options.parse([]).hydraTimeout, 60)

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
