import CZlib
import NetbootKit

/// gzip through zlib: one gzip member per archive. The kernel unpacks any level.
public struct GzipCompressor: Compressor {
    public init() {}
    public var name: String { "gzip" }
    public var defaultLevel: Int { 6 }
    public var levels: ClosedRange<Int> { 1...9 }

    public func makeEncoder(level: Int, inputSize: UInt64, workers: Int) throws -> any CompressionEncoder {
        try Encoder(level: Int32(try validatedLevel(level)))
    }

    final class Encoder: CompressionEncoder {
        private var stream = z_stream()
        private var output = [UInt8](repeating: 0, count: 256 << 10)

        init(level: Int32) throws {
            let status = nns_deflate_init_gzip(&stream, level)
            guard status == Z_OK else { throw CompressionError("zlib deflateInit2 failed (\(status))") }
        }

        deinit { deflateEnd(&stream) }

        func compress(_ input: UnsafeRawBufferPointer, output sink: (UnsafeRawBufferPointer) throws -> Void) throws {
            guard !input.isEmpty else { return }
            try run(input, flush: Z_NO_FLUSH, sink)
        }

        func finish(output sink: (UnsafeRawBufferPointer) throws -> Void) throws {
            try run(UnsafeRawBufferPointer(start: nil, count: 0), flush: Z_FINISH, sink)
        }

        private func run(_ input: UnsafeRawBufferPointer, flush: Int32, _ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
            // zlib takes 32-bit lengths: feed large inputs in slices.
            var remaining = input
            repeat {
                let slice = UnsafeRawBufferPointer(rebasing: remaining.prefix(1 << 30))
                remaining = UnsafeRawBufferPointer(rebasing: remaining.dropFirst(slice.count))
                let last = remaining.isEmpty
                stream.next_in = UnsafeMutablePointer(mutating: slice.baseAddress?.assumingMemoryBound(to: Bytef.self))
                stream.avail_in = uInt(slice.count)
                let mode = last ? flush : Z_NO_FLUSH
                while true {
                    let produced: Int = try output.withUnsafeMutableBytes { out in
                        stream.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
                        stream.avail_out = uInt(out.count)
                        let status = deflate(&stream, mode)
                        guard status == Z_OK || status == Z_STREAM_END || status == Z_BUF_ERROR else {
                            throw CompressionError("zlib deflate failed (\(status))")
                        }
                        return out.count - Int(stream.avail_out)
                    }
                    if produced > 0 { try output.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) } }
                    if mode == Z_FINISH {
                        if produced == 0 && stream.avail_in == 0 { break }
                        continue
                    }
                    if stream.avail_in == 0 && produced < output.count { break }
                }
            } while !remaining.isEmpty
        }
    }
}
