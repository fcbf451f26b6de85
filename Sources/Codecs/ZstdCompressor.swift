import CZstd
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NetbootKit
import Synchronization

/// zstd through libzstd: one frame per archive, with its checksum, at levels 1–19 (no long or
/// ultra windows, which the kernel's decoder would refuse).
///
/// The archive's exact size is pledged, so small archives get small tables. Inputs below
/// ``workerModeThreshold`` are compressed single-threaded, with contexts kept and reset between
/// archives instead of being allocated anew for each of hundreds of paths: the host already packs
/// them in parallel. Larger inputs (a single large file, which the host cannot cut) use libzstd's
/// worker mode with a fixed ``jobSize``, whose frame is the same for any number of workers ≥ 1 —
/// but not the same as single-threaded mode's, so such an input always gets at least one worker.
/// One worker-mode frame is compressed at a time: it already uses every worker it is allowed, and
/// each one holds a full set of tables and job buffers (about 100 MB at level 10 with two workers).
public struct ZstdCompressor: Compressor {
    public init() {}
    public var name: String { "zstd" }
    public var defaultLevel: Int { 10 }
    public var levels: ClosedRange<Int> { 1...19 }

    /// Inputs of at least this many bytes are compressed in worker mode.
    public static let workerModeThreshold: UInt64 = 32 << 20
    /// The size of each worker's job: fixed, so the frame is a function of the input alone.
    public static let jobSize: Int32 = 8 << 20

    /// Idle contexts kept for reuse; more packings than this at once allocate their own.
    static let pool = ContextPool(capacity: 8)
    /// Held by the one worker-mode encoder alive; others wait for it (on blocking threads).
    static let workerModeGate = BlockingGate()

    public func makeEncoder(level: Int, inputSize: UInt64, workers: Int) throws -> any CompressionEncoder {
        let level = Int32(try validatedLevel(level))
        let workers = inputSize >= Self.workerModeThreshold ? Int32(max(1, min(workers, 64))) : nil
        return try Encoder(level: level, inputSize: inputSize, workers: workers)
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
        /// Whether the context came from (and goes back to) the pool: worker-mode contexts own
        /// threads and buffers of their own, which are freed with the encoder instead.
        private let pooled: Bool
        private var output = [UInt8](repeating: 0, count: ZSTD_CStreamOutSize())

        /// - Parameter workers: libzstd's worker count (worker mode), or nil for single-threaded mode.
        init(level: Int32, inputSize: UInt64, workers: Int32?) throws {
            if workers != nil { ZstdCompressor.workerModeGate.enter() }
            let context = workers == nil ? ZstdCompressor.pool.take() : ZSTD_createCCtx()
            guard let context else {
                if workers != nil { ZstdCompressor.workerModeGate.leave() }
                throw CompressionError("ZSTD_createCCtx failed")
            }
            self.context = context
            self.pooled = workers == nil
            // A reused context starts from libzstd's defaults again, so output never depends on reuse.
            // (If this throws, deinit hands the context back; the next encoder resets it too.)
            try check(ZSTD_CCtx_reset(context, ZSTD_reset_session_and_parameters))
            try check(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level))
            try check(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1))
            if let workers {
                try check(ZSTD_CCtx_setParameter(context, ZSTD_c_nbWorkers, workers))
                try check(ZSTD_CCtx_setParameter(context, ZSTD_c_jobSize, ZstdCompressor.jobSize))
            }
            // The exact size lets libzstd size its tables to the archive (most store paths are small)
            // and records the size in the frame header.
            try check(ZSTD_CCtx_setPledgedSrcSize(context, inputSize))
        }

        deinit {
            if pooled {
                ZstdCompressor.pool.give(context)
            } else {
                ZSTD_freeCCtx(context)
                ZstdCompressor.workerModeGate.leave()
            }
        }

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

/// Lets one thread at a time through; the others block until it leaves (a POSIX semaphore of one).
final class BlockingGate: @unchecked Sendable {
    private let semaphore = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)

    init() { sem_init(semaphore, 0, 1) }

    deinit {
        sem_destroy(semaphore)
        semaphore.deallocate()
    }

    /// Blocks until the gate is free, then holds it.
    func enter() {
        while sem_wait(semaphore) != 0 && errno == EINTR {}
    }

    /// Frees the gate for the next thread.
    func leave() { sem_post(semaphore) }
}
