import Foundation
import NetbootHost
import XCTest

/// Issue 14, item 3: a fleet of server replicas behind nginx, with the shipped
/// `deploy/nginx/fleet.conf`; and the two server features a fleet needs, `--realise-missing` and
/// `--pack-ahead`, on their own. Real binaries, a real Nix store and binary cache, Debian's nginx;
/// everything on 127.0.0.1. No QEMU: clients are curl, fetching what iPXE fetches.
final class FleetTests: XCTestCase {
    /// Arguments of every fleet replica.
    static let replicaArguments = ["--trusted-proxy", "127.0.0.1", "--pack-ahead", "script"]

    /// `count` replicas, each with state and cache of its own, on one Nix store.
    func replicas(_ count: Int = 3, _ arguments: [String] = [], environment: [String: String] = [:]) throws -> [ServerProcess] {
        try (0..<count).map { _ in try ServerProcess(self, arguments: Self.replicaArguments + arguments, environment: environment) }
    }

    /// The sha256 of `url`'s body, fetched with curl from `address` (127.0.0.2: a machine nginx
    /// forwards for; 127.0.0.3: the test asking a replica directly).
    func digest(_ url: String, from address: String = "127.0.0.2") throws -> String {
        try shellString("f=$(mktemp) && curl -sSf --interface \(address) -o $f '\(url)' && sha256sum < $f | cut -d ' ' -f 1; s=$?; rm -f $f; exit $s")
    }

    // MARK: - The fleet

