#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NetbootHost
import XCTest

/// Debian's nginx running the shipped `deploy/nginx/fleet.conf` in front of replicas of the server.
///
/// The test writes only a top-level `nginx.conf` (workers, temp directories) that includes a copy of
/// the shipped file in which the lines marked `# EDIT` are rewritten: the replicas' addresses, the
/// cache directory, the listen address and the access log. Any other difference fails the set-up.
/// Started as root with `-p PREFIX -c CONF -g 'daemon off; pid …; error_log …;'`, stopped (master
/// and workers, by PID) in the test's teardown.
final class FleetNginx: @unchecked Sendable {
    /// The shipped configuration.
    static let shippedConfiguration = repositoryRoot + "/deploy/nginx/fleet.conf"

    let directory: String
    let port: Int
    let process = Process()
    var base: String { "http://127.0.0.1:\(port)" }
    var cacheDirectory: String { directory + "/cache" }
    var accessLog: String { (try? String(contentsOfFile: directory + "/access.log", encoding: .utf8)) ?? "" }
    var errorLog: String { (try? String(contentsOfFile: directory + "/error.log", encoding: .utf8)) ?? "" }

    init(_ test: XCTestCase, replicas: [ServerProcess]) throws {
        directory = try makeTemporaryDirectory(test, "fleet-nginx")
        port = try freeLoopbackPort()
        try FileManager.default.createDirectory(atPath: directory + "/tmp", withIntermediateDirectories: true)
        let shipped = try String(contentsOfFile: Self.shippedConfiguration, encoding: .utf8)
        let fleet = try Self.rewrite(
            shipped, replicas: replicas.map { "127.0.0.1:\($0.port)" }, cacheDirectory: directory + "/cache",
            listen: "127.0.0.1:\(port)", accessLog: directory + "/access.log")
        try fleet.write(toFile: directory + "/fleet.conf", atomically: true, encoding: .utf8)
        try """
            user root;
            worker_processes 2;
            events { worker_connections 1024; }
            http {
                client_body_temp_path \(directory)/tmp/body;
                proxy_temp_path \(directory)/tmp/proxy;
                fastcgi_temp_path \(directory)/tmp/fastcgi;
                uwsgi_temp_path \(directory)/tmp/uwsgi;
                scgi_temp_path \(directory)/tmp/scgi;
                include \(directory)/fleet.conf;
            }

            """.write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/nginx")
        process.arguments = [
            "-p", directory, "-c", directory + "/nginx.conf", "-e", directory + "/error.log",
            "-g", "daemon off; pid \(directory)/nginx.pid; error_log \(directory)/error.log info;",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        test.addTeardownBlock { self.stop() }
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            guard process.isRunning else { break }
            if (try? shell("curl -s -o /dev/null --max-time 2 \(base)/healthz", allowFailure: true).status) == 0 { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        stop()
        throw ShellError(description: "nginx did not start:\n\(errorLog)")
    }

    /// `shipped` with its `# EDIT` lines set for this test: the block of replica `server` lines
    /// becomes one line per replica; the cache path, listen address and access log are replaced.
    static func rewrite(_ shipped: String, replicas: [String], cacheDirectory: String, listen: String, accessLog: String) throws -> String {
        var lines: [String] = []
        var replicasWritten = false
        for line in shipped.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            guard line.contains("# EDIT"), !line.trimmingCharacters(in: .whitespaces).hasPrefix("#") else {
                lines.append(line)
                continue
            }
            let indent = String(line.prefix { $0 == " " })
            let words = line.trimmingCharacters(in: .whitespaces).split(separator: " ")
            switch words.first {
            case "server":
                if !replicasWritten { lines += replicas.map { "\(indent)server \($0);" } }
                replicasWritten = true
            case "proxy_cache_path":
                lines.append(indent + (["proxy_cache_path", cacheDirectory] + words.dropFirst(2).prefix { $0 != "#" }.map(String.init)).joined(separator: " "))
            case "listen":
                lines.append("\(indent)listen \(listen);")
            case "access_log":
                lines.append(indent + (["access_log", accessLog] + words.dropFirst(2).prefix { $0 != "#" }.map(String.init)).joined(separator: " "))
            default:
                throw ShellError(description: "fleet.conf: a line marked EDIT that the test does not know: \(line)")
            }
        }
        guard replicasWritten else { throw ShellError(description: "fleet.conf: no replica server lines marked EDIT") }
        return lines.joined(separator: "\n")
    }

    /// Lines of the access log for `path` (exact), each `(status, cache status)`.
    func logged(_ path: String) -> [(status: Int, cache: String)] {
        accessLog.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: "\"")
            guard parts.count >= 3, parts[1].split(separator: " ").dropFirst().first.map(String.init) == path else { return nil }
            let rest = parts[2].split(separator: " ")
            let cache = rest.first { $0.hasPrefix("cache=") }.map { String($0.dropFirst("cache=".count)) } ?? ""
            return (Int(rest.first ?? "") ?? 0, cache)
        }
    }

    /// SIGTERM to the master (a fast shutdown that ends the workers), SIGKILL to all after 5 s.
    func stop() {
        guard process.isRunning else { return }
        let workers = childProcesses(of: process.processIdentifier)
        process.terminate()
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        for worker in workers { kill(worker, SIGKILL) }
        process.waitUntilExit()
    }
}

