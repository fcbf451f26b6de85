import Foundation
import NetbootHost
import XCTest

/// Runs a shell command and returns its stdout; stdout and stderr go through files, so no pipe can fill.
@discardableResult
func shell(_ command: String, environment: [String: String] = [:], allowFailure: Bool = false) throws -> (status: Int32, output: Data, error: String) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nns-shell-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let out = dir.appendingPathComponent("out"), err = dir.appendingPathComponent("err")
    _ = FileManager.default.createFile(atPath: out.path, contents: nil)
    _ = FileManager.default.createFile(atPath: err.path, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", command]
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let outHandle = try FileHandle(forWritingTo: out), errHandle = try FileHandle(forWritingTo: err)
    defer {
        try? outHandle.close()
        try? errHandle.close()
    }
    process.standardOutput = outHandle
    process.standardError = errHandle
    process.standardInput = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    let result = (process.terminationStatus, try Data(contentsOf: out), (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    if !allowFailure && result.0 != 0 {
        throw ShellError(description: "`\(command)` exited \(result.0): \(result.2)")
    }
    return result
}

struct ShellError: Error, CustomStringConvertible { var description: String }

func shellString(_ command: String, environment: [String: String] = [:]) throws -> String {
    String(decoding: try shell(command, environment: environment).output, as: UTF8.self)
        .trimmingCharacters(in: .whitespacesAndNewlines)
}

/// A fresh temporary directory, removed by the test's teardown.
func makeTemporaryDirectory(_ test: XCTestCase, _ label: String = "t") throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("nns-\(label)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
    return path
}

/// The repository root (where Package.swift is).
let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    while url.path != "/" {
        url.deleteLastPathComponent()
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url.path }
    }
    fatalError("no Package.swift above \(#filePath)")
}()

/// A directory holding `bin/busybox`, the builder of every test derivation.
let busyboxDirectory: String = {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nns-busybox").path
    let bin = dir + "/bin/busybox"
    if !FileManager.default.fileExists(atPath: bin) {
        try! FileManager.default.createDirectory(atPath: dir + "/bin", withIntermediateDirectories: true)
        try! FileManager.default.copyItem(atPath: "/bin/busybox", toPath: bin)
    }
    return dir
}()

/// Real store paths built with `nix-build` from `Tests/fixtures/pack/paths.nix`.
struct PackFixtures: Sendable {
    let tree: StorePath
    let single: StorePath
    let link: StorePath
    /// A NixOS-shaped system: `kernel` (a stand-in), `init`, `kernel-params`.
    let system: StorePath

    static func build(salt: String = "") throws -> PackFixtures {
        func attr(_ name: String) throws -> StorePath {
            let out = try shellString(
                "nix-build \(repositoryRoot)/Tests/fixtures/pack/paths.nix --no-out-link -A \(name) --argstr busyboxDir \(busyboxDirectory) --argstr salt '\(salt)'")
            return try StorePath(absolutePath: out)
        }
        return PackFixtures(tree: try attr("tree"), single: try attr("single"), link: try attr("link"), system: try attr("system"))
    }

    /// A root whose closure holds `count` paths.
    static func many(_ count: Int) throws -> StorePath {
        try StorePath(absolutePath: try shellString(
            "nix-build \(repositoryRoot)/Tests/fixtures/pack/paths.nix --no-out-link -A many --arg manyCount \(count) --argstr busyboxDir \(busyboxDirectory)"))
    }

    static let shared: PackFixtures = try! build()
}

/// Describes a file tree (types, permission bits, contents, link targets) for comparisons.
func describeTree(_ root: String) throws -> [String: String] {
    var result: [String: String] = [:]
    func visit(_ path: String, _ relative: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw ShellError(description: "lstat \(path) failed") }
        let perms = String(info.st_mode & 0o7777, radix: 8)
        switch info.st_mode & S_IFMT {
        case S_IFDIR:
            result[relative] = "dir \(perms)"
            for child in try FileManager.default.contentsOfDirectory(atPath: path) {
                try visit(path + "/" + child, relative.isEmpty ? child : relative + "/" + child)
            }
        case S_IFLNK:
            result[relative] = "link -> " + (try FileManager.default.destinationOfSymbolicLink(atPath: path))
        case S_IFREG:
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            result[relative] = "file \(perms) \(data.count) \(data.hashValue)"
        default:
            result[relative] = "other"
        }
    }
    try visit(root, "")
    return result
}

extension KernelInitramfs {
    /// Writes the tree the kernel would have created under `root` (a temporary directory).
    func materialize(into root: String) throws {
        for path in tree.keys.sorted() {
            let entry = tree[path]!
            let target = path.isEmpty ? root : root + "/" + path
            if entry.isDirectory {
                try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            } else if entry.isSymlink {
                try FileManager.default.createSymbolicLink(atPath: target, withDestinationPath: String(decoding: entry.data, as: UTF8.self))
            } else if entry.isRegular {
                _ = FileManager.default.createFile(atPath: target, contents: Data(entry.data))
                chmod(target, mode_t(entry.mode & 0o7777))
            }
        }
    }
}

/// The directories the leader creates, for checking a single archive on its own.
let leaderDirectories: Set<String> = ["", "nix", "nix/store", "nix/.nix-netboot-serve-db", "nix/.nix-netboot-serve-db/registration"]

/// Describes the entries of a kernel-parsed tree below `prefix` the way ``describeTree(_:)`` describes disk.
func describeKernelTree(_ initramfs: KernelInitramfs, prefix: String) -> [String: String] {
    var result: [String: String] = [:]
    for (path, entry) in initramfs.tree where path == prefix || path.hasPrefix(prefix + "/") {
        let relative = path == prefix ? "" : String(path.dropFirst(prefix.count + 1))
        let perms = String(entry.mode & 0o7777, radix: 8)
        if entry.isDirectory {
            result[relative] = "dir \(perms)"
        } else if entry.isSymlink {
            result[relative] = "link -> " + String(decoding: entry.data, as: UTF8.self)
        } else if entry.isRegular {
            result[relative] = "file \(perms) \(entry.data.count) \(Data(entry.data).hashValue)"
        } else {
            result[relative] = "other"
        }
    }
    return result
}

/// Packs `path` with `compressor` into memory.
func packToMemory(_ path: StorePath, compressor: any Compressor, level: Int? = nil) async throws -> [UInt8] {
    let registration = try await NixStoreCLI().registrations(of: [path])[path]!
    let packer = StorePathPacker(compressor: compressor, level: try compressor.validatedLevel(level))
    return try packer.pack(path, registration: registration, into: MemorySink()).bytes
}

func writeFile(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// Waits up to five seconds for process `pid` to be gone (or a zombie); returns whether it is.
func waitUntilGone(_ pid: Int32) async throws -> Bool {
    for _ in 0..<100 {
        let stat = try shellString("ps -o stat= -p \(pid) || true")
        if kill(pid, 0) != 0 || stat.hasPrefix("Z") { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return false
}