    /// 48 machines over 4 systems through nginx: identical bytes, each system packed on one replica,
    /// repeats from nginx's cache, the machines' addresses in the replicas' logs.
    func testFleetServesIdenticalBytesPacksEachSystemOnOneReplicaAndCaches() async throws {
        let systems = try FleetSystems.build(["a", "b", "c", "d"])
        let own = try FleetSystems.ownPaths(systems)
        for system in systems { XCTAssertTrue(own[system]?.contains(system) ?? false, "a system's toplevel is its own") }
        let fleet = try replicas()
        let nginx = try FleetNginx(self, replicas: fleet)

        // Each client does what iPXE does: the dispatch (any replica), the script it redirects to
        // (the system's replica, which starts packing), the kernel, the initrd.
        let dir = try makeTemporaryDirectory(self, "fleet-herd")
        try """
            #!/bin/bash
            # usage: client.sh INDEX SYSTEM-NAME; writes out-INDEX.
            exec > "\(dir)/out-$1" 2>&1
            set -o pipefail
            get() { curl -sSf --interface 127.0.0.2 --max-time 120 "$@" | sha256sum | cut -d ' ' -f 1; }
            s=$(get -L "\(nginx.base)/dispatch/closure/$2") || exit 11
            k=$(get "\(nginx.base)/boot/$2/bzImage") || exit 12
            i=$(get "\(nginx.base)/boot/$2/initrd") || exit 13
            echo "$2 $s $k $i"

            """.write(toFile: dir + "/client.sh", atomically: true, encoding: .utf8)
        let clients = 48
        try (0..<clients).map { "\($0) \(systems[$0 % systems.count].name)\n" }.joined().write(toFile: dir + "/clients", atomically: true, encoding: .utf8)
        let started = ContinuousClock.now
        _ = try await shellOffThread("chmod +x \(dir)/client.sh && xargs -P \(clients) -L 1 \(dir)/client.sh < \(dir)/clients")
        let herdTime = ContinuousClock.now - started

        var answers: [String: Set<String>] = [:]
        for index in 0..<clients {
            let out = (try? String(contentsOfFile: dir + "/out-\(index)", encoding: .utf8)) ?? ""
            let words = out.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            guard words.count == 4 else {
                XCTFail("client \(index) failed: \(out)\n--- nginx ---\n\(nginx.errorLog.suffix(2000))")
                continue
            }
            answers[words[0], default: []].insert(words[1...].joined(separator: " "))
        }
        XCTAssertEqual(answers.count, systems.count)

        for system in systems {
            // Identical bytes for every client of the system.
            XCTAssertEqual(answers[system.name]?.count, 1, "\(system.name): \(answers[system.name] ?? [])")
            // Its own paths on exactly one replica, the one that served its initrd to nginx.
            let mine = own[system] ?? []
            let packers = fleet.indices.filter { replica in mine.contains { fleet[replica].hasArchive(of: $0) } }
            XCTAssertEqual(packers.count, 1, "\(system.name)'s own paths are packed on replicas \(packers)")
            guard let owner = packers.first else { continue }
            for path in mine { XCTAssertTrue(fleet[owner].hasArchive(of: path), "\(path.name) on replica \(owner)") }
            let upstream = fleet.indices.map { fleet[$0].requests("GET", "/boot/\(system.name)/initrd", via: true).count }
            XCTAssertEqual(upstream.reduce(0, +), 1, "one upstream initrd request for \(clients / systems.count) clients: \(upstream)")
            XCTAssertEqual(upstream[owner], 1, "the initrd came from the replica that packed it")
            let kernels = fleet.map { $0.requests("GET", "/boot/\(system.name)/bzImage").count }.reduce(0, +)
            XCTAssertEqual(kernels, 1, "one upstream kernel request")
            XCTAssertEqual(fleet[owner].requests("GET", "/boot/\(system.name)/netboot.ipxe").count, clients / systems.count, "every script from the owner")
            // Equal to the owning replica's own answer, fetched directly.
            let direct = try ["netboot.ipxe", "bzImage", "initrd"].map { file in
                try digest("\(fleet[owner].base)/boot/\(system.name)/\(file)", from: "127.0.0.3")
            }.joined(separator: " ")
            XCTAssertEqual(answers[system.name], [direct], "nginx and the replica serve the same bytes")
            // Repeats come from nginx's cache.
            for file in ["bzImage", "initrd"] {
                let headers = try shellString("curl -sSf --interface 127.0.0.2 -o /dev/null -D - \(nginx.base)/boot/\(system.name)/\(file)")
                XCTAssertTrue(headers.lowercased().contains("x-cache-status: hit"), "\(file) of \(system.name) again: \(headers)")
            }
            XCTAssertEqual(fleet.map { $0.requests("GET", "/boot/\(system.name)/initrd", via: true).count }.reduce(0, +), 1, "the repeat never reached a replica")
        }
        // A dispatch on a replica that does not serve the system packs nothing there (--pack-ahead script).
        let dispatchers = Set(systems.flatMap { system in fleet.indices.filter { !fleet[$0].requests("GET", "/dispatch/closure/\(system.name)").isEmpty } })
        var strangers: [(replica: Int, system: StorePath)] = []
        for system in systems {
            for replica in fleet.indices where !(own[system] ?? []).contains(where: { fleet[replica].hasArchive(of: $0) }) {
                XCTAssertEqual(try shellString("curl -s --interface 127.0.0.3 -o /dev/null -w '%{http_code}' \(fleet[replica].base)/dispatch/closure/\(system.name)"), "302")
                strangers.append((replica, system))
            }
        }
        try await Task.sleep(for: .seconds(1))
        for (replica, system) in strangers {
            XCTAssertFalse(fleet[replica].hasArchive(of: system), "a dispatch on replica \(replica) packed \(system.name) there")
            XCTAssertEqual((try fleet[replica].statusJSON()["packing"] as? [Any])?.count, 0)
        }
        // Every replica logged the machine's address that nginx forwarded, never nginx's alone.
        for replica in fleet {
            let lines = replica.log.split(separator: "\n").filter { $0.hasSuffix("request") && $0.contains("path=/boot/") && !$0.contains("client=127.0.0.3:") }
            XCTAssertTrue(lines.allSatisfy { $0.contains("client=127.0.0.2 via 127.0.0.1") }, "X-Forwarded-For: \(lines.prefix(2))")
        }
        XCTAssertEqual(nginx.logged("/boot/\(systems[0].name)/initrd").filter { $0.cache == "MISS" }.count, 1, "one miss in nginx's log")
        // Behind a proxy, every URL the server hands out is relative: the redirect and the scripts.
        let redirect = try shellString("curl -s -o /dev/null -D - \(nginx.base)/dispatch/closure/\(systems[0].name)").lowercased()
        XCTAssertTrue(redirect.contains("\nlocation: /boot/\(systems[0].name)/netboot.ipxe"), redirect)
        let entry = try shellString("curl -sSf \(nginx.base)/boot.ipxe"), script = try shellString("curl -sSf \(nginx.base)/boot/\(systems[0].name)/netboot.ipxe")
        XCTAssertTrue(entry.contains("chain --autofree /dispatch/machine?"), entry)
        XCTAssertFalse((entry + script).contains("http"), "no absolute URL: \(entry)\n\(script)")

        let nginxBytes = try shellString("du -sb \(nginx.cacheDirectory) | cut -f 1")
        let replicaBytes = try fleet.map { try shellString("du -sb \($0.stateDirectory ?? "")/cpio-cache | cut -f 1") }
        print("fleet: \(clients) clients over \(systems.count) systems in \(herdTime); dispatches on replicas \(dispatchers.sorted()); nginx cache \(nginxBytes) bytes, replicas' CPIO caches \(replicaBytes) bytes")
    }

