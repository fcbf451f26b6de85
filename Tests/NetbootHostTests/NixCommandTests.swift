import NetbootHost
import XCTest

/// Nix's tools talk: stderr is drained and only its tail kept, never a limit that fails the command.
final class NixCommandTests: XCTestCase {
    func testMegabytesOnStderrDoNotFailACommand() async throws {
        let command = NixCommand(executable: "/bin/sh")
        let output = try await command.run(["-c", "yes 'a builder that talks a lot' | head -c 4194304 >&2; echo done"])
        XCTAssertEqual(String(decoding: output, as: UTF8.self), "done\n")
    }

    func testAFailureKeepsTheTailAndItsErrorLine() async throws {
        let command = NixCommand(executable: "/bin/sh", errorTailBytes: 4096)
        let script = """
            yes 'noise before the failure' | head -c 3000000 >&2
            printf 'error: undefined variable %s\\n\\n       at /srv/x/default.nix:1:1:\\n\\n            1| x\\n             | ^\\n' "'x'" >&2
            exit 1
            """
        do {
            _ = try await command.run(["-c", script])
            XCTFail("the command failed")
        } catch let error as NixCommandError {
            XCTAssertEqual(error.reason, "error: undefined variable 'x'")
            XCTAssertLessThanOrEqual(error.standardError.utf8.count, 4096)
            XCTAssertTrue(error.standardError.hasPrefix("noise before the failure\n"), "the tail starts at a line")
            XCTAssertTrue(error.lastLines(3).contains("| ^"))
            XCTAssertEqual(error.status, "exited(1)")
        }
    }

    func testTheReasonWithoutAnErrorLineIsTheLastWords() {
        let error = NixCommandError(command: ["nix-store"], status: "exited(1)", standardError: "first\nlast words\n   ^\n\n")
        XCTAssertEqual(error.reason, "last words")
        XCTAssertEqual(NixCommandError(command: ["x"], status: "signaled(9)", standardError: "").reason, "signaled(9)")
    }

    func testTheTailKeepsTheLastBytes() {
        var tail = StandardErrorTail(capacity: 8)
        for chunk in ["0123", "4567", "89\nab", "cdef"] {
            Array(chunk.utf8).withUnsafeBytes { tail.append($0) }
        }
        XCTAssertEqual(tail.total, 17)
        XCTAssertEqual(tail.text, "abcdef", "cut at the first line break of the kept bytes")
    }

    func testCancellingTheCallerEndsTheToolAndWhatItStarted() async throws {
        let dir = try makeTemporaryDirectory(self)
        let command = NixCommand(executable: "/bin/sh")
        let run = Task { try await command.run(["-c", "sleep 600 & echo $! > \(dir)/child; sleep 600"]) }
        var child: Int32 = 0
        for _ in 0..<100 where child == 0 {
            try await Task.sleep(for: .milliseconds(50))
            child = Int32((try? String(contentsOfFile: dir + "/child", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
        }
        XCTAssertGreaterThan(child, 0)
        run.cancel()
        _ = await run.result
        let gone = try await waitUntilGone(child)
        XCTAssertTrue(gone, "the grandchild of the cancelled tool is gone")
    }
}

/// The bound on Nix processes: a flood of distinct queries waits for slots.
final class NixProcessBoundTests: XCTestCase {
    func testAFloodOfQueriesRunsAtMostTheLimitOfNixProcessesAtOnce() async throws {
        let (tool, log) = try loggingTools(self, delay: 0.2)
        let store = NixStoreCLI(tool: tool, processes: ConcurrencyLimit(4))
        let system = PackFixtures.shared.system
        let answers = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<24 { group.addTask { try await store.isValid(system) } }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        XCTAssertEqual(answers, Array(repeating: true, count: 24))
        let runs = maximumOverlap(log, tool: "nix-store")
        XCTAssertEqual(runs.runs, 24)
        XCTAssertEqual(runs.overlap, 4, "never more than the limit, and the limit is used")
    }

    func testACancelledWaiterLeavesTheQueue() async throws {
        let limit = ConcurrencyLimit(1)
        let holder = Task { try await limit.withSlot { try await Task.sleep(for: .seconds(2)) } }
        try await Task.sleep(for: .milliseconds(100))
        let waiter = Task { try await limit.withSlot { "ran" } }
        try await Task.sleep(for: .milliseconds(100))
        waiter.cancel()
        let started = ContinuousClock.now
        let result = await waiter.result
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(1), "cancelled at once, not after the holder")
        XCTAssertThrowsError(try result.get())
        holder.cancel()
        _ = await holder.result
        let after = try await limit.withSlot { "free" }
        XCTAssertEqual(after, "free", "the slot came back")
        XCTAssertEqual(limit.highWater, 1)
    }
}
