import ArgumentParser
import ClosureSource
import Codecs
import ConfigurationSource
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NetbootHost
import NetbootTesting
import NIOCore
import ProfileSource
import XCTest

/// ``RouteOutcomeTable`` run twice: in memory (the router over ``InMemoryNixStore``, no Nix at all)
/// and against the live binary (real Nix, the fixture store paths), Hummingbird's `.router` and
/// `.live` in spirit.
final class RouteOutcomeTests: XCTestCase {
    /// One answer, as either mode sees it.
    struct Answer {
        var status: Int
        /// Header names lowercased.
        var headers: [String: String]
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// Runs every case `subjects` can make through `execute`, then the unknown paths with every
    /// method, then compares each HEAD with its GET; returns the cases it skipped. No answer may name
    /// `hiddenPaths` or another server directory.
    static func run(
        _ subjects: RouteOutcomeTable.Subjects, hiddenPaths: [String], skipReason: (RouteOutcomeTable.Case) -> String? = { _ in nil },
        execute: (HTTPRequest.Method, String) async throws -> Answer
    ) async throws -> [(RouteOutcomeTable.Case, String)] {
        var skipped: [(RouteOutcomeTable.Case, String)] = []
        var lengths: [String: [HTTPRequest.Method: Answer]] = [:]
        for testCase in RouteOutcomeTable.cases {
            let label = testCase.label
            if let reason = skipReason(testCase) {
                skipped.append((testCase, reason))
                continue
            }
            guard let path = subjects.path(testCase.route, testCase.outcome) else {
                XCTFail("\(label): no request path in this mode")
                continue
            }
            let answer = try await execute(testCase.method, path)
            XCTAssertEqual(answer.status, testCase.status, "\(label): \(answer.text)")
            XCTAssertEqual(answer.headers["allow"], testCase.allow, label)
            XCTAssertEqual(answer.headers["retry-after"], testCase.retryAfter, label)
            if let cacheControl = testCase.cacheControl { XCTAssertEqual(answer.headers["cache-control"], cacheControl, label) }
            XCTAssertEqual(answer.headers["location"], testCase.location ? "/boot/\(subjects.system.name)/netboot.ipxe" : nil, label)
            let length = try XCTUnwrap(answer.headers["content-length"], label)
            for hidden in hiddenPaths + ["/tmp", "/var", "/root", "/home"] { XCTAssertFalse(answer.text.contains(hidden), "\(label) names a server path: \(answer.text)") }
            if testCase.method == .head {
                XCTAssertEqual(answer.body.count, 0, "\(label): HEAD has no body")
            } else {
                XCTAssertEqual(length, "\(answer.body.count)", label)
                check(answer, testCase.body, label)
            }
            if testCase.method == .get || testCase.method == .head {
                lengths["\(testCase.route) \(testCase.outcome)", default: [:]][testCase.method] = answer
            }
        }
        for path in RouteOutcomeTable.unknownPaths(subjects.system) {
            for method in [.get, .head] + RouteOutcomeTable.otherMethods {
                let answer = try await execute(method, path)
                XCTAssertEqual(answer.status, 404, "\(method) \(path): \(answer.text)")
                XCTAssertNil(answer.headers["allow"], "\(method) \(path)")
                XCTAssertNotNil(answer.headers["content-length"], "\(method) \(path)")
                if method != .head { check(answer, .line("no such page"), "\(method) \(path)") }
            }
        }
        for (key, answers) in lengths {
            guard let get = answers[.get], let head = answers[.head] else { continue }
            let withoutDate = { (answer: Answer) in answer.headers.filter { $0.key != "date" } }
            XCTAssertEqual(withoutDate(head), withoutDate(get), "\(key): HEAD answers GET's headers")
            XCTAssertNotNil(get.headers["content-length"], key)
        }
        return skipped
    }

    static func check(_ answer: Answer, _ body: RouteOutcomeTable.Body, _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        let text = answer.text
        switch body {
        case .any:
            XCTAssertGreaterThan(answer.body.count, 0, label, file: file, line: line)
        case .empty:
            XCTAssertEqual(answer.body.count, 0, label, file: file, line: line)
        case .line(let expected):
            XCTAssertTrue(text.hasSuffix("\n") && text.filter { $0 == "\n" }.count == 1, "\(label): one line: \(text.debugDescription)", file: file, line: line)
            XCTAssertLessThanOrEqual(answer.body.count, PlainTextError.maximumLineBytes, label, file: file, line: line)
            XCTAssertTrue(text.contains(expected), "\(label): \(text.debugDescription) lacks \(expected.debugDescription)", file: file, line: line)
        case .script(let expected):
            XCTAssertTrue(text.hasPrefix("#!ipxe\n"), "\(label): \(text.debugDescription)", file: file, line: line)
            XCTAssertTrue(text.contains(expected), "\(label): \(text.debugDescription) lacks \(expected.debugDescription)", file: file, line: line)
        }
    }

