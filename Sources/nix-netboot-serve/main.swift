import ClosureSource
import Codecs
import ConfigurationSource
import FlakeSource
import HydraSource
import MachineSource
import NetbootHost
import ProfileSource

/// The composition root: the one place that knows every module. Adding a codec or a boot source is
/// one line in one of these lists (and its target in Package.swift); a source's options come with it.
@main
enum NixNetbootServe {
    /// Every codec this build offers, the default first.
    static let codecs: [any Compressor] = [
        ZstdCompressor(),
        XzCompressor(),
        GzipCompressor(),
        NoneCompressor(),
    ]

    /// Every boot source this build offers, served under `/dispatch/NAME/`.
    static let sources: [any BootSourceModule.Type] = [
        ClosureSource.self,
        ProfileSource.self,
        ConfigurationSource.self,
        HydraSource.self,
        FlakeSource.self,
        MachineSource.self,
    ]

    static func main() async {
        await ServerCommand.main(
            name: "nix-netboot-serve", abstract: "Netboots NixOS systems over HTTP to iPXE, packing each store path once.",
            codecs: codecs, sources: sources)
    }
}
