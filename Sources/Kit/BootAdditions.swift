/// What one source adds to the boot of a system for one machine: kernel arguments and a small
/// overlay archive unpacked over the shared initrd.
///
/// A source returns them with ``Resolution/boot(_:additions:)`` under a ``key`` of its own; the
/// host carries only the key to the boot script's URL and asks the source again
/// (``BootSource/additions(forKey:router:)``) when the script or the overlay is fetched, so what a
/// machine receives is always derived from the source's current state, never from the URL.
public struct BootAdditions: Sendable, Equatable {
    /// Names these additions within their source: 1–200 bytes of letters, digits, `.`, `_` and `-`,
    /// not starting with `.` (it travels in a URL and a query).
    public var key: String
    /// Words for the kernel line, after the system's `kernel-params` and before the query's
    /// `cmdline_suffix_args`. No control characters.
    public var kernelArguments: String
    /// The overlay, parents before children; empty for none.
    public var overlay: [OverlayEntry]

    public init(key: String, kernelArguments: String = "", overlay: [OverlayEntry] = []) {
        self.key = key
        self.kernelArguments = kernelArguments
        self.overlay = overlay
    }

    /// Whether `key` can name additions (see ``key``).
    public static func isValidKey(_ key: String) -> Bool {
        guard (1...200).contains(key.utf8.count), !key.hasPrefix(".") else { return false }
        return key.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
                || byte == UInt8(ascii: "-")
        }
    }
}

/// One entry of an overlay archive, owned by root. `path` is relative to the booted root, without a
/// leading `/` (`etc/netboot-machine`); the source validates it.
public enum OverlayEntry: Sendable, Equatable {
    /// A directory with its permission bits (e.g. `0o755`); the kernel applies them to a directory
    /// that already exists too.
    case directory(path: String, mode: UInt32)
    /// A regular file with its permission bits and contents.
    case file(path: String, mode: UInt32, contents: [UInt8])
}