    /// Makes `PROFILE_DIR/NAME -> /nix/store/PATH` for each profile of `subjects`.
    func makeProfiles(_ subjects: RouteOutcomeTable.Subjects) throws -> String {
        let dir = try makeTemporaryDirectory(self, "profiles")
        for (name, target) in subjects.profiles {
            try FileManager.default.createSymbolicLink(atPath: dir + "/" + name, withDestinationPath: target.absolutePath)
        }
        return dir
    }

    func testTheTableInMemoryWithoutNix() async throws {
        let start = ContinuousClock.now
        let temporary = try makeTemporaryDirectory(self, "memory")
        let store = try InMemoryNixStore(directory: temporary + "/nix")
        let tool = try store.add("tool", contents: .directory(["bin": .directory(["tool": .file("#!/bin/sh\n", executable: true)])]))
        let system = try store.addSystem("system", kernelParameters: "console=ttyS0 init=\(tool.absolutePath)/bin/tool", references: [tool])
        let failing = try store.addSystem("failing")
        store.failQueries(about: failing)
        let subjects = RouteOutcomeTable.Subjects(
            system: system, plain: try store.add("plain", contents: .file("a single file\n")), absent: try store.name("absent"), failing: failing)

        let options = try ServerOptions.parse(["--state-dir", temporary + "/state", "--disable-source", "configuration"])
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        // The sources reach "Nix" only through the in-memory store: no Nix tool runs.
        let context = NetbootServer.sourceContext(options: options, store: store, logger: logger)
        var registry = ModuleRegistry()
        try registry.register(compressor: ZstdCompressor())
        try registry.register(source: ClosureSource(context: context))
        try registry.register(source: ProfileSource(options: try ProfileSource.Options.parse(["--profile-dir", try makeProfiles(subjects)]), context: context))
        try registry.register(source: try ConfigurationSource(options: try ConfigurationSource.Options.parse([]), context: context))
        try registry.register(source: ScriptedSource(answers: RouteOutcomeTable.scriptedAnswers))
        let server = try NetbootServer(
            options: options, registry: registry, store: store, logger: logger, storeDirectory: store.storeDirectory)

        try await server.testApplication(logger: logger).test(.router) { client in
            let skipped = try await Self.run(subjects, hiddenPaths: [temporary]) { method, path in
                let response = try await client.execute(uri: path, method: method)
                var headers: [String: String] = [:]
                for field in response.headers { headers[field.name.canonicalName] = field.value }
                return Answer(status: Int(response.status.code), headers: headers, body: Array(response.body.readableBytesView))
            }
            XCTAssertEqual(skipped.count, 0)
            // The initrd holds the stand-in files: the packer read them, not /nix/store.
            let initrd = try await client.execute(uri: "/boot/\(system.name)/initrd", method: .get)
            let tree = try KernelInitramfs.parse(Array(initrd.body.readableBytesView)).tree
            XCTAssertEqual(tree["nix/store/\(system.name)/kernel"]?.data, Array("not really a kernel\n".utf8))
            XCTAssertEqual(tree["nix/store/\(tool.name)/bin/tool"]?.data, Array("#!/bin/sh\n".utf8))
            XCTAssertNil(tree["nix/store/\(failing.name)"])
        }
        XCTAssertGreaterThan(store.queryCount, 0)
        // The dispatches that redirected pinned their system with the stand-in root tool.
        let pins = try FileManager.default.contentsOfDirectory(atPath: temporary + "/state/gc-roots/pins")
        XCTAssertEqual(pins, ["pin-\(system.name)"])
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(2), "the in-memory table runs in under 2 s")
    }

    func testTheTableAgainstTheLiveBinary() async throws {
        let fixtures = PackFixtures.shared
        let subjects = RouteOutcomeTable.Subjects(
            system: fixtures.system, plain: fixtures.tree, absent: try StorePath(name: "0" + fixtures.tree.name.dropFirst()), failing: nil)
        let server = try ServerProcess(self, arguments: ["--profile-dir", try makeProfiles(subjects), "--disable-source", "configuration"])
        let start = ContinuousClock.now
        let port = server.port
        let skipped = try await Self.run(subjects, hiddenPaths: [], skipReason: RouteOutcomeTable.liveSkipReason) { method, path in
            let request = "\(method.rawValue) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            let (bytes, closed) = try rawExchange(port: port, Array(request.utf8))
            XCTAssertTrue(closed, "\(method) \(path)")
            let response = try RawResponse(parsing: bytes, head: method == .head)
            XCTAssertEqual(response.trailing, [], "\(method) \(path): nothing after the response")
            var headers: [String: String] = [:]
            for (name, value) in response.headers { headers[name.lowercased()] = value }
            return Answer(status: response.status, headers: headers, body: response.body)
        }
        // Exactly the rows the live binary cannot make are skipped, and said so.
        let expected = RouteOutcomeTable.cases.filter { $0.route == .scripted || $0.outcome == .nixFailure }
        XCTAssertEqual(skipped.map(\.0.label), expected.map(\.label))
        for reason in Set(skipped.map(\.1)).sorted() {
            print("live table: skipped \(skipped.filter { $0.1 == reason }.count) cases: \(reason)")
        }
        XCTAssertFalse(server.log.contains(" error "), server.log)
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(15))
    }
}
