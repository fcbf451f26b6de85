/// The iPXE texts of the machine source: the entry script `/boot.ipxe`, and what a machine without
/// a rule (or with two) is told.
public enum MachineScripts {
    /// Seconds a machine without a usable rule waits before it asks again.
    public static let waitSeconds = 30

    /// The query iPXE fills in: every value that may hold spaces or `&` is `:uristring`.
    public static let identityQuery =
        "mac=${net0/mac:hexhyp}&uuid=${uuid}&serial=${serial:uristring}&hostname=${hostname:uristring}&arch=${buildarch}&platform=${platform}"

    /// `/boot.ipxe`: chains the machine's dispatch with a relative URL (the machine may reach the
    /// server by another address than it listens on), keeping `query` (e.g. `cmdline_suffix_args`).
    public static func entry(query: String?) -> String {
        var url = "/dispatch/machine?" + identityQuery
        if let query, !query.isEmpty { url += "&" + escapeForCommandLine(query) }
        return "#!ipxe\nchain --autofree \(url)\n"
    }

    /// What a machine no rule matches is shown (the log gets the same with the directory's path).
    public static func unknownMachine(_ machine: MachineIdentity) -> [String] {
        let mac = machine.values[.mac] ?? "unknown", uuid = machine.values[.uuid] ?? "unknown"
        let file = suggestedFile(machine)
        return [
            "No machine rule matches this machine: MAC \(mac), UUID \(uuid).",
            "To boot it, create machines/\(file) on the server, matching mac \(mac) and naming what to boot,",
            "for example profile/NAME. This machine asks again by itself.",
        ]
    }

    /// What a machine is shown when two rules match it equally well.
    public static func tie(_ machine: MachineIdentity, rules: [String]) -> [String] {
        [
            "Machine rules \(rules.map { $0 + ".json" }.joined(separator: " and ")) match this machine equally (\(machine.label)).",
            "Refusing to guess: make one of them more specific, or remove one. This machine asks again by itself.",
        ]
    }

    /// A file name for a new rule: the MAC with hyphens, else the UUID.
    public static func suggestedFile(_ machine: MachineIdentity) -> String {
        (machine.values[.mac]?.replacingColons() ?? machine.values[.uuid] ?? "NAME") + ".json"
    }

    /// Percent-encodes what must not reach an iPXE command line raw (whitespace, `$`, quotes, controls).
    static func escapeForCommandLine(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            if byte <= 0x20 || byte >= 0x7F || byte == UInt8(ascii: "$") || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'")
                || byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "#")
            {
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            } else {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            }
        }
        return out
    }
}

extension String {
    func replacingColons() -> String { String(map { $0 == ":" ? "-" : $0 }) }
}
