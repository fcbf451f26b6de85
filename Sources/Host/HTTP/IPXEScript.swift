import HTTPTypes

/// The iPXE script that boots a NixOS system: kernel and initrd named relative to the script's URL.
public struct IPXEScript: Equatable, Sendable {
    public var path: StorePath
    /// `kernel-params` of the system, on one line.
    public var kernelParameters: String
    /// Operator-supplied words before and after the system's parameters.
    public var prefix: String
    public var suffix: String

    public init(path: StorePath, kernelParameters: String, prefix: String = "", suffix: String = "") {
        self.path = path
        self.kernelParameters = kernelParameters
        self.prefix = prefix
        self.suffix = suffix
    }

    /// Reads the tuning arguments from a query. A newline or NUL would end the script's line: 400.
    public static func tuningArguments(from query: String?) throws(PlainTextError) -> (prefix: String, suffix: String) {
        func argument(_ name: String) throws(PlainTextError) -> String {
            let value = try QueryString.value(name, in: query) ?? ""
            if value.contains(where: { $0 == "\n" || $0 == "\r" || $0 == "\0" }) {
                throw PlainTextError(.badRequest, "\(name) may not contain a newline or NUL")
            }
            return value
        }
        return (try argument("cmdline_prefix_args"), try argument("cmdline_suffix_args"))
    }

    /// The script text. `initrd=initrd` is always on the kernel line: iPXE under UEFI passes no
    /// initrd to the kernel without it.
    public var text: String {
        let words = ["kernel bzImage initrd=initrd rdinit=\(path.absolutePath)/init", prefix, kernelParameters, suffix]
            .filter { !$0.isEmpty }
        return """
            #!ipxe
            echo Booting NixOS closure \(path.name).
            \(words.joined(separator: " "))
            initrd initrd
            boot

            """
    }
}
