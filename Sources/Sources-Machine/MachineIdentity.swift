import NetbootKit

/// What a machine says about itself in `/dispatch/machine?…` (the values iPXE expands in
/// `/boot.ipxe`'s chain URL), normalised for comparison. Not authentication: anyone can send any value.
public struct MachineIdentity: Sendable, Equatable {
    /// The keys a rule may match on.
    public enum Key: String, Sendable, CaseIterable, Comparable {
        case mac, uuid, serial, hostname, arch, platform

        public static func < (a: Key, b: Key) -> Bool { a.rawValue < b.rawValue }
    }

    /// Normalised values by key; an empty value (an iPXE setting that is unset) is absent.
    public var values: [Key: String]

    public init(values: [Key: String] = [:]) {
        self.values = values
    }

    /// The longest value accepted, in bytes.
    public static let maximumValueBytes = 200

    /// `value` as it is compared for `key`: a MAC as six lowercase hex pairs joined by `:` (given
    /// with `:` or `-`, any case), a UUID in lowercase, the others exactly as given. Nil when it is
    /// not a valid value of `key`.
    public static func normalise(_ value: String, for key: Key) -> String? {
        guard value.utf8.count <= maximumValueBytes, !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            return nil
        }
        switch key {
        case .mac:
            let pairs = value.lowercased().split(omittingEmptySubsequences: false, whereSeparator: { $0 == ":" || $0 == "-" })
            guard pairs.count == 6, pairs.allSatisfy({ $0.count == 2 && $0.allSatisfy { $0.isHexDigit } }) else { return nil }
            return pairs.joined(separator: ":")
        case .uuid:
            return value.lowercased()
        case .serial, .hostname, .arch, .platform:
            return value
        }
    }

    /// The identity a request's query gives: every known key with a non-empty value. Throws
    /// ``DispatchError`` (400) for a value that is malformed (e.g. a MAC that is not one).
    public static func from(query: String?) throws(DispatchError) -> MachineIdentity {
        var identity = MachineIdentity()
        for pair in (query ?? "").split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let key = Key(rawValue: String(parts[0])), identity.values[key] == nil else { continue }
            guard let raw = try? FormDecoding.decode(parts.count > 1 ? parts[1] : "") else {
                throw .badRequest("\(key.rawValue) is not percent-encoded UTF-8")
            }
            guard !raw.isEmpty else { continue }
            guard let value = normalise(raw, for: key) else { throw .badRequest("\(key.rawValue) '\(raw.prefix(40))' is not a valid \(key.rawValue)") }
            identity.values[key] = value
        }
        return identity
    }

    /// How the machine is named in logs, `/status` and its last-boot record: its MAC, else its
    /// UUID, else its serial.
    public var label: String {
        values[.mac] ?? values[.uuid].map { "uuid:" + $0 } ?? values[.serial].map { "serial:" + $0 } ?? "unidentified"
    }
}
