/// The `--trusted-proxy` addresses and networks, and the decision they make: which address a request
/// came from.
///
/// A request's client is its connection's peer, unless that peer is a trusted proxy: then it is the
/// last address in `X-Forwarded-For` that the trusted proxies did not add themselves (read from the
/// right, skipping trusted addresses: what a chain of trusted proxies passed on). An entry that is
/// not an address makes the header untrustworthy, and the peer is the client. Pure.
package struct TrustedProxies: Sendable, Equatable {
    /// One network: an address and how many leading bits of it must match.
    package struct Network: Sendable, Equatable, CustomStringConvertible {
        package let address: IPAddress
        package let prefixLength: Int

        /// Parses `ADDRESS` (every bit) or `ADDRESS/BITS`.
        package init(parsing text: String) throws(TrustedProxyError) {
            let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard let address = IPAddress(parts[0]) else { throw TrustedProxyError(text: text, reason: "not an IP address") }
            // ::ffff:a.b.c.d is kept as a.b.c.d; a prefix written after it counts IPv6 bits.
            let mapped = address.isIPv4 && parts[0].contains(":")
            let bits = mapped ? 128 : address.bytes.count * 8
            var prefix = address.bytes.count * 8
            if parts.count == 2 {
                guard !parts[1].hasPrefix("+"), let given = Int(parts[1]), ((mapped ? 96 : 0)...bits).contains(given) else {
                    throw TrustedProxyError(text: text, reason: "the prefix length must be \(mapped ? 96 : 0) to \(bits)")
                }
                prefix = mapped ? given - 96 : given
            }
            self.address = address
            self.prefixLength = prefix
        }

        /// Whether `candidate` is in this network (never across families).
        package func contains(_ candidate: IPAddress) -> Bool {
            guard candidate.bytes.count == address.bytes.count else { return false }
            var remaining = prefixLength
            for (a, b) in zip(address.bytes, candidate.bytes) {
                guard remaining > 0 else { return true }
                let mask: UInt8 = remaining >= 8 ? 0xFF : ~(0xFF >> UInt8(remaining))
                if a & mask != b & mask { return false }
                remaining -= 8
            }
            return true
        }

        package var description: String { "\(address)/\(prefixLength)" }
    }

    /// Who a request came from.
    package struct Client: Sendable, Equatable {
        /// The client's address (nil when the connection has none, e.g. in memory).
        package var address: String?
        /// Whether it came from `X-Forwarded-For` (the connection is a trusted proxy's).
        package var forwarded: Bool

        package init(address: String?, forwarded: Bool) {
            self.address = address
            self.forwarded = forwarded
        }
    }

    package let networks: [Network]

    /// Parses each `--trusted-proxy` value.
    package init(parsing values: [String]) throws(TrustedProxyError) {
        var networks: [Network] = []
        for value in values { networks.append(try Network(parsing: value)) }
        self.networks = networks
    }

    package var isEmpty: Bool { networks.isEmpty }

    /// Whether `address` is a trusted proxy's.
    package func trusts(_ address: IPAddress) -> Bool { networks.contains { $0.contains(address) } }

    /// The client of a request whose connection's peer is `peer`, with these `X-Forwarded-For`
    /// header values (in the order they came; each a comma-separated list).
    package func client(peer: String?, forwardedFor values: [String]) -> Client {
        let direct = Client(address: peer, forwarded: false)
        guard let peer, let peerAddress = IPAddress(peer), trusts(peerAddress) else { return direct }
        let entries = values.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }
        var found: IPAddress?
        for entry in entries.reversed() {
            guard let address = Self.address(inEntry: entry) else { return direct }
            found = address
            if !trusts(address) { break }
        }
        guard let found else { return direct }
        return Client(address: found.description, forwarded: true)
    }

    /// The address of one `X-Forwarded-For` entry: `ADDRESS`, `[IPv6]`, `[IPv6]:PORT` or `IPv4:PORT`.
    static func address(inEntry raw: Substring) -> IPAddress? {
        let entry = Substring(raw.trimmingSpaces())
        if entry.hasPrefix("["), let close = entry.firstIndex(of: "]") {
            return IPAddress(entry[entry.index(after: entry.startIndex)..<close])
        }
        if entry.contains("."), let colon = entry.firstIndex(of: ":"), entry.filter({ $0 == ":" }).count == 1 {
            return IPAddress(entry[..<colon])
        }
        return IPAddress(entry)
    }
}

/// A `--trusted-proxy` value that is not an address or a network.
package struct TrustedProxyError: Error, Sendable, Equatable, CustomStringConvertible {
    package let text: String
    package let reason: String
    package var description: String { "--trusted-proxy takes an IP address or ADDRESS/BITS, not '\(text)': \(reason)" }
}
