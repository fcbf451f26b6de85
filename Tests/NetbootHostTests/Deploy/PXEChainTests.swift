import Foundation
import NetbootHost
import XCTest

/// The PXE chain from bare firmware, on a network of its own (network namespaces: a bridge, tap
/// devices, nothing routed out): the network's DHCP server gives addresses, a second dnsmasq with
/// the shipped `deploy/dnsmasq/proxy-dhcp.conf` (only its EDIT lines changed) answers the PXE part,
/// and the server binary listens on the bridge. A UEFI guest whose virtio NIC has no option ROM goes
/// OVMF PXE → TFTP snponly.efi → iPXE → `/boot.ipxe`; a BIOS guest whose NIC ROM is iPXE goes
/// straight to `/boot.ipxe`. Each reaches the init of the system its machine rule names.
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
        if let reason = BootNetwork.unavailableReason { throw XCTSkip(reason) }
        guard !QEMUBootTests.kernel.isEmpty, FileManager.default.fileExists(atPath: QEMUBootTests.kernel) else {
            throw ShellError(description: "no kernel to boot: scripts/fetch-kernel.sh failed (or NNS_TEST_KERNEL is wrong)")
        }
        for file in ["/usr/lib/ipxe/undionly.kpxe", "/usr/lib/ipxe/snponly.efi"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: file), "\(file) is missing (package ipxe)")
        }
        let systemA = try QEMUBootTests.system("a"), systemB = try QEMUBootTests.system("b")
        let directory = try makeTemporaryDirectory(self, "pxe")

        // Teardown runs in reverse: processes stop first, then the namespaces go.
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

        // The server on the bridge, a machine rule per MAC.
        let machines = directory + "/machines"
        try FileManager.default.createDirectory(atPath: machines, withIntermediateDirectories: true)
        for (mac, system, name) in [(Self.uefiMAC, systemA, "uefi"), (Self.biosMAC, systemB, "bios")] {
            try #"{"match": {"mac": "\#(mac)"}, "boot": "closure/\#(system.name)"}"#
                .write(toFile: "\(machines)/\(name).json", atomically: true, encoding: .utf8)
        }
        let server = try ServerProcess(self, arguments: ["--machines-dir", machines],
                                       prefix: BootNetwork.inside(network.name, []), listen: "\(BootNetwork.serverAddress):3030")

        async let uefi = Self.boot(network, tap: "tap0", mac: Self.uefiMAC, uefi: true, log: directory + "/uefi.log")
        async let bios = Self.boot(network, tap: "tap1", mac: Self.biosMAC, uefi: false, log: directory + "/bios.log")
        let (uefiBoot, biosBoot) = try await (uefi, bios)
        let context = "--- proxy dnsmasq ---\n\(proxy.log.suffix(3000))\n--- server ---\n\(server.log.suffix(3000))"

        XCTAssertEqual(uefiBoot.status, 0, "UEFI boot failed:\n\(uefiBoot.serial.suffix(4000))\n\(context)")
        XCTAssertTrue(uefiBoot.serial.contains("NNS-BOOT-OK variant=a"), "UEFI guest:\n\(uefiBoot.serial.suffix(3000))")
        // Every link of the chain: OVMF's PXE got snponly.efi over TFTP, iPXE then got the server's URL.
        for step in ["Start PXE over IPv4", "NBP filename is snponly.efi", "iPXE initialising devices",
                     "Filename: http://10.231.0.1:3030/boot.ipxe", "Booting NixOS closure \(systemA.name)"] {
            XCTAssertTrue(uefiBoot.serial.contains(step), "UEFI serial log lacks \"\(step)\":\n\(uefiBoot.serial.suffix(3000))")
        }
        XCTAssertTrue(proxy.log.contains("sent /usr/lib/ipxe/snponly.efi to 10.231.0."), context)

        XCTAssertEqual(biosBoot.status, 0, "BIOS boot failed:\n\(biosBoot.serial.suffix(4000))\n\(context)")
        XCTAssertTrue(biosBoot.serial.contains("NNS-BOOT-OK variant=b"), "BIOS guest:\n\(biosBoot.serial.suffix(3000))")
        for step in ["iPXE (PCI 00:", "Filename: http://10.231.0.1:3030/boot.ipxe", "Booting NixOS closure \(systemB.name)"] {
            XCTAssertTrue(biosBoot.serial.contains(step), "BIOS serial log lacks \"\(step)\":\n\(biosBoot.serial.suffix(3000))")
        }
        XCTAssertFalse(biosBoot.serial.contains("NBP filename"), "the BIOS guest was iPXE already: no TFTP step")

        // Addresses came from the network's DHCP server, the boot file from the proxy.
        for mac in [Self.uefiMAC, Self.biosMAC] {
            XCTAssertNotNil(dhcp.log.range(of: #"DHCPACK\(dhcp0\) 10\.231\.0\.\d+ "# + mac, options: .regularExpression), dhcp.log.suffix(2000).description)
            XCTAssertTrue(proxy.log.contains("PXE(br0) \(mac) proxy"), context)
        }
        XCTAssertFalse(proxy.log.contains("DHCPOFFER") || proxy.log.contains("DHCPACK"), "the proxy gave an address:\n\(context)")
        // The server saw both machines, from the boot network.
        let requests = server.log.split(separator: "\n").filter { $0.contains("path=/boot.ipxe status=200") }
        XCTAssertEqual(requests.count, 2, "one /boot.ipxe per guest:\n\(requests.joined(separator: "\n"))")
        XCTAssertTrue(requests.allSatisfy { $0.contains("client=10.231.0.") }, requests.joined(separator: "\n"))
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
