import Foundation
import NetbootHost
import XCTest

/// `deploy/systemd/`: the shipped unit's own command line, with its environment file, run as the
/// unit's user against a real `nix-daemon` (there is no systemd as PID 1 here to start it).
final class DaemonServiceTests: XCTestCase {
    static let unitPath = repositoryRoot + "/deploy/systemd/nix-netboot-serve.service"
    static let environmentFilePath = repositoryRoot + "/deploy/systemd/nix-netboot-serve.env"
    /// Where the unit reads its environment file; the test reads the shipped copy in its place.
    static let installedEnvironmentFile = "/etc/nix-netboot-serve/nix-netboot-serve.env"

    override func setUp() async throws {
        guard getuid() == 0 else { throw XCTSkip("needs root: starts nix-daemon, creates a system user, runs runuser") }
    }

    func testTheUnitsCommandServesBootsPinsAndBuildsThroughTheDaemonAsItsUser() async throws {
        let unit = try SystemdServiceUnit(contentsOf: Self.unitPath)
        XCTAssertEqual(unit.environment["NIX_REMOTE"], "daemon")
        XCTAssertEqual(unit.environmentFiles, [Self.installedEnvironmentFile])
        let user = unit.user
        try shell("id -u \(user) || useradd --system --user-group --home-dir /var/lib/\(user) --no-create-home --shell /usr/sbin/nologin \(user)")
        let uid = try XCTUnwrap(UInt32(try shellString("id -u \(user)")))

        let dir = try makeTemporaryDirectory(self, "daemon")
        chmod(dir, 0o755)
        // Stands in for StateDirectory=: the user's own directory, also its HOME (as the README says).
        let state = dir + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: false)
        // A configuration the server builds through the daemon (the source is on when the directory exists).
        let configuration = "daemon-\(UUID().uuidString.prefix(8))"
        let version = "daemon-\(UUID())"
        try writeConfiguration(stateDir: state, name: configuration, version: version, counter: dir + "/builds")
        try shell("chown -R \(user): \(state) && chmod 0750 \(state)")

        let daemon = try TestNixDaemon(self, directory: dir)
        let environment = unit.environment.merging(try readSystemdEnvironmentFile(Self.environmentFilePath)) { $1 }
        var command = try unit.commandLine(environment: environment)
        XCTAssertEqual(command.first, "/usr/local/bin/nix-netboot-serve")
        command[0] = ServerProcess.binary
        try replaceValue(of: "--listen", with: "127.0.0.1:0", in: &command)
        try replaceValue(of: "--state-dir", with: state, in: &command)
        let server = try UnitProcess(
            self, user: user, command: command,
            environment: environment.merging(["HOME": state, "USER": user, "LOGNAME": user, "NIX_DAEMON_SOCKET_PATH": daemon.socket]) { $1 },
            logDirectory: dir)
        let serverPID = try XCTUnwrap(server.serverPID)
        XCTAssertEqual(realUserID(of: serverPID), uid, "the server runs as \(user)")

        // A system nothing else roots: built now, without an out-link.
        let system = try PackFixtures.build(salt: "daemon-\(UUID())").system
        let dispatch = try shellString("curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' \(server.base)/dispatch/closure/\(system.name)")
        XCTAssertTrue(dispatch.hasPrefix("302 ") && dispatch.hasSuffix("/boot/\(system.name)/netboot.ipxe"), dispatch)
        try assertServesAValidInitrd(server, system, into: dir)

