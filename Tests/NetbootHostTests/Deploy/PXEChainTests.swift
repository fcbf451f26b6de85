import Foundation
import NetbootHost
import XCTest

/// The PXE chain from bare firmware, on a network of its own (network namespaces: a bridge, tap
/// devices, nothing routed out): the network's DHCP server gives addresses, a second dnsmasq with
/// the shipped `deploy/dnsmasq/proxy-dhcp.conf` (only its EDIT lines changed) answers the PXE part,
/// and the server binary listens on the bridge. A UEFI guest whose virtio NIC has no option ROM goes
/// OVMF PXE → TFTP snponly.efi → iPXE → `/boot.ipxe`; a BIOS guest whose NIC ROM is iPXE goes
/// straight to `/boot.ipxe`. Each reaches the init of the system its machine rule names. Then the
/// shipped `full-dhcp.conf` alone boots the UEFI guest the same way. Guests run under TCG (this
/// machine's KVM fails OVMF), both at once; the class takes about a minute.
final class PXEChainTests: XCTestCase {
    static let uefiMAC = "52:54:00:e7:00:01", biosMAC = "52:54:00:e7:00:02"

    /// Both shipped files pass dnsmasq's own check, as shipped and as the tests edit them, and an
    /// operator edits only the few lines marked EDIT: no example address is anywhere else.
    func testShippedConfigurationsPassDnsmasqsCheckAndMarkEveryLineAnOperatorEdits() throws {
        let directory = try makeTemporaryDirectory(self, "dnsmasq")
        for (name, edits) in [("proxy-dhcp.conf", 2), ("full-dhcp.conf", 4)] {
            let configuration = try ShippedDnsmasqConfiguration(name)
            XCTAssertEqual(configuration.editedLines.count, edits, "\(name): lines marked EDIT")
            for (index, line) in configuration.lines.enumerated() where !line.hasPrefix("#") {
                XCTAssertEqual(line.contains("192.168."), configuration.editedLines.contains(index),
                               "\(name) line \(index + 1): an address an operator must edit, or an EDIT line without one: \(line)")
            }
            for path in [configuration.path, try configuration.forTestNetwork(in: directory)] {
                let check = try shell("dnsmasq --test -C '\(path)'", allowFailure: true)
                XCTAssertEqual(check.status, 0, "dnsmasq --test -C \(path): \(check.error)")
                XCTAssertTrue(check.error.contains("syntax check OK"), check.error)
            }
        }
        let proxy = try String(contentsOfFile: try ShippedDnsmasqConfiguration("proxy-dhcp.conf").forTestNetwork(in: directory), encoding: .utf8)
        XCTAssertTrue(proxy.contains("\ndhcp-range=10.231.0.0,proxy\n"), proxy)
        XCTAssertTrue(proxy.contains("\ndhcp-boot=tag:ipxe,http://10.231.0.1:3030/boot.ipxe,,10.231.0.1\n"), proxy)
    }