/// A TCP port free on 127.0.0.1 now (bound to port 0, then released).
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ShellError(description: "socket: \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw ShellError(description: "bind: \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Store paths of the fleet tests: systems of `Tests/fixtures/boot/system.nix` (no QEMU).
enum FleetSystems {
    /// Variants a to d: they share every dependency but `nns-test-variant`, and differ in their toplevel.
    static func build(_ variants: [String]) throws -> [StorePath] {
        guard !QEMUBootTests.kernel.isEmpty, FileManager.default.fileExists(atPath: QEMUBootTests.kernel) else {
            throw ShellError(description: "no kernel: scripts/fetch-kernel.sh failed (or NNS_TEST_KERNEL is wrong)")
        }
        return try variants.map { try QEMUBootTests.system($0) }
    }

    /// The closure of `path` (`nix-store --query --requisites`).
    static func closure(_ path: StorePath) throws -> Set<StorePath> {
        Set(try shellString("nix-store --query --requisites \(path.absolutePath)").split(separator: "\n").map { try StorePath(absolutePath: String($0)) })
    }

    /// Per system, the paths of its closure that no other system's closure holds.
    static func ownPaths(_ systems: [StorePath]) throws -> [StorePath: Set<StorePath>] {
        let closures = try systems.map(closure)
        var own: [StorePath: Set<StorePath>] = [:]
        for (index, system) in systems.enumerated() {
            var mine = closures[index]
            for (other, closure) in closures.enumerated() where other != index { mine.subtract(closure) }
            own[system] = mine
        }
        return own
    }

    /// A fresh system (a salted variant), its closure copied to a binary cache at `cacheDirectory`
    /// (`file://…`, unsigned, uncompressed), then its own paths deleted from the local store: only a
    /// substituter can bring it back.
    static func inBinaryCacheOnly(cacheDirectory: String) throws -> (system: StorePath, deleted: [StorePath]) {
        let variant = "cache-" + UUID().uuidString.prefix(8).lowercased()
        let system = try build([variant])[0]
        let others = try build(["a"])
        let deleted = Array(try ownPaths([system] + others)[system] ?? [])
        try sh("nix --extra-experimental-features nix-command copy --to 'file://\(cacheDirectory)?compression=none' \(system.absolutePath)")
        try sh("nix-store --delete \(deleted.map(\.absolutePath).joined(separator: " "))")
        let invalid = try sh("nix-store --check-validity --print-invalid \(deleted.map(\.absolutePath).joined(separator: " "))").output
        guard invalid.split(separator: "\n").count == deleted.count, deleted.contains(system) else {
            throw ShellError(description: "the fixture's own paths are still valid after deletion: \(invalid)")
        }
        return (system, deleted)
    }

    /// Nix's configuration for a replica whose only substituter is the unsigned cache at `directory`.
    static func nixConfig(binaryCache directory: String) -> String {
        [
            "substituters = file://\(directory)",
            "require-sigs = false",
            "narinfo-cache-negative-ttl = 0",
            "narinfo-cache-positive-ttl = 0",
        ].joined(separator: "\n")
    }
}

extension ServerProcess {
    /// The names of the archives in this replica's CPIO cache.
    var cachedArchives: [String] {
        guard let state = stateDirectory else { return [] }
        return ((try? FileManager.default.contentsOfDirectory(atPath: state + "/cpio-cache")) ?? []).filter { $0.contains("@nns-cpio-v") }
    }

    /// Whether this replica's CPIO cache holds the archive of `path`.
    func hasArchive(of path: StorePath) -> Bool { cachedArchives.contains { $0.hasPrefix(path.name + "@") } }

    /// The log's request lines for exactly `path` with `method` (only those nginx forwarded, if `via`).
    func requests(_ method: String, _ path: String, via: Bool = false) -> [Substring] {
        log.split(separator: "\n").filter {
            $0.contains("method=\(method) ") && $0.contains("path=\(path) ") && $0.hasSuffix("request") && (!via || $0.contains(" via "))
        }
    }

    /// `/status` as JSON.
    func statusJSON() throws -> [String: Any] {
        let data = try shell("curl -sSf -H 'Accept: application/json' \(base)/status").output
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }
}