    /// The replica that owns a system is killed while a slow machine downloads its initrd, twice:
    /// while it packs (before the first byte: nginx fails over by itself), and mid-body (nginx has
    /// sent part of the initrd: the download breaks, and the machine's retry, as iPXE retries,
    /// lands on another replica). No machine is lost; every one gets the bytes any replica serves.
    func testKillingTheOwningReplicaMidDownloadLosesNoClient() async throws {
        let systems = try FleetSystems.build(["b", "c"])
        // xz packs slowly: the cold pack (before the initrd's first byte) is a wide window.
        let fleet = try replicas(3, ["--compression", "xz"])
        let nginx = try FleetNginx(self, replicas: fleet)
        let dir = try makeTemporaryDirectory(self, "fleet-kill")
        try """
            #!/bin/bash
            # usage: client.sh URL INDEX; writes out-INDEX. Like iPXE: retries the whole download a few times.
            exec > "\(dir)/out-$2" 2>&1
            set -o pipefail
            for attempt in 1 2 3 4; do
                if d=$(curl -sSf --interface 127.0.0.2 --limit-rate 2M --max-time 120 "$1" | sha256sum | cut -d ' ' -f 1); then
                    echo "$d $attempt"; exit 0
                fi
                sleep 1
            done
            exit 1

            """.write(toFile: dir + "/client.sh", atomically: true, encoding: .utf8)
        try sh("chmod +x \(dir)/client.sh")
        /// Starts `count` clients of `system`'s initrd through nginx, numbered from `first`.
        func download(_ system: StorePath, clients: ClosedRange<Int>) -> Task<(status: Int32, output: Data, error: String), any Error> {
            let url = "\(nginx.base)/boot/\(system.name)/initrd"
            return Task { try await shellOffThread("printf '%s\\n' \(clients.map(String.init).joined(separator: " ")) | xargs -P \(clients.count) -L 1 \(dir)/client.sh \(url)") }
        }
        /// What clients `clients` got: one digest each, and their attempts.
        func results(_ clients: ClosedRange<Int>) throws -> (digests: Set<String>, attempts: [Int]) {
            var digests: Set<String> = [], attempts: [Int] = []
            for index in clients {
                // curl's complaints about broken attempts, then the digest and the attempt that got it.
                let out = try String(contentsOfFile: dir + "/out-\(index)", encoding: .utf8)
                let words = out.split(separator: "\n").last?.split(separator: " ").map(String.init) ?? []
                XCTAssertEqual(words.count, 2, "client \(index): \(out)\n--- nginx ---\n\(nginx.errorLog.suffix(3000))")
                digests.insert(words.first ?? "")
                attempts.append(Int(words.last ?? "") ?? 0)
            }
            return (digests, attempts)
        }
        /// The live replica whose log shows the script of `system` (the script went there through nginx).
        func owner(of system: StorePath) throws -> Int {
            _ = try digest("\(nginx.base)/boot/\(system.name)/netboot.ipxe")
            return try XCTUnwrap(fleet.indices.first { !fleet[$0].requests("GET", "/boot/\(system.name)/netboot.ipxe", via: true).isEmpty })
        }

        // 1. Killed while it packs: the script reached the owner, which started packing the initrd.
        let first = systems[0]
        let packer = try owner(of: first)
        let firstDownloads = download(first, clients: 1...3)
        // Kill it while nginx waits on it for the initrd, and it is still packing.
        let deadline = ContinuousClock.now + .seconds(30)
        var packing = false
        while ContinuousClock.now < deadline {
            let connected = try shellString("ss -Htn state established '( dport = :\(fleet[packer].port) )' | wc -l")
            let passes = (try fleet[packer].statusJSON()["packing"] as? [[String: Any]]) ?? []
            packing = passes.contains { $0["system"] as? String == first.name }
            if Int(connected) ?? 0 > 0 && packing { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        XCTAssertTrue(packing, "the owner was packing when killed")
        kill(fleet[packer].process.processIdentifier, SIGKILL)
        _ = try await firstDownloads.value
        let packPhase = try results(1...3)
        var survivors = fleet.indices.filter { $0 != packer }
        let heir = survivors.filter { fleet[$0].hasArchive(of: first) }
        XCTAssertEqual(heir.count, 1, "the next replica on the ring packed it: \(heir)")
        // Identical to each surviving replica's own answer (the other one packs it independently).
        for replica in survivors {
            XCTAssertEqual(packPhase.digests, [try digest("\(fleet[replica].base)/boot/\(first.name)/initrd", from: "127.0.0.3")], "replica \(replica)")
        }
        XCTAssertTrue(nginx.errorLog.contains("prematurely closed"), "nginx saw the replica go: \(nginx.errorLog.suffix(2000))")

        // 2. Killed mid-body. The owner packs the second system ahead (its script), then is held to
        // 1 ms of CPU every 100 ms (a CPU cgroup): it sends the initrd in bursts, and is killed after
        // the first one, with part of the initrd sent but not all of it. What it has sent is read off
        // its socket (bytes the peer acknowledged plus what waits in the send queue, which the kernel
        // still delivers after the process is gone), not off nginx's cache file, which lags behind
        // nginx's memory buffers.
        let second = systems[1]
        let streamer = try owner(of: second)
        try await waitUntil("the second system packed ahead") {
            try fleet[streamer].hasArchive(of: second) && ((fleet[streamer].statusJSON()["packing"] as? [Any])?.isEmpty ?? false)
        }
        let size = try XCTUnwrap(Int(try shellString(
            "curl -sSf --interface 127.0.0.3 -I \(fleet[streamer].base)/boot/\(second.name)/initrd | tr -d '\\r' | sed -n 's/^[Cc]ontent-[Ll]ength: //p'")))
        let pid = fleet[streamer].process.processIdentifier
        let port = fleet[streamer].port
        let throttle = try CPUThrottle(self, name: "nns-fleet-owner")
        try throttle.hold(pid)
        let secondDownloads = download(second, clients: 4...5)
        var sent = 0
        // More than the response's headers: part of the body.
        let sendDeadline = ContinuousClock.now + .seconds(60)
        while sent < 65536 && ContinuousClock.now < sendDeadline {
            try await Task.sleep(for: .milliseconds(2))
            sent = try bytesSent(fromPort: port)
        }
        kill(pid, SIGKILL)
        XCTAssertGreaterThanOrEqual(sent, 65536, "the owner sent part of the initrd")
        XCTAssertLessThan(sent, size, "and not all of it (\(sent) of \(size) bytes)")
        _ = try await secondDownloads.value
        let bodyPhase = try results(4...5)
        survivors.removeAll { $0 == streamer }
        XCTAssertTrue(fleet[survivors[0]].hasArchive(of: second), "the retry was packed and served by the last replica")
        XCTAssertEqual(bodyPhase.digests, [try digest("\(fleet[survivors[0]].base)/boot/\(second.name)/initrd", from: "127.0.0.3")])
        XCTAssertGreaterThan(bodyPhase.attempts.max() ?? 0, 1, "a download broke and was retried")
        let upstreamErrors = nginx.errorLog.split(separator: "\n").filter { $0.contains("upstream") && $0.contains("[error]") }
        print("""
            fleet kill: replica \(packer) killed while packing, attempts per client \(packPhase.attempts); \
            replica \(streamer) killed after \(sent) of \(size) bytes, attempts \(bodyPhase.attempts); \
            nginx: \(upstreamErrors.map { $0.split(separator: ",").first ?? "" })
            """)
    }

    /// A system deleted from the store but in the replicas' binary cache is fetched by the replica
    /// it hashes to and served through nginx: 503 (Retry-After) first, then 200; a name no cache
    /// has is a 404.
    func testFleetFetchesAMissingSystemFromTheBinaryCache() async throws {
        let cache = try makeTemporaryDirectory(self, "fleet-binary-cache")
        let (system, deleted) = try FleetSystems.inBinaryCacheOnly(cacheDirectory: cache)
        let fleet = try replicas(3, ["--realise-missing", "--realise-timeout", "0"], environment: ["NIX_CONFIG": FleetSystems.nixConfig(binaryCache: cache)])
        let nginx = try FleetNginx(self, replicas: fleet)

        let url = "\(nginx.base)/boot/\(system.name)/initrd"
        let dir = try makeTemporaryDirectory(self, "fleet-first")
        let first = try shellString("curl -s --interface 127.0.0.2 -D \(dir)/headers -o \(dir)/body -w '%{http_code}' \(url)")
        let headers = try String(contentsOfFile: dir + "/headers", encoding: .utf8), body = try String(contentsOfFile: dir + "/body", encoding: .utf8)
        XCTAssertEqual(first, "503", headers)
        XCTAssertTrue(headers.lowercased().contains("retry-after: 5"), headers)
        XCTAssertTrue(body.hasPrefix("fetching \(system.name) from a binary cache") && body.split(separator: "\n").count == 1, "one line: \(body)")

        let bytes = try await downloadAfterRetries(url)
        let initramfs = try KernelInitramfs.parse(bytes)
        XCTAssertTrue(initramfs.entries.contains { $0.path == "nix/store/\(system.name)/init" }, "the system's init is in the initrd")
        for path in deleted { XCTAssertTrue(try shellString("nix-store --check-validity --print-invalid \(path.absolutePath)").isEmpty, "\(path) realised") }
        let fetchers = fleet.filter { $0.log.contains("missing store path fetched") }
        XCTAssertEqual(fetchers.count, 1, "one replica fetched it")
        XCTAssertTrue(fetchers.first?.hasArchive(of: system) ?? false, "and packed it")

        // A name that no cache has: told to retry while the fetch runs, then 404.
        let unknown = "\(nginx.base)/boot/0000000000000000000000000000000a-nowhere/initrd"
        var statuses: [String] = []
        for _ in 0..<20 {
            let status = try shellString("curl -s -o /dev/null -w '%{http_code}' \(unknown)")
            statuses.append(status)
            if status != "503" { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        XCTAssertEqual(statuses.last, "404", "\(statuses)")
    }

    /// GETs `url` until it answers 200 (waiting 0.5 s after each 503), at most 30 s.
    func downloadAfterRetries(_ url: String) async throws -> [UInt8] {
        let dir = try makeTemporaryDirectory(self, "fleet-download")
        let deadline = ContinuousClock.now + .seconds(30)
        var last = ""
        while ContinuousClock.now < deadline {
            last = try shellString("curl -s --interface 127.0.0.2 -o \(dir)/body -w '%{http_code}' \(url)")
            if last == "200" { return Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/body"))) }
            XCTAssertEqual(last, "503", "only 'still working' before the 200")
            try await Task.sleep(for: .milliseconds(500))
        }
        throw ShellError(description: "\(url) never answered 200 (last \(last))")
    }

    // MARK: - The server on its own

    /// `--realise-missing` on one server with a real binary cache: 503 while it fetches, then the
    /// initrd; a path no cache has (yet) is a 404, and once the cache has it a later request
    /// fetches it. Without the flag, a missing path stays a 404.
    func testRealiseMissingFetchesFromTheBinaryCacheAndRetriesAFailure() async throws {
        let staging = try makeTemporaryDirectory(self, "realise-staging")
        let served = try makeTemporaryDirectory(self, "realise-served")
        let (system, _) = try FleetSystems.inBinaryCacheOnly(cacheDirectory: staging)
        let config = FleetSystems.nixConfig(binaryCache: served)
        let plain = try ServerProcess(self, arguments: [], environment: ["NIX_CONFIG": config])
        let server = try ServerProcess(self, arguments: ["--realise-missing", "--realise-timeout", "0"], environment: ["NIX_CONFIG": config])
        let path = "/boot/\(system.name)/initrd"
        // A substituter nobody answers: the server's own failure, a 502 (after Nix's retries, within
        // the default --realise-timeout or on a retry).
        let unreachable = FleetSystems.nixConfig(binaryCache: served).replacingOccurrences(of: "file://\(served)", with: "http://127.0.0.1:\(try freeLoopbackPort())")
        let broken = try ServerProcess(self, arguments: ["--realise-missing"], environment: ["NIX_CONFIG": unreachable])
        let brokenStatuses = Task {
            var statuses: [String] = []
            for _ in 0..<10 {
                statuses.append(try String(decoding: await shellOffThread("curl -s -o /dev/null -w '%{http_code}' \(broken.base)\(path)").output, as: UTF8.self))
                if statuses.last != "503" { break }
                try await Task.sleep(for: .seconds(1))
            }
            return statuses
        }

        XCTAssertEqual(try shellString("curl -s -o /dev/null -w '%{http_code}' \(plain.base)\(path)"), "404", "no flag: 404")
        // The served cache does not have it yet: 503, then 404 (remembered for a while).
        var statuses: [String] = []
        for _ in 0..<20 {
            statuses.append(try shellString("curl -s -o /dev/null -w '%{http_code}' \(server.base)\(path)"))
            if statuses.last != "503" { break }
            try await Task.sleep(for: .milliseconds(300))
        }
        XCTAssertEqual(statuses.first, "503")
        XCTAssertEqual(statuses.last, "404", "\(statuses)")
        XCTAssertTrue(try shellString("curl -s \(server.base)\(path)").contains("no substituter has it"))
        let roots = try XCTUnwrap(server.stateDirectory) + "/gc-roots"
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: roots + "/pins"), [], "a failed fetch takes no pin")

        // Now the cache has it: a later request fetches it (the failure was not kept).
        try sh("cp -r \(staging)/. \(served)/")
        let started = ContinuousClock.now
        var bytes: [UInt8]?
        while bytes == nil, ContinuousClock.now - started < .seconds(40) {
            let dir = try makeTemporaryDirectory(self, "realise-body")
            let status = try shellString("curl -s -o \(dir)/body -w '%{http_code}' \(server.base)\(path)")
            if status == "200" { bytes = Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/body"))) }
            XCTAssertTrue(["200", "503", "404"].contains(status), status)
            if bytes == nil { try await Task.sleep(for: .milliseconds(500)) }
        }
        let initrd = try XCTUnwrap(bytes, "fetched and served within 40 s: \(server.log.suffix(2000))")
        XCTAssertTrue(try KernelInitramfs.parse(initrd).entries.contains { $0.path == "nix/store/\(system.name)/init" })
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(MissingPathRealiser.failureMemory.components.seconds + 10))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: roots + "/pins"), ["pin-\(system.name)"], "the fetched system is pinned")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: roots + "/realising"), [], "the fetch's own root is gone")
        XCTAssertEqual(try shellString("curl -s -o /dev/null -w '%{http_code}' \(plain.base)\(path)"), "200", "valid for every server now")
        XCTAssertTrue(server.log.contains("no substituter has a missing store path"))
        let unreachableStatuses = try await brokenStatuses.value
        XCTAssertEqual(unreachableStatuses.last, "502", "an unreachable substituter: \(unreachableStatuses)\n\(broken.log.suffix(1500))")

