import Foundation
import NetbootHost
import XCTest

/// A fresh two-path closure (a system and its dependency, built with busybox), copied into a
/// binary cache signed with a key pair of its own, then deleted from the local store.
///
/// A random salt makes new paths every time, so a realise can only succeed by substituting them.
struct SignedCacheFixture {
    /// The cache directory (`nix-cache-info`, `*.narinfo`, `nar/`).
    let cacheDirectory: String
    /// The system path, which refers to ``dependency``.
    let path: StorePath
    let dependency: StorePath
    /// `NAME:BASE64` of the key that signed the cache.
    let publicKey: String

    /// Nix's configuration for a client of this cache served at `url`, trusting `trustedKey`.
    static func nixConfig(substituter url: String, trustedKey: String) -> String {
        [
            "substituters = \(url)",
            "trusted-public-keys = \(trustedKey)",
            "require-sigs = true",
            "narinfo-cache-negative-ttl = 0",
            "narinfo-cache-positive-ttl = 0",
        ].joined(separator: "\n")
    }

    /// A key pair under `directory`; returns the public key's contents.
    static func makeKeyPair(named name: String, in directory: String) throws -> (secretFile: String, publicKey: String) {
        let secret = directory + "/\(name).sec", pub = directory + "/\(name).pub"
        try sh("nix-store --generate-binary-cache-key \(name) \(secret) \(pub)")
        return (secret, try String(contentsOfFile: pub, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    static func make(in directory: String) throws -> SignedCacheFixture {
        let salt = UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory + "/busybox/bin", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: directory + "/busybox/bin/busybox")
        try closureExpression.write(toFile: directory + "/closure.nix", atomically: true, encoding: .utf8)
        let path = try StorePath(absolutePath: try sh(
            "nix-build \(directory)/closure.nix --no-out-link --argstr busyboxDir \(directory)/busybox --argstr salt \(salt)").output)
        let references = try sh("nix-store --query --references \(path.absolutePath)").output.split(separator: "\n")
        guard let dependencyLine = references.first(where: { $0.hasSuffix("-hydra-test-dependency") }) else {
            throw ShellError(description: "\(path) does not refer to its dependency: \(references)")
        }
        let dependency = try StorePath(absolutePath: String(dependencyLine))

        let key = try makeKeyPair(named: "hydra-test-cache-\(salt.prefix(8))", in: directory)
        let cache = directory + "/cache"
        try sh("nix --extra-experimental-features nix-command copy --to 'file://\(cache)?secret-key=\(key.secretFile)' \(path.absolutePath)")
        try sh("nix-store --delete \(path.absolutePath) \(dependency.absolutePath)")
        let invalid = try sh("nix-store --check-validity --print-invalid \(path.absolutePath) \(dependency.absolutePath)").output
        guard invalid.split(separator: "\n").count == 2 else {
            throw ShellError(description: "the fixture's paths are still valid after deletion: \(invalid)")
        }
        return SignedCacheFixture(cacheDirectory: cache, path: path, dependency: dependency, publicKey: key.publicKey)
    }

    /// The closure: a directory that names its dependency, and the dependency; both carry the salt.
    static let closureExpression = """
        { busyboxDir, salt }:
        let
          busybox = builtins.path { path = busyboxDir; name = "busybox"; };
          run = name: script: derivation {
            inherit name salt;
            system = builtins.currentSystem;
            builder = "${busybox}/bin/busybox";
            args = [ "sh" "-eu" "-c" script ];
            PATH = "${busybox}/bin";
          };
          dependency = run "hydra-test-dependency" ''
            printf 'a dependency %s\\n' "$salt" > $out
          '';
        in run "hydra-test-system" ''
          mkdir $out
          printf '%s\\n' ${dependency} > $out/dependency
          printf 'salt %s\\n' "$salt" > $out/salt
        ''
        """
}
