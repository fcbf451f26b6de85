/// A stream compressor whose output the Linux kernel can unpack inside an initramfs.
///
/// Codecs live in their own module and are registered with the host; the host only ever sees this
/// protocol. Output must be a pure function of (input, level): the encoder may choose its parallel
/// mode from the input size, and then use any number of workers, but its bytes never depend on load,
/// on the worker count or on the machine's core count.
public protocol Compressor: Sendable {
    /// The name used on the command line and in cache file names, e.g. `"zstd"`.
    var name: String { get }
    /// The level used when the operator names none.
    var defaultLevel: Int { get }
    /// The levels this codec accepts.
    var levels: ClosedRange<Int> { get }
    /// A fresh encoder for one complete stream (one gzip member, xz stream or zstd frame).
    /// - Parameters:
    ///   - level: an already validated level.
    ///   - inputSize: exactly how many bytes will be fed, which lets the codec choose its parallel
    ///     mode or size its tables (feeding another number of bytes is an error).
    ///   - workers: how many threads the codec may use for this stream if it compresses it in a
    ///     parallel mode (at least 1). The output must be the same for every value.
    func makeEncoder(level: Int, inputSize: UInt64, workers: Int) throws -> any CompressionEncoder
}

extension Compressor {
    /// An encoder that may use one worker thread in a parallel mode.
    public func makeEncoder(level: Int, inputSize: UInt64) throws -> any CompressionEncoder {
        try makeEncoder(level: level, inputSize: inputSize, workers: 1)
    }

    /// Checks a level against ``levels``, falling back to ``defaultLevel``.
    public func validatedLevel(_ level: Int?) throws(CompressionError) -> Int {
        guard let level else { return defaultLevel }
        guard levels.contains(level) else {
            throw CompressionError(
                "\(name) takes levels \(levels.lowerBound) to \(levels.upperBound), not \(level)")
        }
        return level
    }
}

/// One compression stream: feed it bytes, then finish it. Used from a single thread.
public protocol CompressionEncoder: AnyObject {
    /// Compresses `input`, handing every produced chunk to `output`.
    func compress(_ input: UnsafeRawBufferPointer, output: (UnsafeRawBufferPointer) throws -> Void) throws
    /// Ends the stream, handing the remaining bytes to `output`.
    func finish(output: (UnsafeRawBufferPointer) throws -> Void) throws
}

/// A failure inside a codec, with the library's own words.
public struct CompressionError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
