import ArgumentParser

/// The host's command-line options. The original server's flags keep their names.
package struct ServerOptions: ParsableArguments, Sendable {
    @Option(help: "Address and port to listen on.")
    package var listen: String = "127.0.0.1:3030"

    @Option(help: "Where state lives; every directory not given explicitly is created under it.")
    package var stateDir: String = "./nix-netboot-serve-state"

    @Option(help: "Directory of GC roots that keep booted systems alive (default: STATE_DIR/gc-roots).")
    package var gcRootDir: String?

    @Option(help: "Directory of cached per-path archives (default: STATE_DIR/cpio-cache).")
    package var cpioCacheDir: String?

    @Option(help: "Most bytes the archive cache keeps; least recently used archives go first.")
    package var maxCpioCacheBytes: UInt64 = 5 << 30

    @Option(help: "Raise the soft limit of open files to this, as far as the hard limit allows.")
    package var openFiles: UInt64 = 50000

    @Option(help: "Codec of the per-path archives (see the list of codecs below).")
    package var compression: String = "zstd"

    @Option(help: "Compression level (default: the codec's own).")
    package var compressionLevel: Int?

    @Option(help: "Most archives packed at once (default: the number of cores).")
    package var jobs: Int?

    @Option(help: "Seconds after its last dispatch that a system stays pinned (one Nix GC root per system).")
    package var pinLifetime: Int = 3600

    @Option(help: "Most dispatch pins alive at once; beyond it the least recently dispatched is released early.")
    package var maxPins: Int = 1024

    @Option(help: ArgumentHelp("Turn a boot source off (repeatable).", valueName: "name"))
    package var disableSource: [String] = []

    @Option(help: "Seconds a client has to send a request's headers, counted from accept or from the end of the previous response on a kept-alive connection.")
    package var headerTimeout: Double = 10

    @Option(help: "Seconds a connection waiting for a request may receive nothing before it is closed (never during a response).")
    package var idleTimeout: Double = 5

    @Option(help: "Most connections open at once; more are answered 503 and closed (default: from the open-file limit).")
    package var maxConnections: Int?

    @Option(help: "Most bytes of a request line and its headers; more is answered 431.")
    package var maxHeaderBytes: Int = 16384

    @Option(help: "Seconds a shutdown (SIGTERM, SIGINT) lets downloads in flight finish before closing their connections.")
    package var shutdownGrace: Double = 30

    @Option(help: ArgumentHelp("A reverse proxy whose X-Forwarded-For names the client (repeatable; an IP address or ADDRESS/BITS).", valueName: "address"))
    package var trustedProxy: [String] = []

    @Option(help: "When to pack a system's initrd ahead of its request: dispatch (when a dispatch resolves it), script (when its /boot/NAME/netboot.ipxe is served: behind a proxy hashing on NAME, on the replica that serves its initrd) or off.")
    package var packAhead: PackAheadTrigger = .dispatch

    @Flag(help: "Fetch a store path that /boot/NAME/… asks for but the local store lacks (with its closure) from Nix's substituters, answering 503 Retry-After meanwhile and 404 if none has it.")
    package var realiseMissing = false

    @Option(help: "Most missing store paths fetched at once (--realise-missing); more wait, up to 64, then 503 Retry-After.")
    package var maxRealises: Int = 4

    @Option(help: "Seconds a /boot request waits for its missing path before answering 503 Retry-After (--realise-missing); the fetch goes on and a retry joins it.")
    package var realiseTimeout: Int = 5

    package init() {}

    /// `--listen` split into host and port.
    package func listenAddress() throws -> (host: String, port: Int) {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]),
              (0...65535).contains(port)
        else { throw ValidationError("--listen takes HOST:PORT, not '\(listen)'") }
        var host = String(listen[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }

    /// `--max-connections`, or what the open-file limit leaves for connections: each may hold a
    /// socket and an open cache file; a reserve is kept for packing (reads, archive writes and Nix
    /// subprocess pipes per job), the event loops and logs.
    package func connectionLimit(openFiles: UInt64, jobs: Int) -> Int {
        if let maxConnections { return maxConnections }
        let reserve = 64 + 8 * UInt64(max(1, jobs))
        guard openFiles > reserve + 2 else { return 1 }
        return Int(min((openFiles - reserve) / 2, 1 << 20))
    }

    /// The directory for `explicit`, or `name` under the state dir.
    package func directory(_ explicit: String?, _ name: String) -> String {
        explicit ?? (stateDir.hasSuffix("/") ? stateDir + name : stateDir + "/" + name)
    }
}
