/// A source's overlay (``OverlayEntry``s) as the compressed newc archive a machine loads after the
/// shared initrd.
///
/// Compressed because the EFI stub concatenates initrds with no padding: the kernel finds a
/// compressed stream at any offset, an uncompressed archive only at a multiple of 4. Entries keep
/// the source's order (parents first), owned by root, with the writer's fixed modification time.
package enum OverlayArchive {
    /// Why an overlay cannot be served: the source broke the kit's rules (a bug, answered 500).
    package struct Refusal: Error, CustomStringConvertible {
        package var description: String
    }

    /// The newc bytes of `entries`, uncompressed, with a trailer.
    package static func archive(_ entries: [OverlayEntry]) throws -> [UInt8] {
        var writer = NewcWriter(sink: MemorySink(), bufferSize: 1 << 16)
        for entry in entries {
            switch entry {
            case .directory(let path, let mode):
                try check(path)
                try writer.appendDirectory(Array(path.utf8), mode: mode & 0o7777)
            case .file(let path, let mode, let contents):
                try check(path)
                try writer.appendFile(Array(path.utf8), mode: mode & 0o7777, contents: contents)
            }
        }
        return try writer.finish().bytes
    }

    /// The archive of `entries` compressed as one stream of `compressor`.
    package static func compressed(_ entries: [OverlayEntry], compressor: any Compressor, level: Int) throws -> [UInt8] {
        let plain = try archive(entries)
        let encoder = try compressor.makeEncoder(level: level, inputSize: UInt64(plain.count))
        var output: [UInt8] = []
        try plain.withUnsafeBytes { raw in try encoder.compress(raw) { output.append(contentsOf: $0) } }
        try encoder.finish { output.append(contentsOf: $0) }
        return output
    }

    /// A relative, normalised path outside `nix`: the host's own guard against a source that would
    /// rewrite the store or the registration database.
    static func check(_ path: String) throws(Refusal) {
        let components = path.split(separator: "/", omittingEmptySubsequences: false)
        guard !path.isEmpty, !path.hasPrefix("/"), components.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
            throw Refusal(description: "overlay path '\(path)' is not relative and normalised")
        }
        guard components[0] != "nix" else { throw Refusal(description: "overlay path '\(path)' is inside /nix") }
    }
}
