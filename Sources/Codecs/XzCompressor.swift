import CLzma
import NetbootKit

/// xz through liblzma with check CRC32 (the kernel refuses the default CRC64).
///
/// Inputs of at least two blocks are compressed by the multi-threaded encoder with a fixed block size,
/// whose output does not depend on the thread count (the `workers` the host allows, at least 2);
/// smaller inputs use the single-threaded encoder.
public struct XzCompressor: Compressor {
    public init() {}
    public var name: String { "xz" }
    public var defaultLevel: Int { 6 }
    public var levels: ClosedRange<Int> { 0...9 }

    /// Block size of the threaded encoder: fixed, so output is a function of the input alone.
    static let blockSize: UInt64 = 8 << 20

    public func makeEncoder(level: Int, inputSize: UInt64, workers: Int) throws -> any CompressionEncoder {
        let level = try validatedLevel(level)
        let threaded = inputSize >= 2 * Self.blockSize
        return try Encoder(preset: UInt32(level), threads: threaded ? max(2, min(8, workers)) : nil)
    }

    final class Encoder: CompressionEncoder {
        private var stream = lzma_stream()
        private var output = [UInt8](repeating: 0, count: 256 << 10)

        /// - Parameter threads: the block encoder's thread count, or nil for the single-threaded encoder.
        init(preset: UInt32, threads: Int?) throws {
            nns_lzma_stream_init(&stream)
            let status: lzma_ret
            if let threads {
                var options = lzma_mt()
                options.flags = 0
                options.block_size = XzCompressor.blockSize
                options.timeout = 0
                options.preset = preset
                options.filters = nil
                options.check = LZMA_CHECK_CRC32
                options.threads = UInt32(threads)
                status = lzma_stream_encoder_mt(&stream, &options)
            } else {
                status = lzma_easy_encoder(&stream, preset, LZMA_CHECK_CRC32)
            }
            guard status == LZMA_OK else { throw CompressionError("liblzma encoder set-up failed (\(status.rawValue))") }
        }

        deinit { lzma_end(&stream) }

        func compress(_ input: UnsafeRawBufferPointer, output sink: (UnsafeRawBufferPointer) throws -> Void) throws {
            guard !input.isEmpty else { return }
            try run(input, action: LZMA_RUN, sink)
        }

        func finish(output sink: (UnsafeRawBufferPointer) throws -> Void) throws {
            try run(UnsafeRawBufferPointer(start: nil, count: 0), action: LZMA_FINISH, sink)
        }

        private func run(_ input: UnsafeRawBufferPointer, action: lzma_action, _ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
            stream.next_in = input.baseAddress?.assumingMemoryBound(to: UInt8.self)
            stream.avail_in = input.count
            while true {
                var status = LZMA_OK
                let produced: Int = output.withUnsafeMutableBytes { out in
                    stream.next_out = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
                    stream.avail_out = out.count
                    status = lzma_code(&stream, action)
                    return out.count - stream.avail_out
                }
                guard status == LZMA_OK || status == LZMA_STREAM_END else {
                    throw CompressionError("liblzma failed (\(status.rawValue))")
                }
                if produced > 0 { try output.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) } }
                if status == LZMA_STREAM_END { break }
                if action == LZMA_RUN && stream.avail_in == 0 && produced < output.count { break }
            }
        }
    }
}
