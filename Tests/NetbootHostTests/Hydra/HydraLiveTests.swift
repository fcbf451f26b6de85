import Foundation
import XCTest

/// The Hydra source in the server binary, over real TCP with curl.
final class HydraLiveTests: XCTestCase {
    /// Issue 9's hostile probe against the binary: hundreds of distinct jobs at once against a Hydra
    /// that never answers, while `GET /` must still answer at once.
    func testHundredsOfJobsAgainstASilentHydraLeaveTheServerAnswering() async throws {
        try await SilentHydra.with { silent in
            let jobs = 300, timeout = 2, cap = 8
            let server = try ServerProcess(self, arguments: ["--hydra", "silent=\(silent.baseURL)", "--hydra-timeout", "\(timeout)"])
            let pid = "\(server.process.processIdentifier)"
            try shell("curl -sSf -o /dev/null \(server.base)/")  // warm: the server's own threads have started
            let before = ProcessLoad.of(pid)
            let storm = Task {
                try await shellOffThread(
                    "seq \(jobs) | xargs -P \(jobs) -I{} curl -s -o /dev/null -w '%{http_code} %{time_total}\\n' --max-time 20 \(server.base)/dispatch/hydra/silent/P/J/job{}")
            }
            var peak = before, connections = 0
            var home: String?
            let clock = ContinuousClock()
            let started = clock.now
            while clock.now - started < .seconds(timeout) + .milliseconds(1500) {
                let now = ProcessLoad.of(pid)
                peak = ProcessLoad(threads: max(peak.threads, now.threads), files: max(peak.files, now.files))
                let counts = silent.counts
                connections = max(connections, counts.accepted - counts.closed)
                if home == nil, silent.counts.accepted >= cap {
                    // The lookups are at their cap and the rest of the storm waits or was refused.
                    home = String(decoding: try await shellOffThread("curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 5 \(server.base)/").output, as: UTF8.self)
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            let result = try await storm.value
            let lines = String(decoding: result.output, as: UTF8.self).split(separator: "\n")
            let statuses = Dictionary(grouping: lines, by: { $0.split(separator: " ").first.map(String.init) ?? "" }).mapValues(\.count)
            let slowest = lines.compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.max() ?? 99
            print("\(jobs) jobs against a silent Hydra, live: \(statuses), slowest \(slowest) s, GET / \(home ?? "not asked"), \(connections) lookups at once, \(silent.counts.accepted) in all, server before \(before), peak \(peak)")

            XCTAssertEqual(lines.count, jobs, "every request answered")
            XCTAssertEqual(statuses["503"] ?? 0, jobs, "all told to retry: \(statuses)")
            XCTAssertLessThan(slowest, Double(timeout) + 2)
            let answer = home?.split(separator: " ")
            XCTAssertEqual(answer?.first, "200", "GET / during the storm: \(home ?? "not asked")")
            // Two cores run 300 curls meanwhile: "at once" is well under the lookups' deadline.
            XCTAssertLessThan(answer?.last.flatMap { Double($0) } ?? 99, 1.5, "GET / answered at once")
            XCTAssertLessThanOrEqual(connections, cap, "at most the cap of lookups at once")
            // Threads bounded by the cap; fds by the clients' own connections plus the cap.
            XCTAssertLessThanOrEqual(peak.threads - before.threads, cap + 8, "threads: \(before) → \(peak)")
            XCTAssertLessThanOrEqual(peak.files - before.files, jobs + 4 * cap + 16, "fds: \(before) → \(peak)")

            // The lookups were cancelled: their connections to the Hydra closed, the fds came back.
            var waited = Duration.zero
            while silent.counts.closed < silent.counts.accepted || ProcessLoad.of(pid).files > before.files + 2, waited < .seconds(3) {
                try await Task.sleep(for: .milliseconds(50))
                waited += .milliseconds(50)
            }
            XCTAssertEqual(silent.counts.closed, silent.counts.accepted)
            let after = ProcessLoad.of(pid)
            XCTAssertLessThanOrEqual(after.files, before.files + 2, "fds: \(before) → \(after)")
            XCTAssertLessThanOrEqual(after.threads, before.threads + 4, "threads: \(before) → \(after)")
        }
    }
}
