import NetbootHost
import XCTest

/// `--trusted-proxy` parsing and the client address it decides, without I/O.
final class TrustedProxiesTests: XCTestCase {
    func testParsesAddressesAndNetworksOfBothFamiliesAndRefusesTheRest() throws {
        let proxies = try TrustedProxies(parsing: ["10.1.2.3", "192.168.0.0/16", "2001:db8::/32", "::1", "::ffff:172.16.0.0/108"])
        XCTAssertEqual(proxies.networks.map(\.description), ["10.1.2.3/32", "192.168.0.0/16", "2001:db8::/32", "::1/128", "172.16.0.0/12"])
        for bad in ["", "10.1.2", "10.1.2.3/33", "10.0.0.0/-1", "10.0.0.0/+8", "2001:db8::/129", "host.example", "10.0.0.0/", "fe80::1%eth0", "::ffff:1.2.3.4/95"] {
            XCTAssertThrowsError(try TrustedProxies(parsing: [bad]), bad) { error in
                XCTAssertTrue("\(error)".hasPrefix("--trusted-proxy takes"), "\(error)")
            }
        }
    }

    func testNetworksMatchByPrefixWithinOneFamily() throws {
        let proxies = try TrustedProxies(parsing: ["192.168.4.0/22", "2001:db8:ab00::/40", "0.0.0.0/0"])
        XCTAssertTrue(proxies.networks[0].contains(try XCTUnwrap(IPAddress("192.168.7.255"))))
        XCTAssertFalse(proxies.networks[0].contains(try XCTUnwrap(IPAddress("192.168.8.0"))))
        XCTAssertTrue(proxies.networks[1].contains(try XCTUnwrap(IPAddress("2001:db8:abff::1"))))
        XCTAssertFalse(proxies.networks[1].contains(try XCTUnwrap(IPAddress("2001:db8:ac00::1"))))
        XCTAssertTrue(proxies.networks[2].contains(try XCTUnwrap(IPAddress("8.8.8.8"))))
        XCTAssertFalse(proxies.networks[2].contains(try XCTUnwrap(IPAddress("::1"))), "never across families")
        XCTAssertEqual(IPAddress("::ffff:10.0.0.1")?.description, "10.0.0.1")
    }

    func testTheConnectionDecidesUnlessItIsATrustedProxys() throws {
        let proxies = try TrustedProxies(parsing: ["127.0.0.1", "10.0.0.0/8"])
        // Not a proxy: the header is anyone's to write.
        XCTAssertEqual(proxies.client(peer: "192.0.2.9", forwardedFor: ["203.0.113.7"]), .init(address: "192.0.2.9", forwarded: false))
        // A proxy: the last address it added.
        XCTAssertEqual(proxies.client(peer: "127.0.0.1", forwardedFor: ["198.51.100.1, 203.0.113.7"]), .init(address: "203.0.113.7", forwarded: true))
        // A chain of trusted proxies: the first address from the right that none of them is.
        XCTAssertEqual(proxies.client(peer: "127.0.0.1", forwardedFor: ["198.51.100.1, 203.0.113.7", "10.2.3.4"]), .init(address: "203.0.113.7", forwarded: true))
        // Ports and brackets as some proxies write them; a mapped peer address.
        XCTAssertEqual(proxies.client(peer: "::ffff:127.0.0.1", forwardedFor: ["203.0.113.7:5123"]).address, "203.0.113.7")
        XCTAssertEqual(proxies.client(peer: "127.0.0.1", forwardedFor: ["[2001:db8::7]:80"]).address, "2001:db8::7")
        // No header, an empty one, or one whose proxy-added entry is not an address: the peer.
        XCTAssertEqual(proxies.client(peer: "127.0.0.1", forwardedFor: []), .init(address: "127.0.0.1", forwarded: false))
        XCTAssertEqual(proxies.client(peer: "127.0.0.1", forwardedFor: [""]), .init(address: "127.0.0.1", forwarded: false))
        XCTAssertEqual(proxies.client(peer: "127.0.0.1", forwardedFor: ["203.0.113.7, <script>"]), .init(address: "127.0.0.1", forwarded: false))
        XCTAssertEqual(proxies.client(peer: nil, forwardedFor: ["203.0.113.7"]), .init(address: nil, forwarded: false))
        // No proxies configured: always the peer.
        XCTAssertEqual(try TrustedProxies(parsing: []).client(peer: "127.0.0.1", forwardedFor: ["203.0.113.7"]).address, "127.0.0.1")
    }
}
