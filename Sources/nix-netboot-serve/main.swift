import Codecs
import NetbootHost

var registry = ModuleRegistry()
registry.register(compressor: ZstdCompressor())
registry.register(compressor: XzCompressor())
registry.register(compressor: GzipCompressor())
registry.register(compressor: NoneCompressor())
print("nix-netboot-serve: codecs \(registry.compressorNames.joined(separator: ", "))")
