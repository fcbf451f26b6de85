import NetbootKit

/// Stores archives uncompressed; the kernel accepts uncompressed members at 4-byte offsets, and
/// every newc archive is a multiple of 4 bytes long, so a sequence of them stays aligned.
public struct NoneCompressor: Compressor {
    public init() {}
    public var name: String { "none" }
    public var defaultLevel: Int { 0 }
    public var levels: ClosedRange<Int> { 0...0 }

    public func makeEncoder(level: Int, inputSize: UInt64, workers: Int) throws -> any CompressionEncoder {
        PassThroughEncoder()
    }

    final class PassThroughEncoder: CompressionEncoder {
        func compress(_ input: UnsafeRawBufferPointer, output: (UnsafeRawBufferPointer) throws -> Void) throws {
            if !input.isEmpty { try output(input) }
        }
        func finish(output: (UnsafeRawBufferPointer) throws -> Void) throws {}
    }
}
