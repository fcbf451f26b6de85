/// Packs one store path into one compressed newc archive: the path's entries, its registration,
/// a trailer, all compressed as a single stream (one gzip member, xz stream or zstd frame).
///
/// The output is a pure function of (path contents, registration, codec, level): threading inside the
/// codec is chosen from the input size alone.
package struct StorePathPacker: Sendable {
    package var compressor: any Compressor
    package var level: Int
    /// Where the store paths are read from: `/nix/store`, or a stand-in directory in tests. The
    /// archive names them `nix/store/NAME` either way.
    package var storeDirectory: String

    package init(compressor: any Compressor, level: Int, storeDirectory: String = StorePath.storeDirectory) {
        self.compressor = compressor
        self.level = level
        self.storeDirectory = storeDirectory
    }

    /// Packs `path` with its `registration` into `sink`. Blocking: call it off the cooperative pool.
    package func pack<Sink: ArchiveSink>(_ path: StorePath, registration: [UInt8], into sink: Sink) throws -> Sink {
        let entries = try StorePathArchiver.walk(diskPath: storeDirectory + "/" + path.name, archiveName: String(path.absolutePath.dropFirst()))
        let registrationName = InitrdLayout.registrationName(path)
        let size = StorePathArchiver.archiveSize(of: entries, plusFiles: [(registrationName.count, UInt64(registration.count))])
        let encoder = try compressor.makeEncoder(level: level, inputSize: size)
        var writer = NewcWriter(sink: CompressingSink(encoder: encoder, output: sink))
        try StorePathArchiver.write(entries, into: &writer)
        try writer.appendFile(registrationName, mode: 0o444, contents: registration)
        var compressing = try writer.finish()
        return try compressing.finish()
    }
}

/// An ``ArchiveSink`` that compresses everything written to it into another sink.
package struct CompressingSink<Output: ArchiveSink>: ArchiveSink {
    let encoder: any CompressionEncoder
    var output: Output

    package init(encoder: any CompressionEncoder, output: Output) {
        self.encoder = encoder
        self.output = output
    }

    package mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        try encoder.compress(bytes) { try output.write($0) }
    }

    /// Ends the compressed stream and returns the output sink.
    package mutating func finish() throws -> Output {
        try encoder.finish { try output.write($0) }
        return output
    }
}
