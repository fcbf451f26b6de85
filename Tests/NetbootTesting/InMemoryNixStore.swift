import Foundation
import NetbootHost
import Synchronization

/// A ``NixStore`` without Nix: validity, closures and registrations held in memory, the paths' files
/// real, under a temporary store directory of its own.
///
/// Tests add the paths they need (a NixOS-shaped system, a plain path, references between them),
/// name paths on which "Nix" fails (every query about them throws ``NixCommandError``, as a broken
/// `nix-store` would), and give the server ``storeDirectory``: then routes, the
/// layout reader and the packer run for real on these files. A name never added is well-formed and
/// invalid, as a path not built yet.
public final class InMemoryNixStore: NixStore {
    /// Where the stand-in paths' files are: `storeDirectory/NAME` plays `/nix/store/NAME`.
    public let storeDirectory: String

    private struct State {
        var references: [StorePath: [StorePath]] = [:]
        var sizes: [StorePath: Int] = [:]
        var failing: Set<StorePath> = []
        var queries = 0
    }
    private let state = Mutex(State())

    /// A store under `directory` (created if missing; the caller removes it).
    public init(directory: String) throws {
        storeDirectory = directory + "/store"
        try FileManager.default.createDirectory(atPath: storeDirectory, withIntermediateDirectories: true)
    }

    /// A well-formed store path name for `name` with a fresh hash; nothing is added.
    public func name(_ name: String) throws -> StorePath {
        let alphabet = Array("0123456789abcdfghijklmnpqrsvwxyz")
        var generator = SystemRandomNumberGenerator()
        let hash = String((0..<32).map { _ in alphabet[Int(generator.next(upperBound: UInt32(alphabet.count)))] })
        return try StorePath(name: hash + "-" + name)
    }

    /// Adds a valid path holding `contents`, referring to `references` (which must be added already).
    @discardableResult
    public func add(_ name: String, contents: StoreNode, references: [StorePath] = []) throws -> StorePath {
        let path = try self.name(name)
        try write(contents, at: storeDirectory + "/" + path.name)
        state.withLock {
            $0.references[path] = references
            $0.sizes[path] = contents.contentSize
        }
        return path
    }

    /// Adds a NixOS-shaped system: `init`, `kernel` and (unless nil) `kernel-params`.
    @discardableResult
    public func addSystem(
        _ name: String, kernel: String = "not really a kernel\n", kernelParameters: String? = "console=ttyS0 loglevel=4",
        references: [StorePath] = []
    ) throws -> StorePath {
        var entries: [String: StoreNode] = ["init": .file("#!/bin/sh\necho init\n", executable: true), "kernel": .file(kernel)]
        if let kernelParameters { entries["kernel-params"] = .file(kernelParameters) }
        return try add(name, contents: .directory(entries), references: references)
    }

    /// From now on every query about `path` (or a closure through it) fails as a broken `nix-store` does.
    public func failQueries(about path: StorePath) {
        state.withLock { _ = $0.failing.insert(path) }
    }

    /// How many queries the store answered or failed (validity, closure, registrations).
    public var queryCount: Int { state.withLock { $0.queries } }

    public func isValid(_ path: StorePath) async throws -> Bool {
        try state.withLock { state in
            state.queries += 1
            try Self.check(state, path, ["--check-validity", path.absolutePath])
            return state.references[path] != nil
        }
    }

    public func requisites(of path: StorePath) async throws -> [StorePath] {
        try state.withLock { state in
            state.queries += 1
            var seen: Set<StorePath> = [], pending = [path]
            while let next = pending.popLast() {
                try Self.check(state, next, ["--query", "--requisites", path.absolutePath])
                guard let references = state.references[next] else {
                    throw NixCommandError(
                        command: ["nix-store", "--query", "--requisites", path.absolutePath], status: "exited with 1",
                        standardError: "error: path '\(next.absolutePath)' is not valid")
                }
                if seen.insert(next).inserted { pending += references }
            }
            return seen.sorted()
        }
    }

    public func registrations(of paths: [StorePath]) async throws -> [StorePath: [UInt8]] {
        try state.withLock { state in
            state.queries += 1
            var result: [StorePath: [UInt8]] = [:]
            for path in paths {
                try Self.check(state, path, ["--dump-db", path.absolutePath])
                guard let references = state.references[path] else {
                    throw NixCommandError(
                        command: ["nix-store", "--dump-db", path.absolutePath], status: "exited with 1",
                        standardError: "error: path '\(path.absolutePath)' is not valid")
                }
                let lines = [path.absolutePath, "sha256:" + String(repeating: "0", count: 52), "\(state.sizes[path] ?? 0)", "", "\(references.count)"]
                    + references.map(\.absolutePath)
                result[path] = Array((lines.joined(separator: "\n") + "\n").utf8)
            }
            return result
        }
    }

    /// Throws if `path` is one Nix fails on.
    /// Makes `root` a symlink to `path`, as Nix's indirect root does; `path` must be valid.
    public func realise(_ path: StorePath, root: String) async throws {
        try state.withLock { try Self.check($0, path, ["--realise", path.absolutePath, "--add-root", root]) }
        guard state.withLock({ $0.references[path] != nil }) else {
            throw NixCommandError(command: ["nix-store", "--realise", path.absolutePath], status: "exited(1)", standardError: "error: path '\(path)' is not valid")
        }
        try? FileManager.default.removeItem(atPath: root)
        try FileManager.default.createSymbolicLink(atPath: root, withDestinationPath: path.absolutePath)
    }

    /// Nothing evaluates here.
    public func instantiate(file: String) async throws -> Derivation {
        throw NixCommandError(command: ["nix-instantiate", file], status: "exited(1)", standardError: "error: no evaluator in an in-memory store")
    }

    public func instantiate(flake reference: String, attributePath: [String]) async throws -> Derivation {
        throw NixCommandError(command: ["nix", "eval", reference], status: "exited(1)", standardError: "error: no evaluator in an in-memory store")
    }

    /// Nothing builds here.
    public func build(_ derivation: Derivation) async throws -> [StorePath] {
        throw NixCommandError(command: ["nix-store", "--realise", derivation.path], status: "exited(1)", standardError: "error: no builder in an in-memory store")
    }

    private static func check(_ state: State, _ path: StorePath, _ arguments: [String]) throws {
        if state.failing.contains(path) {
            throw NixCommandError(
                command: ["nix-store"] + arguments, status: "exited with 1",
                standardError: "error: cannot open the Nix database (stand-in failure)")
        }
    }

    private func write(_ node: StoreNode, at path: String) throws {
        switch node {
        case .file(let contents, let executable):
            guard FileManager.default.createFile(atPath: path, contents: Data(contents.utf8), attributes: [.posixPermissions: executable ? 0o555 : 0o444]) else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
            }
        case .symlink(let target):
            try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
        case .directory(let entries):
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
            for (name, child) in entries { try write(child, at: path + "/" + name) }
            try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: path)
        }
    }
}
