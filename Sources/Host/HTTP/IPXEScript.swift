import HTTPTypes

/// The iPXE script that boots a NixOS system: kernel and initrd named relative to the script's URL.
package struct IPXEScript: Equatable, Sendable {
    /// The longest `kernel …` line a script holds, in bytes (without its newline): the x86 kernel's
    /// `COMMAND_LINE_SIZE`. The kernel keeps that much of its command line and silently drops the
    /// rest — with it the system's own `init=` or `console=` — so a longer line is refused instead.
    package static let maximumKernelLineBytes = 2048

    package var path: StorePath
    /// `kernel-params` of the system, on one line.
    package var kernelParameters: String
    /// Operator-supplied words before and after the system's parameters.
    package var prefix: String
    package var suffix: String
    /// A source's per-machine words, between the system's parameters and `suffix`.
    package var additionalArguments: String = ""
    /// The URL of a per-machine overlay archive, loaded after the shared initrd as `overlay`.
    package var overlayURL: String?

    package init(path: StorePath, kernelParameters: String, prefix: String = "", suffix: String = "") {
        self.path = path
        self.kernelParameters = kernelParameters
        self.prefix = prefix
        self.suffix = suffix
    }

    /// Reads the tuning arguments from a query: 400 for a control character (C0 including tab,
    /// newline and NUL; DEL; C1), which would end the script's line or reach the iPXE console, and for
    /// arguments that alone would not fit on a kernel line.
    package static func tuningArguments(from query: String?) throws(PlainTextError) -> (prefix: String, suffix: String) {
        func argument(_ name: String) throws(PlainTextError) -> String {
            let value = try QueryString.value(name, in: query) ?? ""
            if let control = value.unicodeScalars.first(where: isControlCharacter) {
                throw PlainTextError(.badRequest, "\(name) may not contain control characters (found \(codePoint(control)))")
            }
            return value
        }
        let (prefix, suffix) = (try argument("cmdline_prefix_args"), try argument("cmdline_suffix_args"))
        if prefix.utf8.count + suffix.utf8.count > maximumKernelLineBytes {
            throw PlainTextError(.badRequest, argumentsTooLongReason(prefix.utf8.count + suffix.utf8.count))
        }
        return (prefix, suffix)
    }

    /// A system's `kernel-params` file as one line. Line breaks and tabs are whitespace, and every
    /// run of whitespace becomes one space (iPXE splits its command lines on any whitespace and joins
    /// the words with single spaces anyway); NUL, every other control character, DEL and bytes that
    /// are not UTF-8 are refused.
    package static func kernelParameters(_ bytes: [UInt8], of path: StorePath) throws(KernelLineError) -> String {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw KernelLineError(path: path, reason: .parametersNotUTF8)
        }
        var words: [Substring] = []
        for word in text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) {
            if let control = word.unicodeScalars.first(where: isControlCharacter) {
                throw KernelLineError(path: path, reason: .controlCharacterInParameters(control.value))
            }
            words.append(word)
        }
        return words.joined(separator: " ")
    }

    /// The `kernel …` line: `initrd=initrd` is always on it, as iPXE under UEFI passes no initrd to
    /// the kernel without it.
    package var kernelLine: String {
        line(prefix: prefix, suffix: suffix)
    }

    /// Throws unless the kernel line fits in ``maximumKernelLineBytes``: blaming the system when its
    /// own line (without the tuning arguments) is already too long, the arguments otherwise.
    package func checkKernelLine() throws(KernelLineError) {
        let own = line(prefix: "", suffix: "").utf8.count
        if own > Self.maximumKernelLineBytes { throw KernelLineError(path: path, reason: .systemLineTooLong(bytes: own)) }
        let whole = kernelLine.utf8.count
        if whole > Self.maximumKernelLineBytes { throw KernelLineError(path: path, reason: .argumentsMakeLineTooLong(bytes: whole)) }
    }

    /// The script text.
    package var text: String {
        """
        #!ipxe
        echo Booting NixOS closure \(path.name).
        \(kernelLine)
        initrd initrd
        \(overlayURL.map { "initrd --name overlay \($0)\n" } ?? "")boot

        """
    }

    private func line(prefix: String, suffix: String) -> String {
        let images = overlayURL == nil ? "initrd=initrd" : "initrd=initrd initrd=overlay"
        return ["kernel bzImage \(images) rdinit=\(path.absolutePath)/init", prefix, kernelParameters, additionalArguments, suffix]
            .filter { !$0.isEmpty }
            .joined(separator: " ")
    }

    /// C0 controls (tab, newline and NUL included), DEL and C1 controls.
    static func isControlCharacter(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }

    static func codePoint(_ scalar: Unicode.Scalar) -> String {
        let hex = String(scalar.value, radix: 16, uppercase: true)
        return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }

    static func argumentsTooLongReason(_ bytes: Int) -> String {
        "cmdline_prefix_args and cmdline_suffix_args make the kernel line \(bytes) bytes or more; the kernel keeps \(maximumKernelLineBytes)"
    }
}