        // The pin is a root the daemon knows: nix-store --delete through the daemon refuses the path.
        let pin = state + "/gc-roots/pins/pin-" + system.name
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: pin), system.absolutePath)
        XCTAssertFalse(try registeredIndirectRoots(pointingAt: pin).isEmpty, "the daemon registered \(pin) in gcroots/auto")
        var info = stat()
        XCTAssertEqual(lstat(pin, &info), 0)
        XCTAssertEqual(info.st_uid, uid, "made by the server's user")
        let refused = try shell("nix-store --delete \(system.absolutePath)", environment: daemon.clientEnvironment, allowFailure: true)
        XCTAssertNotEqual(refused.status, 0, "pinned: \(refused.error)")
        XCTAssertTrue(refused.error.contains("still alive"), refused.error)
        XCTAssertTrue(FileManager.default.fileExists(atPath: system.absolutePath))

        // What the pin adds over a plain symlink: one made beside it by the same user protects nothing.
        let unregistered = try PackFixtures.build(salt: "daemon-plain-\(UUID())").link
        let plain = state + "/gc-roots/plain-" + unregistered.name
        try shell("runuser -u \(user) -- ln -s \(unregistered.absolutePath) \(plain)")
        try shell("nix-store --delete \(unregistered.absolutePath)", environment: daemon.clientEnvironment)
        XCTAssertFalse(FileManager.default.fileExists(atPath: unregistered.absolutePath), "a symlink the daemon never learnt of is no root")

        // The configuration: evaluated and built through the daemon, its root protects the result.
        let built = try shellString("curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' \(server.base)/dispatch/configuration/\(configuration)")
        XCTAssertTrue(built.hasPrefix("302 "), "\(built)\n\(server.log)")
        let builtName = try XCTUnwrap(built.split(separator: "/").dropLast().last.map(String.init), built)
        let result = try StorePath(name: builtName)
        XCTAssertEqual(try String(contentsOfFile: result.absolutePath + "/version", encoding: .utf8), version + "\n")
        XCTAssertEqual(readLines(dir + "/builds"), ["built-\(version)"], "built once, by the daemon's builder")
        let configurationRoot = state + "/gc-roots/configuration-" + configuration
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: configurationRoot), result.absolutePath)
        XCTAssertFalse(try registeredIndirectRoots(pointingAt: configurationRoot).isEmpty)
        try assertServesAValidInitrd(server, result, into: dir)
        // Only the configuration's root is left once its pin is gone.
        XCTAssertEqual(unlink(state + "/gc-roots/pins/pin-" + result.name), 0)
        let kept = try shell("nix-store --delete \(result.absolutePath)", environment: daemon.clientEnvironment, allowFailure: true)
        XCTAssertNotEqual(kept.status, 0, "rooted by configuration-\(configuration): \(kept.error)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: result.absolutePath))

        XCTAssertTrue(daemon.log.contains("user \(user)"), "the server's Nix calls went through the daemon:\n\(daemon.log)")
        XCTAssertEqual(server.stop(), 0, "SIGTERM ends the service cleanly:\n\(server.log)")
        let serverGone = try await waitUntilGone(serverPID)
        XCTAssertTrue(serverGone, "server \(serverPID)")

        // With the server gone and its pin removed, the system is ordinary garbage again.
        XCTAssertEqual(unlink(pin), 0)
        try shell("nix-store --delete \(system.absolutePath)", environment: daemon.clientEnvironment)
        XCTAssertFalse(FileManager.default.fileExists(atPath: system.absolutePath))

        let workers = daemon.workers
        daemon.stop()
        XCTAssertFalse(daemon.process.isRunning)
        for worker in workers {
            let gone = try await waitUntilGone(worker)
            XCTAssertTrue(gone, "daemon worker \(worker)")
        }
    }

    func testSystemdAnalyzeVerifyPassesWithTheBinaryWhereExecStartNamesIt() throws {
        let unit = try SystemdServiceUnit(contentsOf: Self.unitPath)
        let executable = try XCTUnwrap(try unit.commandLine(environment: [:]).first)
        // A root of its own (systemd-analyze --root), so nothing is installed on the machine itself.
        let root = try makeTemporaryDirectory(self, "unit-root")
        try shell("mkdir -p \(root)/usr/lib/systemd \(root)/etc/systemd/system \(root)$(dirname \(executable))")
        try shell("cp -a /usr/lib/systemd/system \(root)/usr/lib/systemd/ && cp \(Self.unitPath) \(root)/etc/systemd/system/")
        let verify = "systemd-analyze verify --root=\(root) nix-netboot-serve.service"

        let missing = try shell(verify, allowFailure: true)
        XCTAssertNotEqual(missing.status, 0, "fails while the binary is not installed")
        XCTAssertTrue(missing.error.contains("\(executable) is not executable"), missing.error)

        try shell("install -m 0755 \(ServerProcess.binary) \(root)\(executable)")
        let installed = try shell(verify, allowFailure: true)
        XCTAssertEqual(installed.status, 0, installed.error)
        XCTAssertEqual(installed.error + String(decoding: installed.output, as: UTF8.self), "", "no warning either (an unknown key is only a warning)")
    }

    /// Replaces the value after `flag`, which the shipped command line must have.
    func replaceValue(of flag: String, with value: String, in command: inout [String]) throws {
        guard let index = command.firstIndex(of: flag), index + 1 < command.count else {
            throw ShellError(description: "the environment file gives no \(flag): \(command)")
        }
        command[index + 1] = value
    }

    /// Downloads `/boot/NAME/initrd` and checks the kernel would unpack the whole closure, registered.
    func assertServesAValidInitrd(_ server: UnitProcess, _ system: StorePath, into dir: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let path = dir + "/initrd-" + system.name
        let status = try shellString("curl -sS -o \(path) -w '%{http_code}' \(server.base)/boot/\(system.name)/initrd")
        XCTAssertEqual(status, "200", server.log, file: file, line: line)
        let initrd = try KernelInitramfs.parse(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        let closure = try shellString("nix-store -qR \(system.absolutePath)").split(separator: "\n")
        XCTAssertFalse(closure.isEmpty, file: file, line: line)
        for member in closure {
            let name = member.dropFirst(StorePath.storeDirectory.count + 1)
            XCTAssertNotNil(initrd.tree["nix/store/\(name)"], "\(name) in the initrd", file: file, line: line)
            XCTAssertNotNil(initrd.tree["nix/.nix-netboot-serve-db/registration/\(name)"], "\(name) registered", file: file, line: line)
        }
        XCTAssertTrue(initrd.tree["nix/store/\(system.name)/init"]?.isRegular ?? false, file: file, line: line)
    }
}
