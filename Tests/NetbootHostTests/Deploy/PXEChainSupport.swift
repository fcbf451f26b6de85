import Foundation
import XCTest

/// The boot network of the PXE chain test, made by `scripts/pxe-netns.sh`: namespace `name` with
/// bridge br0 at 10.231.0.1/24 (the boot server) and tap devices tap0…, and namespace `name-dhcp`
/// at 10.231.0.2 on the same bridge (the network's own DHCP server). Deleted by the test's
/// teardown, after everything registered later (the processes inside it) has stopped.
struct BootNetwork {
    static let serverAddress = "10.231.0.1"
    static let subnet = "10.231.0.0"

    let name: String
    var dhcpNamespace: String { name + "-dhcp" }

    /// `nil` when this test cannot make network namespaces (not root, or no `ip netns`).
    static var unavailableReason: String? {
        guard geteuid() == 0 else { return "creating network namespaces needs root" }
        guard (try? shell("ip netns list", allowFailure: true).status) == 0 else { return "`ip netns` is not available" }
        return nil
    }

    init(_ test: XCTestCase, taps: Int) throws {
        name = "nns-pxe-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
        let script = "\(repositoryRoot)/scripts/pxe-netns.sh"
        test.addTeardownBlock { [name] in _ = try? shell("bash \(script) down \(name)", allowFailure: true) }
        try shell("bash \(script) up \(name) \(taps)")
    }

    /// `command` run inside the namespace `namespace` (`ip netns exec`).
    static func inside(_ namespace: String, _ command: [String]) -> [String] {
        ["ip", "netns", "exec", namespace] + command
    }
}

/// A dnsmasq started by the test inside a namespace, logging to a file, stopped by its PID in the
/// test's teardown. It runs as the daemon it is (it forks, and reports a failed start through its
/// exit status): in the foreground under Foundation's `Process` it would close the descriptor by
/// which `Process` notices an exit, and `Process` would then wait on it for good, blocking every
/// other child's exit.
final class DnsmasqDaemon: @unchecked Sendable {
    let logPath: String
    let pid: pid_t

    init(_ test: XCTestCase, namespace: String, arguments: [String], directory: String, name: String) throws {
        logPath = "\(directory)/\(name).log"
        let pidFile = "\(directory)/\(name).pid"
        let command = BootNetwork.inside(namespace, ["dnsmasq", "--pid-file=\(pidFile)", "--log-facility=\(logPath)"] + arguments)
        try shell(command.map { "'\($0)'" }.joined(separator: " "))
        guard let pid = pid_t(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw ShellError(description: "dnsmasq wrote no PID to \(pidFile)")
        }
        self.pid = pid
        test.addTeardownBlock { self.stop() }
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Whether the log holds `text` within 10 s (dnsmasq writes its log lines a little later).
    func logs(_ text: String) -> Bool {
        let deadline = Date().addingTimeInterval(10)
        while !log.contains(text), isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        return log.contains(text)
    }

    /// SIGTERM, then SIGKILL after 5 s. Its parent is init, which reaps it.
    func stop() {
        guard isRunning else { return }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(5)
        while isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if isRunning { kill(pid, SIGKILL) }
    }

    /// The process is there and is still this dnsmasq (not a zombie, not a reused PID).
    private var isRunning: Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
        return stat.contains("(dnsmasq) ") && !stat.contains("(dnsmasq) Z")
    }
}

/// A shipped dnsmasq configuration under `deploy/dnsmasq/`, with the lines an operator edits (each
/// the first setting after a comment starting `# EDIT`) pointed at the test network, and nothing
/// else changed.
struct ShippedDnsmasqConfiguration {
    /// The example addresses of the shipped files, and what the test network uses instead.
    static let substitutions = [
        ("192.168.1.10", BootNetwork.serverAddress),
        ("192.168.1.100", "10.231.0.100"), ("192.168.1.200", "10.231.0.199"),
        ("192.168.1.0", BootNetwork.subnet), ("192.168.1.1", "10.231.0.2"),
    ]

    let path: String
    let lines: [String]
    /// Indices of the lines an operator edits.
    let editedLines: [Int]

    init(_ name: String) throws {
        path = "\(repositoryRoot)/deploy/dnsmasq/\(name)"
        lines = try String(contentsOfFile: path, encoding: .utf8).components(separatedBy: "\n")
        var edited: [Int] = [], marked = false
        for (index, line) in lines.enumerated() {
            if line.hasPrefix("# EDIT") { marked = true }
            if marked, !line.isEmpty, !line.hasPrefix("#") {
                edited.append(index)
                marked = false
            }
        }
        editedLines = edited
    }

    /// The file with the edited lines' example addresses replaced, written to `directory`.
    func forTestNetwork(in directory: String) throws -> String {
        var copy = lines
        for index in editedLines {
            // Longest first, so that 192.168.1.10 is not read as 192.168.1.1 followed by "0".
            for (example, test) in Self.substitutions.sorted(by: { $0.0.count > $1.0.count }) {
                copy[index] = copy[index].replacingOccurrences(of: example, with: test)
            }
        }
        let target = directory + "/" + URL(fileURLWithPath: path).lastPathComponent
        try copy.joined(separator: "\n").write(toFile: target, atomically: true, encoding: .utf8)
        return target
    }
}
