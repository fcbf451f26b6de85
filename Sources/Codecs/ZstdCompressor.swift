import CZstd
import NetbootKit
import Synchronization

/// zstd through libzstd: one frame per archive, with its checksum, at levels 1–19 (no long or
/// ultra windows, which the kernel's decoder would refuse).
///
/// The archive's exact size is pledged, so small archives get small tables. Always single-threaded: packings already run in parallel across store paths (largest first), and
/// libzstd's workers would multiply the memory of every packing. Compression contexts are kept and
/// reset between archives instead of being allocated anew for each of hundreds of paths.
public struct ZstdCompressor: Compressor {
    public init() {}
    public var name: String { "zstd" }
    public var defaultLevel: Int { 10 }
    public var levels: ClosedRange<Int> { 1...19 }

    /// Idle contexts kept for reuse; more packings than this at once allocate their own.
    static let pool = ContextPool(capacity: 8)

    public func makeEncoder(level: Int, inputSize: UInt64) throws -> any CompressionEncoder {
        try Encoder(level: Int32(try validatedLevel(level)), inputSize: inputSize)
    }

    /// Compression contexts waiting to be reused.
    final class ContextPool: Sendable {
        private let idle = Mutex<[UnsafeSendableContext]>([])
        let capacity: Int

        init(capacity: Int) { self.capacity = capacity }

        func take() -> OpaquePointer? { idle.withLock { $0.popLast()?.pointer } ?? ZSTD_createCCtx() }

        func give(_ context: OpaquePointer) {
            let kept = idle.withLock { contexts -> Bool in
                guard contexts.count < capacity else { return false }
                contexts.append(UnsafeSendableContext(pointer: context))
                return true
            }
            if !kept { ZSTD_freeCCtx(context) }
        }
    }

    /// A context owned by exactly one holder at a time (the pool or one encoder).
    struct UnsafeSendableContext: @unchecked Sendable { let pointer: OpaquePointer }

    final class Encoder: CompressionEncoder {
        private let context: OpaquePointer
        private var output = [UInt8](repeating: 0, count: ZSTD_CStreamOutSize())

        init(level: Int32, inputSize: UInt64) throws {
            guard let context = ZstdCompressor.pool.take() else { throw CompressionError("ZSTD_createCCtx failed") }
            self.context = context
            // A reused context starts from libzstd's defaults again, so output never depends on reuse.
            // (If this throws, deinit hands the context back; the next encoder resets it too.)
            try check(ZSTD_CCtx_reset(context, ZSTD_reset_session_and_parameters))
            try check(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level))
            try check(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1))
            // The exact size lets libzstd size its tables to the archive (most store paths are small)
            // and records the size in the frame header.
            try check(ZSTD_CCtx_setPledgedSrcSize(context, inputSize))
        }

        deinit { ZstdCompressor.pool.give(context) }

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
