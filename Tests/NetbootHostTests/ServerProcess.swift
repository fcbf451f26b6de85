import Foundation
import XCTest

/// The real server binary, started as a child (by default on a free loopback port) and stopped by PID.
final class ServerProcess: @unchecked Sendable {
    let process = Process()
    let logPath: String
    /// The `--state-dir` this helper chose (nil when the arguments name one).
    let stateDirectory: String?
    /// The address the server listens on (`listen`'s host).
    let host: String
    private(set) var port = 0

    /// The built `nix-netboot-serve` next to the test bundle, or `NNS_SERVER_BINARY` (to run the live
    /// tests against a release build).
    static var binary: String {
        if let given = ProcessInfo.processInfo.environment["NNS_SERVER_BINARY"], !given.isEmpty { return given }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        if dir.path.hasSuffix(".xctest/Contents/MacOS") { dir = dir.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }
        for candidate in [dir, Bundle.main.bundleURL] {
            let path = candidate.appendingPathComponent("nix-netboot-serve").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return repositoryRoot + "/.build/debug/nix-netboot-serve"
    }

    /// Starts the server with `arguments` on `listen` (port 0: a free port is chosen), optionally under
    /// `prefix` (e.g. prlimit, or `ip netns exec NAME`).
    init(_ test: XCTestCase, arguments: [String], prefix: [String] = [], environment: [String: String] = [:], listen: String = "127.0.0.1:0") throws {
        let dir = try makeTemporaryDirectory(test, "server")
        logPath = dir + "/server.log"
        stateDirectory = arguments.contains("--state-dir") ? nil : dir + "/state"
        let state = stateDirectory.map { ["--state-dir", $0] } ?? []
        host = String(listen[..<(listen.lastIndex(of: ":") ?? listen.endIndex)])
        let command = prefix + [Self.binary, "--listen", listen] + state + arguments
        process.executableURL = URL(fileURLWithPath: command[0].hasPrefix("/") ? command[0] : "/usr/bin/env")
        process.arguments = command[0].hasPrefix("/") ? Array(command.dropFirst()) : command
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        try runLoggingTo(logPath, process)
        test.addTeardownBlock { self.stop() }
        if let port = listeningPort(of: process, host: host, logPath: logPath) {
            self.port = port
            return
        }
        stop()
        throw ShellError(description: "server did not start:\n\(self.log)")
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    var base: String { "http://\(host):\(port)" }

    /// SIGTERM, then SIGKILL after 10 s.
    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

/// Starts `process` with its output and error going to a new file at `logPath`, and no input.
func runLoggingTo(_ logPath: String, _ process: Process) throws {
    _ = FileManager.default.createFile(atPath: logPath, contents: nil)
    let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
    process.standardOutput = log
    process.standardError = log
    process.standardInput = FileHandle.nullDevice
    try process.run()
    try? log.close()
}

/// The port of the server's "listening on HOST:PORT" line in its log, waited for up to 30 s; nil when
/// the process ended, or never said so.
func listeningPort(of process: Process, host: String, logPath: String) -> Int? {
    let pattern = "listening on \(NSRegularExpression.escapedPattern(for: host)):(\\d+)"
    let deadline = Date().addingTimeInterval(30)
    while Date() < deadline {
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        if let match = log.range(of: pattern, options: .regularExpression), let port = Int(log[match].split(separator: ":").last ?? "") {
            return port
        }
        guard process.isRunning else { return nil }
        Thread.sleep(forTimeInterval: 0.05)
    }
    return nil
}
