import Foundation
import XCTest

/// The `[Service]` lines of a systemd unit that say how its process runs, read the way systemd reads
/// them for the subset our unit uses: one directive per line, `#`/`;` comments, repeated
/// `Environment=` lines adding up.
struct SystemdServiceUnit {
    var execStart: String
    var user: String
    var environmentFiles: [String]
    var environment: [String: String]

    init(contentsOf path: String) throws {
        var section = ""
        var values: [String: [String]] = [:]
        for raw in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            guard !line.hasSuffix("\\") else { throw ShellError(description: "\(path): continued lines are not read here: \(line)") }
            if line.hasPrefix("[") {
                section = line
                continue
            }
            guard section == "[Service]", let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            values[key, default: []].append(line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces))
        }
        guard let execStart = values["ExecStart"], execStart.count == 1, let user = values["User"]?.last else {
            throw ShellError(description: "\(path): needs one ExecStart= and a User=")
        }
        self.execStart = execStart[0]
        self.user = user
        self.environmentFiles = values["EnvironmentFile"] ?? []
        self.environment = [:]
        for assignment in values["Environment"] ?? [] {
            // Our unit writes one unquoted KEY=VALUE per Environment= line.
            guard let equals = assignment.firstIndex(of: "="), !assignment.contains(" "), !assignment.contains("\"") else {
                throw ShellError(description: "\(path): Environment=\(assignment) is not one unquoted assignment")
            }
            environment[String(assignment[..<equals])] = String(assignment[assignment.index(after: equals)...])
        }
    }

    /// `ExecStart` as systemd expands it: `$NAME` becomes the variable's words (split at whitespace),
    /// `${NAME}` one word; an unset variable expands to nothing.
    func commandLine(environment: [String: String]) throws -> [String] {
        guard !execStart.contains("\""), !execStart.contains("'"), !execStart.contains("%"), let first = execStart.first, first == "/" else {
            throw ShellError(description: "ExecStart uses syntax not read here: \(execStart)")
        }
        var words: [String] = []
        for word in execStart.split(whereSeparator: { $0 == " " || $0 == "\t" }) {
            if word.hasPrefix("${"), word.hasSuffix("}") {
                words.append(environment[String(word.dropFirst(2).dropLast())] ?? "")
            } else if word.hasPrefix("$") {
                words += (environment[String(word.dropFirst())] ?? "").split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init)
            } else {
                words.append(String(word))
            }
        }
        return words
    }
}

/// Reads a systemd `EnvironmentFile=` for the subset ours uses: `#`/`;` comments, `KEY=VALUE` with the
/// value bare or in double quotes (no escapes, no continuation lines; anything else is refused rather
/// than guessed).
func readSystemdEnvironmentFile(_ path: String) throws -> [String: String] {
    var result: [String: String] = [:]
    for raw in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") {
        let line = raw.trimmingCharacters(in: .whitespaces)
        if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
        guard let equals = line.firstIndex(of: "=") else { throw ShellError(description: "\(path): not an assignment: \(line)") }
        let key = String(line[..<equals])
        var value = String(line[line.index(after: equals)...])
        if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
        guard key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }),
            !value.contains(where: { "\"'\\$`".contains($0) })
        else { throw ShellError(description: "\(path): syntax not read here: \(line)") }
        result[key] = value
    }
    return result
}

/// Debian's `nix-daemon`, started by the test on a socket of its own (`NIX_DAEMON_SOCKET_PATH`), so
/// nothing else on the machine talks to it; stopped by PID.
final class TestNixDaemon: @unchecked Sendable {
    let process = Process()
    let socket: String
    let logPath: String

    init(_ test: XCTestCase, directory: String) throws {
        socket = directory + "/daemon-socket/socket"
        logPath = directory + "/nix-daemon.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.executableURL = URL(fileURLWithPath: try shellString("command -v nix-daemon"))
        process.arguments = []
        var environment = ProcessInfo.processInfo.environment
        environment["NIX_DAEMON_SOCKET_PATH"] = socket
        environment.removeValue(forKey: "NIX_REMOTE")
        process.environment = environment
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? log.close()
        test.addTeardownBlock { self.stop() }
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            var info = stat()
            if stat(socket, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK { return }
            guard process.isRunning else { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        stop()
        throw ShellError(description: "nix-daemon did not start:\n\(log)")
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// What a client needs to talk to this daemon.
    var clientEnvironment: [String: String] { ["NIX_REMOTE": "daemon", "NIX_DAEMON_SOCKET_PATH": socket] }

    /// The daemon's per-connection workers now.
    var workers: [Int32] { childProcesses(of: process.processIdentifier) }

    /// SIGTERM, then SIGKILL after 10 s; waits for the workers it forked too.
    func stop() {
        guard process.isRunning else { return }
        let workers = self.workers
        process.terminate()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        for worker in workers where kill(worker, 0) == 0 {
            Thread.sleep(forTimeInterval: 1)
            if kill(worker, 0) == 0 { kill(worker, SIGKILL) }
        }
    }
}

/// The unit's command line run as the unit's user with `runuser`, in the environment systemd would
/// give it (its `Environment=`, its `EnvironmentFile=`, the user's `HOME`), stopped like
/// `systemctl stop` does: SIGTERM to the server itself (runuser, its parent, then exits with the
/// server's status), SIGKILL after a grace.
final class UnitProcess: @unchecked Sendable {
    let process = Process()
    let logPath: String
    private(set) var port = 0

    init(_ test: XCTestCase, user: String, command: [String], environment: [String: String], logDirectory: String) throws {
        logPath = logDirectory + "/service.log"
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
        let assignments = environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        process.arguments = ["-u", user, "--", "/usr/bin/env", "-i"] + assignments + command
        process.environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        try runLoggingTo(logPath, process)
        test.addTeardownBlock { _ = self.stop() }
        if let port = listeningPort(of: process, host: "127.0.0.1", logPath: logPath) {
            self.port = port
            return
        }
        stop()
        throw ShellError(description: "the service did not start:\n\(self.log)")
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    var base: String { "http://127.0.0.1:\(port)" }

    /// The server itself: runuser's child.
    var serverPID: Int32? { childProcesses(of: process.processIdentifier).first }

    /// Stops the server; returns runuser's exit status (the server's), nil if it had to be killed.
    @discardableResult
    func stop() -> Int32? {
        guard process.isRunning else { return process.terminationStatus }
        let server = serverPID
        if let server { kill(server, SIGTERM) } else { process.terminate() }
        let deadline = Date().addingTimeInterval(40)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        guard process.isRunning else { return process.terminationStatus }
        if let server { kill(server, SIGKILL) }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        return nil
    }
}

/// The real user ID a process runs as (`Uid:` of `/proc/PID/status`).
func realUserID(of pid: Int32) -> UInt32? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") })
    else { return nil }
    return line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.flatMap { UInt32($0) }
}

/// The links in Nix's `gcroots/auto` that point at `link`: how the daemon learnt of an indirect root.
func registeredIndirectRoots(pointingAt link: String) throws -> [String] {
    let auto = "/nix/var/nix/gcroots/auto"
    return try FileManager.default.contentsOfDirectory(atPath: auto).filter {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: auto + "/" + $0)) == link
    }
}