        // Each fetch is counted once by its outcome, however many requests waited for it.
        let fetches = "nns_missing_path_fetches_total"
        let counted = try MetricsScrape(shellString("curl -sf \(server.base)/metrics"))
        XCTAssertEqual(counted.value(fetches, ["outcome": "fetched"]), 1)
        XCTAssertEqual(counted.value(fetches, ["outcome": "not_found"]), 1, "one fetch, then its failure was remembered")
        XCTAssertEqual(counted.value(fetches, ["outcome": "failed"]), 0)
        XCTAssertGreaterThanOrEqual(try MetricsScrape(shellString("curl -sf \(broken.base)/metrics")).value(fetches, ["outcome": "failed"]), 1)
    }

    /// `--pack-ahead`: `dispatch` packs when a dispatch resolves, `script` only when the boot
    /// script is served, `off` never before the initrd is asked for.
    func testPackAheadFollowsItsFlag() async throws {
        let system = try FleetSystems.build(["a"])[0]
        let onDispatch = try ServerProcess(self, arguments: [])
        let onScript = try ServerProcess(self, arguments: ["--pack-ahead", "script"])
        let off = try ServerProcess(self, arguments: ["--pack-ahead", "off"])
        for server in [onDispatch, onScript, off] {
            XCTAssertEqual(try shellString("curl -s -o /dev/null -w '%{http_code}' \(server.base)/dispatch/closure/\(system.name)"), "302")
        }
        try await waitUntil("the dispatch packs ahead") { onDispatch.hasArchive(of: system) }
        try await Task.sleep(for: .seconds(1))
        for server in [onScript, off] {
            XCTAssertTrue(server.cachedArchives.isEmpty, "nothing packed on dispatch: \(server.cachedArchives)")
            XCTAssertEqual((try server.statusJSON()["packing"] as? [Any])?.count, 0)
            XCTAssertEqual(try shellString("curl -s -o /dev/null -w '%{http_code}' \(server.base)/boot/\(system.name)/netboot.ipxe"), "200")
        }
        try await waitUntil("the script packs ahead") { onScript.hasArchive(of: system) }
        try await Task.sleep(for: .seconds(1))
        XCTAssertTrue(off.cachedArchives.isEmpty, "off: nothing packed before the initrd: \(off.cachedArchives)")
        XCTAssertEqual(try shellString("curl -s -o /dev/null -w '%{http_code}' \(off.base)/boot/\(system.name)/initrd"), "200")
        XCTAssertTrue(off.hasArchive(of: system), "the initrd request packs")
    }

    /// Bytes the sockets on local port `port` have sent: acknowledged by the peer plus still queued
    /// to send (from `ss -i`).
    func bytesSent(fromPort port: Int) throws -> Int {
        let text = try shellString("ss -Htni state established '( sport = :\(port) )'")
        let acknowledged = text.matches(of: /bytes_acked:(\d+)/).compactMap { Int($0.1) }.reduce(0, +)
        let queued = text.split(separator: "\n").compactMap { line -> Int? in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 4, let local = fields.dropFirst(2).first, local.hasSuffix(":\(port)") else { return nil }
            return Int(fields[1])
        }.reduce(0, +)
        return acknowledged + queued
    }

    func waitUntil(_ what: String, seconds: Int = 30, _ condition: () throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if try condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        XCTFail("\(what): not within \(seconds) s")
    }
}