    func testUEFIWithoutOptionROMAndBIOSWithIPXEBootThroughProxyDHCP() async throws {
        let (systemA, systemB) = try prerequisites()
        let directory = try makeTemporaryDirectory(self, "pxe")
        // Teardown runs in reverse: the processes stop first, then the namespaces go.
        let network = try BootNetwork(self, taps: 2)

        // The network's own DHCP server (and IPv6 router), in its own namespace: addresses only.
        let dhcp = try DnsmasqDaemon(self, namespace: network.dhcpNamespace, arguments: [
            "--conf-file=/dev/null", "--port=0", "--dhcp-range=10.231.0.100,10.231.0.199,255.255.255.0,1h",
            "--dhcp-leasefile=\(directory)/dhcp.leases", "--enable-ra", "--dhcp-range=fd00:231::,ra-only", "--log-dhcp",
        ], directory: directory, name: "dhcp")
        // The shipped proxy-DHCP configuration, its EDIT lines pointed at the test network.
        let proxyConfiguration = try ShippedDnsmasqConfiguration("proxy-dhcp.conf").forTestNetwork(in: directory)
        let proxy = try DnsmasqDaemon(self, namespace: network.name, arguments: [
            "--conf-file=\(proxyConfiguration)", "--dhcp-leasefile=\(directory)/proxy.leases",
        ], directory: directory, name: "proxy")
        XCTAssertTrue(proxy.logs("DHCP, proxy on subnet 10.231.0.0"), proxy.log)
        let server = try startServer(network, directory: directory, rules: [(Self.uefiMAC, systemA), (Self.biosMAC, systemB)])

        async let uefi = Self.boot(network, tap: "tap0", mac: Self.uefiMAC, uefi: true, log: directory + "/uefi.log")
        async let bios = Self.boot(network, tap: "tap1", mac: Self.biosMAC, uefi: false, log: directory + "/bios.log")
        let (uefiBoot, biosBoot) = try await (uefi, bios)
        let context = "--- proxy dnsmasq ---\n\(proxy.log.suffix(3000))\n--- server ---\n\(server.log.suffix(3000))"

        checkChain(uefiBoot, uefi: true, system: systemA, variant: "a", context: context)
        XCTAssertTrue(proxy.log.contains("sent /usr/lib/ipxe/snponly.efi to 10.231.0."), context)
        checkChain(biosBoot, uefi: false, system: systemB, variant: "b", context: context)

        // Addresses came from the network's DHCP server, the boot files from the proxy.
        for mac in [Self.uefiMAC, Self.biosMAC] {
            XCTAssertNotNil(dhcp.log.range(of: #"DHCPACK\(dhcp0\) 10\.231\.0\.\d+ "# + mac, options: .regularExpression), dhcp.log.suffix(2000).description)
            XCTAssertTrue(proxy.log.contains("PXE(br0) \(mac) proxy"), context)
        }
        XCTAssertFalse(proxy.log.contains("DHCPOFFER") || proxy.log.contains("DHCPACK"), "the proxy gave an address:\n\(context)")
        checkServerSawEachGuest(server, count: 2)

        // The BIOS build no guest here can ask for (QEMU has no BIOS PXE ROM but iPXE's): served
        // over TFTP to another host of the network, byte for byte.
        let fetched = directory + "/undionly.kpxe"
        try shell(BootNetwork.inside(network.dhcpNamespace, ["curl", "-sS", "-o", fetched, "tftp://\(BootNetwork.serverAddress)/undionly.kpxe"]).joined(separator: " "))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: fetched)), try Data(contentsOf: URL(fileURLWithPath: "/usr/lib/ipxe/undionly.kpxe")))
    }

    /// The shipped full-DHCP configuration alone gives a UEFI guest its address, snponly.efi, and
    /// then (to iPXE) the server's URL.
    func testUEFIWithoutOptionROMBootsThroughFullDHCP() async throws {
        let (systemA, _) = try prerequisites()
        let directory = try makeTemporaryDirectory(self, "pxe")
        let network = try BootNetwork(self, taps: 1)
        // The network's IPv6 router only (so that iPXE does not wait for one).
        _ = try DnsmasqDaemon(self, namespace: network.dhcpNamespace, arguments: [
            "--conf-file=/dev/null", "--port=0", "--enable-ra", "--dhcp-range=fd00:231::,ra-only",
        ], directory: directory, name: "ra")
        let fullConfiguration = try ShippedDnsmasqConfiguration("full-dhcp.conf").forTestNetwork(in: directory)
        let full = try DnsmasqDaemon(self, namespace: network.name, arguments: [
            "--conf-file=\(fullConfiguration)", "--dhcp-leasefile=\(directory)/full.leases",
        ], directory: directory, name: "full")
        XCTAssertTrue(full.logs("DHCP, IP range 10.231.0.100 -- 10.231.0.199"), full.log)
        let server = try startServer(network, directory: directory, rules: [(Self.uefiMAC, systemA)])

        let boot = try await Self.boot(network, tap: "tap0", mac: Self.uefiMAC, uefi: true, log: directory + "/uefi.log")
        let context = "--- dnsmasq ---\n\(full.log.suffix(3000))\n--- server ---\n\(server.log.suffix(3000))"
        checkChain(boot, uefi: true, system: systemA, variant: "a", context: context)
        XCTAssertTrue(full.log.contains("sent /usr/lib/ipxe/snponly.efi to 10.231.0."), context)
        XCTAssertNotNil(full.log.range(of: #"DHCPACK\(br0\) 10\.231\.0\.\d+ "# + Self.uefiMAC, options: .regularExpression), context)
        checkServerSawEachGuest(server, count: 1)
    }

    /// Root and `ip netns` (else a skip), a kernel and the iPXE builds (else a failure), and the systems "a" and "b".
    func prerequisites() throws -> (StorePath, StorePath) {
        if let reason = BootNetwork.unavailableReason { throw XCTSkip(reason) }
        guard !QEMUBootTests.kernel.isEmpty, FileManager.default.fileExists(atPath: QEMUBootTests.kernel) else {
            throw ShellError(description: "no kernel to boot: scripts/fetch-kernel.sh failed (or NNS_TEST_KERNEL is wrong)")
        }
        for file in ["/usr/lib/ipxe/undionly.kpxe", "/usr/lib/ipxe/snponly.efi"] where !FileManager.default.fileExists(atPath: file) {
            throw ShellError(description: "\(file) is missing (package ipxe)")
        }
        return (try QEMUBootTests.system("a"), try QEMUBootTests.system("b"))
    }

    /// The server on the bridge at port 3030, in the namespace, with a machine rule per MAC.
    func startServer(_ network: BootNetwork, directory: String, rules: [(mac: String, system: StorePath)]) throws -> ServerProcess {
        let machines = directory + "/machines"
        try FileManager.default.createDirectory(atPath: machines, withIntermediateDirectories: true)
        for rule in rules {
            try #"{"match": {"mac": "\#(rule.mac)"}, "boot": "closure/\#(rule.system.name)"}"#
                .write(toFile: "\(machines)/\(rule.mac.replacingOccurrences(of: ":", with: "-")).json", atomically: true, encoding: .utf8)
        }
        return try ServerProcess(self, arguments: ["--machines-dir", machines],
                                 prefix: BootNetwork.inside(network.name, []), listen: "\(BootNetwork.serverAddress):3030")
    }

    /// The guest reached the init of `system`, through every link of its chain: under UEFI, OVMF's own
    /// PXE client fetched snponly.efi first; under BIOS, the NIC's iPXE ROM went straight to the URL.
    func checkChain(_ boot: (status: Int32, serial: String), uefi: Bool, system: StorePath, variant: String, context: String,
                    file: StaticString = #filePath, line: UInt = #line) {
        let firmware = uefi ? "UEFI" : "BIOS"
        XCTAssertEqual(boot.status, 0, "\(firmware) boot failed:\n\(boot.serial.suffix(4000))\n\(context)", file: file, line: line)
        XCTAssertTrue(boot.serial.contains("NNS-BOOT-OK variant=\(variant)"), "\(firmware) guest:\n\(boot.serial.suffix(3000))", file: file, line: line)
        let steps = (uefi ? ["Start PXE over IPv4", "NBP filename is snponly.efi", "iPXE initialising devices"] : ["iPXE (PCI 00:"])
            + ["Filename: http://10.231.0.1:3030/boot.ipxe", "Booting NixOS closure \(system.name)"]
        for step in steps where !boot.serial.contains(step) {
            XCTFail("\(firmware) serial log lacks \"\(step)\":\n\(boot.serial.suffix(3000))", file: file, line: line)
        }
        if !uefi {
            XCTAssertFalse(boot.serial.contains("NBP filename"), "the BIOS guest was iPXE already: no TFTP step", file: file, line: line)
        }
    }

    /// The server answered `/boot.ipxe` once per guest, each from the boot network.
    func checkServerSawEachGuest(_ server: ServerProcess, count: Int, file: StaticString = #filePath, line: UInt = #line) {
        let requests = server.log.split(separator: "\n").filter { $0.contains("path=/boot.ipxe status=200") }
        XCTAssertEqual(requests.count, count, "one /boot.ipxe per guest:\n\(requests.joined(separator: "\n"))", file: file, line: line)
        XCTAssertTrue(requests.allSatisfy { $0.contains("client=10.231.0.") }, requests.joined(separator: "\n"), file: file, line: line)
    }

    /// A guest on tap `tap` of `network`: the exit status of `scripts/qemu-boot.sh` and the serial log.
    static func boot(_ network: BootNetwork, tap: String, mac: String, uefi: Bool, log: String) async throws -> (status: Int32, serial: String) {
        let command = BootNetwork.inside(network.name, [
            "bash", "\(repositoryRoot)/scripts/qemu-boot.sh", "--tap", tap, "--mac", mac, "--timeout", "170", "--log", log,
        ]).joined(separator: " ") + (uefi ? " --uefi" : "")
        let started = Date()
        let result = try await shellOffThread(command)
        // Lossy: firmware writes bytes that are not UTF-8 to the console.
        let serial = String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: log))) ?? Data(), as: UTF8.self)
            .replacingOccurrences(of: "\r", with: "")
            .replacingOccurrences(of: #"\x1B\[[0-9;?=]*[A-Za-z]"#, with: "", options: .regularExpression)
        print("PXEChainTests: \(uefi ? "UEFI" : "BIOS") guest \(mac): exit \(result.status) after \(Int(Date().timeIntervalSince(started))) s")
        return (result.status, serial + "\n--- qemu-boot ---\n" + result.error)
    }
}
