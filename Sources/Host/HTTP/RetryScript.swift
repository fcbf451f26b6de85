/// The iPXE script answered when a dispatch failed in a way that may heal (a configuration being
/// edited): it shows the reason, waits, and asks the same URL again.
package struct RetryScript: Equatable, Sendable {
    /// Seconds iPXE sleeps before asking again.
    package static let delay = Resolution.retryDelay

    package var reason: String
    /// The dispatch URL to chain again, query included.
    package var url: String
    /// Further lines shown after the reason (each sanitised like it).
    package var moreLines: [String] = []
    /// Seconds iPXE sleeps before asking again (``delay`` unless a source asked for another pause).
    package var seconds: Int = Self.delay

    package init(reason: String, url: String) {
        self.reason = Self.sanitise(reason)
        self.url = Self.sanitiseURL(url)
    }

    /// A script showing every one of `lines` (the first as the reason), waiting `seconds` (1 to 3600).
    package init(lines: [String], seconds: Int, url: String) {
        self.init(reason: lines.first ?? "", url: url)
        self.moreLines = lines.dropFirst().map(Self.sanitise)
        self.seconds = min(max(seconds, 1), 3600)
    }

    /// One line of printable ASCII without what iPXE would interpret (`$` expansions, `||`, `&&`, quotes).
    package static func sanitise(_ text: String) -> String {
        var out = ""
        var lastWasSpace = true
        for scalar in text.unicodeScalars {
            let keep = scalar.value >= 0x20 && scalar.value < 0x7F && !"$|&;'\"\\`".unicodeScalars.contains(scalar)
            if keep && scalar != " " {
                out.unicodeScalars.append(scalar)
                lastWasSpace = false
            } else if !lastWasSpace {
                out.append(" ")
                lastWasSpace = true
            }
            if out.count >= 300 { break }
        }
        return out.trimmingSuffixWhitespace()
    }

    /// Percent-encodes what must not appear raw in an iPXE command line.
    static func sanitiseURL(_ url: String) -> String {
        var out = ""
        for byte in url.utf8 {
            if byte <= 0x20 || byte >= 0x7F || byte == UInt8(ascii: "$") || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") {
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            } else {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            }
        }
        return out
    }

    package var text: String {
        """
        #!ipxe
        echo \(reason)
        \(moreLines.map { "echo \($0)\n" }.joined())echo Trying again in \(seconds) seconds.
        sleep \(seconds)
        chain --autofree \(url)

        """
    }
}

extension String {
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
