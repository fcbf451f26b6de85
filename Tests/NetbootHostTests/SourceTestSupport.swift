import ArgumentParser
import ClosureSource
import Codecs
import ConfigurationSource
import Foundation
import Logging
import NetbootHost
import ProfileSource
import ServiceLifecycle
import XCTest

/// A server wired as the executable wires it, on a temporary state directory.
struct TestServer {
    let stateDir: String
    let options: ServerOptions
    let context: SourceContext
    let server: NetbootServer

    init(_ test: XCTestCase, arguments: [String] = [], configurationArguments: [String] = [], tool: (@Sendable (String) -> NixCommand)? = nil) throws {
        stateDir = try makeTemporaryDirectory(test, "state")
        options = try ServerOptions.parse(["--state-dir", stateDir] + arguments)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let context = NetbootServer.sourceContext(options: options, store: tool.map { NixStoreCLI(tool: $0) } ?? NixStoreCLI(), logger: logger)
        self.context = context
        var registry = ModuleRegistry()
        try registry.register(compressor: ZstdCompressor())
        try registry.register(source: ClosureSource(context: context))
        try registry.register(source: ProfileSource(options: try ProfileSource.Options.parse([]), context: context))
        try registry.register(source: try ConfigurationSource(options: try ConfigurationSource.Options.parse(configurationArguments), context: context))
        server = try NetbootServer(options: options, registry: registry, store: NixStoreCLI(), logger: logger)
        // The server's services (the cache, the sources' coordinators) run for the test, as the server runs them.
        startServices(server.services, for: test)
    }

    var configurationSource: ConfigurationSource { server.registry.source(named: "configuration") as! ConfigurationSource }
    var profileSource: ProfileSource { server.registry.source(named: "profile") as! ProfileSource }
}

/// Writes `configurations/NAME/default.nix` building a NixOS-shaped path (a stand-in `kernel` and
/// `init`) whose `version` file says `version`.
/// The builder appends a line to `counter` each time it runs, and sleeps `sleep` seconds first.
/// With `noise`, the builder first writes that many bytes to stderr.
func writeConfiguration(stateDir: String, name: String, version: String, sleep: Double = 0, fail: Bool = false, noise: Int = 0, counter: String) throws {
    let dir = stateDir + "/configurations/" + name
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    var script = fail
        ? "echo building; echo 'error: the $HOME config is broken' >&2; echo 'second line of the failure' >&2; exit 1"
        : "echo built-\(version) >> \(counter); sleep \(sleep); mkdir $out; echo \(version) > $out/version; echo kernel > $out/kernel; echo init > $out/init"
    if noise > 0 { script = "yes 'a builder that talks' | head -c \(noise) >&2; " + script }
    try """
    let busybox = builtins.path { path = "\(busyboxDirectory)"; name = "busybox"; };
    in derivation {
      name = "config-\(name)";
      system = builtins.currentSystem;
      builder = "${busybox}/bin/busybox";
      PATH = "${busybox}/bin";
      args = [ "sh" "-c" ''\(script)'' ];
    }
    """.write(toFile: dir + "/default.nix", atomically: true, encoding: .utf8)
}

/// Wrappers for Nix's tools that log when each run starts and ends, to check concurrency; with a
/// `delay`, each run sleeps that long first (to make overlaps certain).
func loggingTools(_ test: XCTestCase, delay: Double = 0) throws -> (tool: @Sendable (String) -> NixCommand, log: String) {
    let dir = try makeTemporaryDirectory(test, "tools")
    let log = dir + "/runs.log"
    for name in ["nix-instantiate", "nix-store"] {
        let real = try shellString("command -v \(name)")
        try """
        #!/bin/sh
        echo "start \(name)" >> \(log)
        sleep \(delay)
        \(real) "$@"
        status=$?
        echo "end \(name)" >> \(log)
        exit $status
        """.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
        chmod(dir + "/" + name, 0o755)
    }
    return ({ NixCommand(executable: dir + "/" + $0) }, log)
}

/// The most runs of `tool` that overlapped, read from a ``loggingTools(_:)`` log.
func maximumOverlap(_ log: String, tool: String) -> (runs: Int, overlap: Int) {
    let lines = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n")
    var current = 0, maximum = 0, runs = 0
    for line in lines {
        if line == "start \(tool)" { current += 1; runs += 1; maximum = max(maximum, current) }
        if line == "end \(tool)" { current -= 1 }
    }
    return (runs, maximum)
}

func readLines(_ path: String) -> [String] {
    ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
}
