import NetbootKit

/// One `machines/NAME.json`, validated: which machines it matches, what they boot, and what they get
/// on top (kernel arguments, files).
public struct MachineRule: Sendable, Equatable {
    /// The file's name without `.json`; names the rule in logs, `/status` and the overlay's URL.
    public var name: String
    /// Every key given must equal the machine's (normalised) value; empty matches every machine.
    public var match: [MachineIdentity.Key: String]
    /// The source to ask, and the segments to ask it (`profile/rack-a` → `profile`, `["rack-a"]`).
    public var bootSource: String
    public var bootSegments: [String]
    /// Words after the system's `kernel-params`, before the query's `cmdline_suffix_args`.
    public var cmdline: String
    /// The overlay, parents first (empty when the rule has no files).
    public var overlay: [OverlayEntry]

    /// `SOURCE/SEGMENTS` as the rule gives it.
    public var boot: String { ([bootSource] + bootSegments).joined(separator: "/") }

    /// The number of files the overlay holds.
    public var fileCount: Int { overlay.filter { if case .file = $0 { true } else { false } }.count }

    /// What the rule adds to the boot of the machines it matches.
    public var additions: BootAdditions { BootAdditions(key: name, kernelArguments: cmdline, overlay: overlay) }
}

/// Why a rule file is skipped: said in the log with the file's name, and listed in `/status`.
public struct RuleProblem: Error, Equatable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
