import Foundation
import XCTest

/// A CPU cgroup that holds a process to a sliver of one core, 1 ms of CPU every 100 ms, so that a
/// test can catch it part-way through sending a response: what it sends arrives in bursts a
/// hundred milliseconds apart, and the test acts between two of them.
///
/// cgroup v1's `cpu` controller (`cpu.cfs_quota_us`) where it is mounted, else cgroup v2's
/// `cpu.max`. Removed in the test's teardown (the process must have ended by then, or it is moved
/// back to the root group first).
final class CPUThrottle: @unchecked Sendable {
    /// The group's directory.
    let directory: String
    /// The file a PID is written to, to move the whole process into the group.
    private let procs: String
    private let rootProcs: String

    /// Makes the group, or says why it cannot be made here.
    init(_ test: XCTestCase, name: String) throws {
        let v1 = "/sys/fs/cgroup/cpu", v2 = "/sys/fs/cgroup"
        let unique = "\(name)-\(getpid())-\(UUID().uuidString.prefix(8))"
        if FileManager.default.fileExists(atPath: v1 + "/cpu.cfs_quota_us") {
            directory = v1 + "/" + unique
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
            try "100000\n".write(toFile: directory + "/cpu.cfs_period_us", atomically: false, encoding: .utf8)
            try "1000\n".write(toFile: directory + "/cpu.cfs_quota_us", atomically: false, encoding: .utf8)
            rootProcs = v1 + "/cgroup.procs"
        } else if let controllers = try? String(contentsOfFile: v2 + "/cgroup.controllers", encoding: .utf8),
            controllers.split(separator: " ").contains(where: { $0.trimmingCharacters(in: .whitespacesAndNewlines) == "cpu" })
        {
            directory = v2 + "/" + unique
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
            try "1000 100000\n".write(toFile: directory + "/cpu.max", atomically: false, encoding: .utf8)
            rootProcs = v2 + "/cgroup.procs"
        } else {
            throw XCTSkip("no CPU cgroup controller to throttle a process with (cgroup v1 cpu or v2 cpu.max)")
        }
        procs = directory + "/cgroup.procs"
        test.addTeardownBlock { self.remove() }
    }

    /// Moves every thread of `pid` into the group.
    func hold(_ pid: Int32) throws {
        try "\(pid)\n".write(toFile: procs, atomically: false, encoding: .utf8)
    }

    /// Moves what is left in the group back to the root group and removes the group.
    func remove() {
        let left = (try? String(contentsOfFile: procs, encoding: .utf8))?.split(separator: "\n") ?? []
        for pid in left { try? "\(pid)\n".write(toFile: rootProcs, atomically: false, encoding: .utf8) }
        rmdir(directory)
    }
}
