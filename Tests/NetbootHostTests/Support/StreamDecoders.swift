import CLzma
import CZlib
import CZstd

/// Decompresses exactly one compressed member — a gzip member, an xz stream or a zstd frame — that
/// starts at an offset inside a larger buffer, and reports how many input bytes that member took.
///
/// This is what the kernel's decompressors do for an initramfs: each call unpacks one member and
/// tells `unpack_to_rootfs` where it ended, so the scan can continue with whatever follows (NUL
/// padding, another archive, another member). None of these decoders reads past its member.
enum StreamDecoders {
    /// The decompressed bytes of one member, and how many input bytes (from the start offset) it used.
    struct Decoded: Equatable {
        var output: [UInt8]
        var consumed: Int
    }

    /// Why a member could not be decompressed. The caller knows the offset and adds it.
    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// Size of the scratch buffer each decoder writes into before appending to the output.
    private static let chunkSize = 256 * 1024

    /// Decompresses the single gzip member starting at `offset` (zlib `inflate` with automatic
    /// header detection); stops at the end of that member, verifying its CRC-32 and length.
    static func gunzipMember(_ input: [UInt8], at offset: Int) throws(Failure) -> Decoded {
        precondition(offset >= 0 && offset <= input.count, "offset out of range")
        var stream = z_stream()
        guard nns_inflate_init_auto(&stream) == Z_OK else { throw Failure("gzip: inflateInit2 failed") }
        defer { inflateEnd(&stream) }

        var output: [UInt8] = []
        var failure: String?
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        let consumed: Int = input.withUnsafeBufferPointer { inBuffer in
            chunk.withUnsafeMutableBufferPointer { outBuffer in
                guard let base = inBuffer.baseAddress, let outBase = outBuffer.baseAddress else {
                    failure = "gzip: input ends before the member does"
                    return 0
                }
                // avail_in is 32-bit: feed at most 1 GiB at a time.
                var nextUnfed = offset
                while true {
                    if stream.avail_in == 0 && nextUnfed < input.count {
                        let count = min(input.count - nextUnfed, 1 << 30)
                        stream.next_in = UnsafeMutablePointer(mutating: base + nextUnfed)
                        stream.avail_in = uInt(count)
                        nextUnfed += count
                    }
                    stream.next_out = outBase
                    stream.avail_out = uInt(outBuffer.count)
                    let rc = inflate(&stream, Z_NO_FLUSH)
                    let produced = outBuffer.count - Int(stream.avail_out)
                    output.append(contentsOf: UnsafeBufferPointer(start: outBase, count: produced))
                    if rc == Z_STREAM_END { break }
                    if rc == Z_BUF_ERROR || (rc == Z_OK && produced == 0 && stream.avail_in == 0 && nextUnfed == input.count) {
                        failure = "gzip: input ends before the member does (truncated)"
                        break
                    }
                    if rc != Z_OK {
                        let detail = stream.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
                        failure = "gzip: \(detail)"
                        break
                    }
                }
                return nextUnfed - offset - Int(stream.avail_in)
            }
        }
        if let failure { throw Failure(failure) }
        return Decoded(output: output, consumed: consumed)
    }

    /// Decompresses the single xz stream starting at `offset` (liblzma's stream decoder without
    /// `LZMA_CONCATENATED`, so it stops after this stream's footer and leaves any stream padding).
    static func unxzStream(_ input: [UInt8], at offset: Int) throws(Failure) -> Decoded {
        precondition(offset >= 0 && offset <= input.count, "offset out of range")
        var stream = lzma_stream()
        nns_lzma_stream_init(&stream)
        guard lzma_stream_decoder(&stream, UInt64.max, 0) == LZMA_OK else {
            throw Failure("xz: lzma_stream_decoder failed")
        }
        defer { lzma_end(&stream) }

        var output: [UInt8] = []
        var failure: String?
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        let consumed: Int = input.withUnsafeBufferPointer { inBuffer in
            chunk.withUnsafeMutableBufferPointer { outBuffer in
                guard let base = inBuffer.baseAddress, let outBase = outBuffer.baseAddress else {
                    failure = "xz: input ends before the stream does"
                    return 0
                }
                stream.next_in = base + offset
                stream.avail_in = input.count - offset
                while true {
                    stream.next_out = outBase
                    stream.avail_out = outBuffer.count
                    let rc = lzma_code(&stream, LZMA_RUN)
                    let produced = outBuffer.count - stream.avail_out
                    output.append(contentsOf: UnsafeBufferPointer(start: outBase, count: produced))
                    if rc == LZMA_STREAM_END { break }
                    if rc == LZMA_OK { continue }
                    failure = "xz: " + Self.describe(rc)
                    break
                }
                return input.count - offset - stream.avail_in
            }
        }
        if let failure { throw Failure(failure) }
        return Decoded(output: output, consumed: consumed)
    }

    /// Decompresses the single zstd frame starting at `offset` (`ZSTD_decompressStream` until it
    /// returns 0, which it does exactly at the end of a frame, fully flushed).
    static func unzstdFrame(_ input: [UInt8], at offset: Int) throws(Failure) -> Decoded {
        precondition(offset >= 0 && offset <= input.count, "offset out of range")
        guard let dstream = ZSTD_createDStream() else { throw Failure("zstd: ZSTD_createDStream failed") }
        defer { ZSTD_freeDStream(dstream) }
        guard ZSTD_isError(ZSTD_initDStream(dstream)) == 0 else { throw Failure("zstd: ZSTD_initDStream failed") }

        var output: [UInt8] = []
        var failure: String?
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        let consumed: Int = input.withUnsafeBufferPointer { inBuffer in
            chunk.withUnsafeMutableBufferPointer { outBuffer in
                guard let base = inBuffer.baseAddress, let outBase = outBuffer.baseAddress else {
                    failure = "zstd: input ends before the frame does"
                    return 0
                }
                var source = ZSTD_inBuffer(src: UnsafeRawPointer(base + offset), size: input.count - offset, pos: 0)
                while true {
                    var sink = ZSTD_outBuffer(dst: UnsafeMutableRawPointer(outBase), size: outBuffer.count, pos: 0)
                    let rc = ZSTD_decompressStream(dstream, &sink, &source)
                    if ZSTD_isError(rc) != 0 {
                        failure = "zstd: " + String(cString: ZSTD_getErrorName(rc))
                        break
                    }
                    output.append(contentsOf: UnsafeBufferPointer(start: outBase, count: sink.pos))
                    if rc == 0 { break }
                    // Not finished: either the output chunk was full (go round again) or the input ran out.
                    if source.pos == source.size && sink.pos < sink.size {
                        failure = "zstd: input ends before the frame does (truncated)"
                        break
                    }
                }
                return source.pos
            }
        }
        if let failure { throw Failure(failure) }
        return Decoded(output: output, consumed: consumed)
    }

    private static func describe(_ rc: lzma_ret) -> String {
        switch rc {
        case LZMA_BUF_ERROR: return "input ends before the stream does (truncated)"
        case LZMA_DATA_ERROR: return "compressed data is corrupt (LZMA_DATA_ERROR)"
        case LZMA_FORMAT_ERROR: return "not an xz stream (LZMA_FORMAT_ERROR)"
        case LZMA_OPTIONS_ERROR: return "unsupported options (LZMA_OPTIONS_ERROR)"
        case LZMA_MEM_ERROR: return "out of memory (LZMA_MEM_ERROR)"
        case LZMA_MEMLIMIT_ERROR: return "memory limit reached (LZMA_MEMLIMIT_ERROR)"
        default: return "liblzma error \(rc.rawValue)"
        }
    }
}
