import CZstd
import NetbootHost

/// zstd through libzstd: one frame per archive, with its checksum, at levels 1–19 (no long or
/// ultra windows, which the kernel's decoder would refuse).
///
/// Inputs larger than ``threadingThreshold`` use libzstd's workers. Output with one or more workers
/// does not depend on how many, so the choice depends on the input size only.
public struct ZstdCompressor: Compressor {
    public init() {}
    public var name: String { "zstd" }
    public var defaultLevel: Int { 10 }
    public var levels: ClosedRange<Int> { 1...19 }

    /// Below this, workers cost more than they give.
    static let threadingThreshold: UInt64 = 16 << 20

    public func makeEncoder(level: Int, expectedInputSize: UInt64) throws -> any CompressionEncoder {
        let level = try validatedLevel(level)
        let workers = expectedInputSize >= Self.threadingThreshold ? 2 : 0
        return try Encoder(level: Int32(level), workers: Int32(workers), pledgedSize: nil)
    }

    final class Encoder: CompressionEncoder {
        private let context: OpaquePointer
        private var output = [UInt8](repeating: 0, count: ZSTD_CStreamOutSize())

        init(level: Int32, workers: Int32, pledgedSize: UInt64?) throws {
            guard let context = ZSTD_createCCtx() else { throw CompressionError("ZSTD_createCCtx failed") }
            self.context = context
            try check(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level))
            try check(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1))
            if workers > 0 {
                // A libzstd built without threads refuses this; single-threaded output is still valid.
                _ = ZSTD_CCtx_setParameter(context, ZSTD_c_nbWorkers, workers)
            }
        }

        deinit { ZSTD_freeCCtx(context) }

        private func check(_ code: Int) throws {
            if ZSTD_isError(code) != 0 { throw CompressionError("zstd: " + String(cString: ZSTD_getErrorName(code))) }
        }

        func compress(_ input: UnsafeRawBufferPointer, output sink: (UnsafeRawBufferPointer) throws -> Void) throws {
            guard !input.isEmpty else { return }
            try run(input, mode: ZSTD_e_continue, sink)
        }

        func finish(output sink: (UnsafeRawBufferPointer) throws -> Void) throws {
            try run(UnsafeRawBufferPointer(start: nil, count: 0), mode: ZSTD_e_end, sink)
        }

        private func run(_ input: UnsafeRawBufferPointer, mode: ZSTD_EndDirective, _ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
            var inBuffer = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
            while true {
                var remaining = 0
                let produced: Int = try output.withUnsafeMutableBytes { out in
                    var outBuffer = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
                    remaining = ZSTD_compressStream2(context, &outBuffer, &inBuffer, mode)
                    try check(remaining)
                    return outBuffer.pos
                }
                if produced > 0 { try output.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) } }
                if mode == ZSTD_e_end {
                    if remaining == 0 { break }
                } else if inBuffer.pos == inBuffer.size {
                    break
                }
            }
        }
    }
}
