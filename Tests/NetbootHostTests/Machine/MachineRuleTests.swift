import Codecs
import Logging
import MachineSource
import NetbootHost
import NetbootKit
import XCTest

/// The machine source's pure parts: identities, rule files, matching, the overlay plan and archive,
/// the bounded boot table, the entry script.
final class MachineRuleTests: XCTestCase {
    func rule(_ json: String, name: String = "r") throws -> MachineRule {
        try RuleParser.parse(Array(json.utf8), name: name)
    }

    func problem(_ json: String, limits: RuleLimits = .standard, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            let parsed = try RuleParser.parse(Array(json.utf8), name: "r", limits: limits)
            XCTFail("accepted: \(parsed)", file: file, line: line)
            return ""
        } catch { return error.reason }
    }

    func machine(_ query: String) throws -> MachineIdentity { try MachineIdentity.from(query: query) }

    func testAMACMatchesWithColonsOrHyphensInAnyCaseAndAUUIDInAnyCase() throws {
        let set = RuleSet(rules: [
            try rule(#"{"match": {"mac": "52:54:00:AB:cd:01"}, "boot": "profile/a"}"#, name: "by-mac"),
            try rule(#"{"match": {"uuid": "6B29FC40-CA47-1067-B31D-00DD010662DA"}, "boot": "profile/b"}"#, name: "by-uuid"),
        ])
        XCTAssertEqual(set.match(try machine("mac=52-54-00-ab-CD-01&uuid=")), .rule(set.rules[0]))
        XCTAssertEqual(set.match(try machine("mac=52%3A54%3A00%3Aab%3Acd%3A01")), .rule(set.rules[0]))
        XCTAssertEqual(set.match(try machine("mac=52-54-00-ab-cd-02&uuid=6b29fc40-ca47-1067-b31d-00dd010662da")).ruleName, "by-uuid")
        XCTAssertEqual(set.match(try machine("mac=52-54-00-ab-cd-02")), .none)
        XCTAssertThrowsError(try machine("mac=52-54-00-ab-cd")) { XCTAssertEqual(($0 as? DispatchError).map { "\($0)" }, "mac '52-54-00-ab-cd' is not a valid mac") }
        XCTAssertEqual(try machine("serial=A%20B%26C&hostname=&platform=efi").values, [.serial: "A B&C", .platform: "efi"])
    }

    func testTheRuleWithMostKeysWinsAndADefaultCatchesEveryOtherMachine() throws {
        let set = RuleSet(rules: [
            try rule(#"{"match": {}, "boot": "profile/default"}"#, name: "default"),
            try rule(#"{"match": {"platform": "efi"}, "boot": "profile/efi"}"#, name: "efi"),
            try rule(#"{"match": {"platform": "efi", "mac": "52:54:00:00:00:01"}, "boot": "profile/one"}"#, name: "one-efi"),
        ])
        XCTAssertEqual(set.match(try machine("mac=52-54-00-00-00-01&platform=efi")).ruleName, "one-efi")
        XCTAssertEqual(set.match(try machine("mac=52-54-00-00-00-01&platform=pcbios")).ruleName, "default", "every key must match")
        XCTAssertEqual(set.match(try machine("mac=52-54-00-00-00-02&platform=efi")).ruleName, "efi")
        XCTAssertEqual(set.match(try machine("")).ruleName, "default")
    }

    func testTwoRulesTyingIsATieNamingBothNeverAGuess() throws {
        let set = RuleSet(rules: [
            try rule(#"{"match": {}, "boot": "profile/default"}"#, name: "default"),
            try rule(#"{"match": {"mac": "52:54:00:00:00:01"}, "boot": "profile/a"}"#, name: "b-rule"),
            try rule(#"{"match": {"hostname": "node 1"}, "boot": "profile/b"}"#, name: "a-rule"),
        ])
        XCTAssertEqual(set.match(try machine("mac=52-54-00-00-00-01&hostname=node%201")), .tie(["a-rule", "b-rule"]))
        XCTAssertEqual(set.match(try machine("mac=52-54-00-00-00-01&hostname=node%202")).ruleName, "b-rule")
        let two = RuleSet(rules: [try XCTUnwrap(set.rule(named: "default")), try rule(#"{"match": {}, "boot": "closure/x"}"#, name: "other-default")])
        XCTAssertEqual(two.match(try machine("")), .tie(["default", "other-default"]))
        let lines = MachineScripts.tie(try machine("mac=52-54-00-00-00-01"), rules: ["a-rule", "b-rule"])
        XCTAssertTrue(lines[0].contains("a-rule.json and b-rule.json"), lines[0])
    }

    func testARuleReadsItsBootCmdlineAndFiles() throws {
        let parsed = try rule(
            #"""
            {"match": {"mac": "52:54:00:12:34:56"}, "boot": "hydra/lab/infra/lab/netboot", "cmdline": "console=ttyS0  boot.shell_on_fail",
             "files": {"/etc/netboot-machine": "node-a\n", "/root/.ssh/authorized_keys": {"text": "ssh-ed25519 AAAA admin", "mode": "0600"}},
             "directories": {"/root": "0700", "/root/.ssh": "700"}}
            """#, name: "node-a")
        XCTAssertEqual(parsed.bootSource, "hydra")
        XCTAssertEqual(parsed.bootSegments, ["lab", "infra", "lab", "netboot"])
        XCTAssertEqual(parsed.cmdline, "console=ttyS0 boot.shell_on_fail")
        XCTAssertEqual(parsed.overlay, [
            .directory(path: "etc", mode: 0o755),
            .file(path: "etc/netboot-machine", mode: 0o644, contents: Array("node-a\n".utf8)),
            .directory(path: "root", mode: 0o700),
            .directory(path: "root/.ssh", mode: 0o700),
            .file(path: "root/.ssh/authorized_keys", mode: 0o600, contents: Array("ssh-ed25519 AAAA admin".utf8)),
        ])
        XCTAssertEqual(parsed.additions, BootAdditions(key: "node-a", kernelArguments: "console=ttyS0 boot.shell_on_fail", overlay: parsed.overlay))
        XCTAssertEqual(try rule(#"{"boot": "closure/x"}"#).match, [:], "no match is a default")
    }

    func testParentDirectoriesGetTheModesNixOSGivesThemUnlessTheRuleSaysOtherwise() throws {
        let parsed = try rule(#"{"boot": "closure/x", "files": {"/root/.ssh/authorized_keys": {"text": "k", "mode": "0600"}, "/tmp/x/y": "z", "/srv/a": "b"}, "directories": {"/srv": "0750"}}"#)
        XCTAssertEqual(parsed.overlay, [
            .directory(path: "root", mode: 0o700),
            .directory(path: "root/.ssh", mode: 0o700),
            .file(path: "root/.ssh/authorized_keys", mode: 0o600, contents: [UInt8(ascii: "k")]),
            .directory(path: "srv", mode: 0o750),
            .file(path: "srv/a", mode: 0o644, contents: [UInt8(ascii: "b")]),
            .directory(path: "tmp", mode: 0o1777),
            .directory(path: "tmp/x", mode: 0o755),
            .file(path: "tmp/x/y", mode: 0o644, contents: [UInt8(ascii: "z")]),
        ])
    }

    func testMalformedRulesAreRefusedWithTheReason() {
        XCTAssertEqual(problem("{"), "not a rule: not valid JSON")
        XCTAssertEqual(problem(#"{"match": {}, "boot": "closure/x", "cmdLine": "a"}"#), "unknown key 'cmdLine' in a rule (keys: match, boot, cmdline, files, directories)")
        XCTAssertEqual(problem(#"{"match": {"ip": "1"}, "boot": "closure/x"}"#), "match key 'ip' is none of mac, uuid, serial, hostname, arch, platform")
        XCTAssertEqual(problem(#"{"match": {"mac": "zz"}, "boot": "closure/x"}"#), "match mac 'zz' is not a valid mac")
        XCTAssertEqual(problem(#"{"match": {}}"#), "no 'boot' (SOURCE/SEGMENTS, e.g. profile/NAME)")
        XCTAssertEqual(problem(#"{"boot": "machine"}"#), "boot may not name the machine source itself")
        XCTAssertEqual(problem(#"{"boot": "profile/../x"}"#), "boot 'profile/../x': path segment '..' may not start with '.'")
        XCTAssertEqual(problem(#"{"boot": "closure/x", "match": 3}"#), "not a rule: wrong type at match")
        XCTAssertEqual(problem(#"{"boot": "closure/x", "files": {"/a": {"text": "x", "mode": "rw"}}}"#), #"mode 'rw' of /a is not an octal mode such as "0644""#)
        XCTAssertEqual(problem(#"{"boot": "closure/x", "files": {"/a": {"text": "x", "owner": "me"}}}"#), "unknown key 'owner' in a file (keys: text, mode)")
    }

    func testACmdlineWithCRLFOrNULMakesTheRuleInvalid() {
        XCTAssertEqual(problem(#"{"boot": "closure/x", "cmdline": "a\rinitrd evil"}"#), "cmdline holds a CR (it would end the kernel line of the boot script)")
        XCTAssertEqual(problem(#"{"boot": "closure/x", "cmdline": "a\nchain http://evil/"}"#), "cmdline holds an LF (it would end the kernel line of the boot script)")
        XCTAssertEqual(problem(#"{"boot": "closure/x", "cmdline": "a\u0000b"}"#), "cmdline holds a NUL (it would end the kernel line of the boot script)")
        XCTAssertEqual(problem(#"{"boot": "closure/x", "cmdline": "a\tb"}"#), "cmdline holds a control character (it would end the kernel line of the boot script)")
    }

    func testOverlayPathsMustBeAbsoluteNormalisedAndOutsideNix() {
        func pathProblem(_ path: String) -> String { problem(#"{"boot": "closure/x", "files": {"\#(path)": "x"}}"#) }
        XCTAssertEqual(pathProblem("etc/x"), "path 'etc/x' is not absolute")
        XCTAssertEqual(pathProblem("/"), "path '/' would replace the root directory")
        XCTAssertEqual(pathProblem("/nix"), "path '/nix' is /nix or inside it (the store and its registrations are not for rules)")
        XCTAssertEqual(pathProblem("/nix/store/abc-x/bin/sh"), "path '/nix/store/abc-x/bin/sh' is /nix or inside it (the store and its registrations are not for rules)")
        XCTAssertEqual(pathProblem("/nix/.nix-netboot-serve-db/registration/x"), "path '/nix/.nix-netboot-serve-db/registration/x' is /nix or inside it (the store and its registrations are not for rules)")
        for bad in ["/etc/../nix/store", "/etc//x", "/etc/./x", "/etc/", "/.."] {
            XCTAssertTrue(pathProblem(bad).hasSuffix("is not normalised (empty, '.' or '..' component, or a trailing '/')"), bad)
        }
        XCTAssertEqual(problem(#"{"boot": "closure/x", "directories": {"/nix/store": "0755"}}"#), "path '/nix/store' is /nix or inside it (the store and its registrations are not for rules)")
        XCTAssertEqual(problem(#"{"boot": "closure/x", "files": {"/etc/a": "x", "/etc/a/b": "y"}}"#), "/etc/a is a file and also the parent of /etc/a/b")
        XCTAssertNoThrow(try rule(#"{"boot": "closure/x", "files": {"/nixos/x": "fine", "/etc/nix.conf": "fine"}}"#))
    }

    func testLimitsRefuseRatherThanTruncate() {
        let limits = RuleLimits(fileBytes: 300, files: 2, contentBytes: 10, cmdlineBytes: 8)
        XCTAssertEqual(problem(#"{"boot": "closure/x", "files": {"/a": "1", "/b": "2", "/c": "3"}}"#, limits: limits), "3 files; a rule may have at most 2")
        XCTAssertEqual(problem(#"{"boot": "closure/x", "files": {"/a": "123456", "/b": "123456"}}"#, limits: limits), "files hold 12 bytes; a rule may hold at most 10")
        XCTAssertEqual(problem(#"{"boot": "closure/x", "cmdline": "123456789"}"#, limits: limits), "cmdline is 9 bytes; at most 8")
        XCTAssertEqual(problem(#"{"boot": "closure/x", "cmdline": "\#(String(repeating: " ", count: 300))"}"#, limits: limits), "the file is 336 bytes; a rule may have at most 300")
    }

    func testTheOverlayArchiveUnpacksAsTheKernelDoesAfterTheSharedInitrdAtAnyOffset() throws {
        let parsed = try rule(
            #"{"boot": "closure/x", "files": {"/etc/netboot-machine": "node-a\n", "/root/.ssh/authorized_keys": {"text": "key", "mode": "0600"}}, "directories": {"/root": "0700"}}"#)
        // What a shared initrd leaves behind: directories that exist already (the kernel applies
        // the overlay's mode to them), then something unaligned before the overlay, as the EFI stub
        // concatenates with no padding.
        let shared = try OverlayArchive.compressed([.directory(path: "etc", mode: 0o755), .file(path: "etc/odd", mode: 0o644, contents: [1])], compressor: GzipCompressor(), level: 6)
        for compressor in [GzipCompressor(), ZstdCompressor()] as [any Compressor] {
            let overlay = try OverlayArchive.compressed(parsed.overlay, compressor: compressor, level: compressor.defaultLevel)
            for padding in 0..<4 {  // the overlay at every offset modulo 4
                let blob = shared + [UInt8](repeating: 0, count: padding) + overlay
                let unpacked = try KernelInitramfs.parse(blob)
                XCTAssertEqual(unpacked.members.last?.compression?.rawValue, compressor.name, "\(padding)")
                XCTAssertEqual(unpacked.tree["etc"]?.permissions, 0o755)
                XCTAssertEqual(unpacked.tree["etc/odd"]?.data, [1], "the shared part is kept")
                XCTAssertEqual(unpacked.tree["etc/netboot-machine"]?.data, Array("node-a\n".utf8))
                XCTAssertEqual(unpacked.tree["etc/netboot-machine"]?.permissions, 0o644)
                XCTAssertEqual(unpacked.tree["root"]?.permissions, 0o700)
                XCTAssertEqual(unpacked.tree["root/.ssh"]?.permissions, 0o700)
                XCTAssertEqual(unpacked.tree["root/.ssh/authorized_keys"]?.permissions, 0o600)
                XCTAssertEqual(unpacked.tree["root/.ssh/authorized_keys"].map { [$0.uid, $0.gid] }, [0, 0])
            }
        }
        XCTAssertThrowsError(try OverlayArchive.archive([.file(path: "nix/store/x", mode: 0o644, contents: [])]), "the host refuses /nix itself")
        XCTAssertEqual(try KernelInitramfs.parse(try OverlayArchive.compressed([], compressor: GzipCompressor(), level: 6)).tree.count, 0)
    }

    func testBootRecordsKeepTheLatestBootOfABoundedNumberOfMachines() {
        var records = BootRecords(capacity: 2)
        func boot(_ time: Int) -> BootRecords.Record { .init(time: time, client: "10.0.2.15", rule: "r", path: "p") }
        records.record("a", boot(1))
        records.record("b", boot(2))
        records.record("a", boot(3))
        XCTAssertEqual(records.latestFirst.map(\.machine), ["a", "b"])
        records.record("c", boot(4))
        XCTAssertEqual(records.latestFirst.map(\.machine), ["c", "a"], "the machine seen longest ago goes")
        XCTAssertEqual(records.latestFirst.first?.record.time, 4)
        for index in 0..<1000 { records.record("m\(index)", boot(index)) }
        XCTAssertEqual(records.latestFirst.count, 2)
    }

    func testTheEntryScriptChainsTheDispatchRelativelyKeepingItsQuery() {
        XCTAssertEqual(
            MachineScripts.entry(query: nil),
            "#!ipxe\nchain --autofree /dispatch/machine?mac=${net0/mac:hexhyp}&uuid=${uuid}&serial=${serial:uristring}&hostname=${hostname:uristring}&arch=${buildarch}&platform=${platform}\n")
        XCTAssertTrue(MachineScripts.entry(query: "cmdline_suffix_args=a%3D1").hasSuffix("&platform=${platform}&cmdline_suffix_args=a%3D1\n"))
        XCTAssertTrue(MachineScripts.entry(query: "x=${evil} y").hasSuffix("&x=%24{evil}%20y\n"), "nothing of the query is expanded by iPXE")
    }

    func testTheRuleDirectorySeesEveryChangeAtTheNextLoad() throws {
        let dir = try makeTemporaryDirectory(self, "machines")
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let directory = RuleDirectory(path: dir, logger: logger)
        let names = ["closure", "profile"]
        try #"{"match": {"mac": "52:54:00:00:00:01"}, "boot": "closure/a"}"#.write(toFile: dir + "/a.json", atomically: false, encoding: .utf8)
        try "not json".write(toFile: dir + "/broken.json", atomically: false, encoding: .utf8)
        try #"{"boot": "nosuch/a"}"#.write(toFile: dir + "/elsewhere.json", atomically: false, encoding: .utf8)
        try #"{"boot": "closure/a"}"#.write(toFile: dir + "/bad name.json", atomically: false, encoding: .utf8)
        try "ignored".write(toFile: dir + "/README", atomically: false, encoding: .utf8)
        var set = try directory.load(sourceNames: names)
        XCTAssertEqual(set.rules.map(\.name), ["a"])
        XCTAssertEqual(set.invalid.map(\.file), ["bad name.json", "broken.json", "elsewhere.json"])
        XCTAssertTrue(set.invalid[2].reason.hasPrefix("boot names the source 'nosuch', which this server does not have"), set.invalid[2].reason)
        // Same size, same second: the inode and nanoseconds still tell.
        try #"{"match": {"mac": "52:54:00:00:00:01"}, "boot": "closure/b"}"#.write(toFile: dir + "/a.json", atomically: true, encoding: .utf8)
        set = try directory.load(sourceNames: names)
        XCTAssertEqual(set.rules.first?.bootSegments, ["b"])
        try FileManager.default.removeItem(atPath: dir + "/broken.json")
        try FileManager.default.removeItem(atPath: dir + "/a.json")
        set = try directory.load(sourceNames: names)
        XCTAssertEqual(set.rules.map(\.name), [])
        XCTAssertEqual(set.invalid.map(\.file), ["bad name.json", "elsewhere.json"])
        XCTAssertEqual(try directory.load(sourceNames: names + ["nosuch"]).rules.map(\.name), ["elsewhere"])
    }
}

extension RuleSet.Match {
    var ruleName: String? { if case .rule(let rule) = self { rule.name } else { nil } }
}
