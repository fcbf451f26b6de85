/// Packs one store path into a compressed newc archive: the path's entries, its registration and a
/// trailer, as one or more independently compressed members (gzip members, xz streams or zstd
/// frames) cut by an ``ArchiveMemberPlan``.
///
/// The output is a pure function of (path contents, registration, codec, level): the cut points
/// come from the entries, and a codec's parallel mode from a member's size alone, whatever
/// ``workers`` is.
package struct StorePathPacker: Sendable {
    package var compressor: any Compressor
    package var level: Int
    /// Where the store paths are read from: `/nix/store`, or a stand-in directory in tests. The
    /// archive names them `nix/store/NAME` either way.
    package var storeDirectory: String
    /// Threads a codec may use for one member in its parallel mode (a single large file).
    package var workers: Int

    package init(compressor: any Compressor, level: Int, storeDirectory: String = StorePath.storeDirectory, workers: Int = 1) {
        self.compressor = compressor
        self.level = level
        self.storeDirectory = storeDirectory
        self.workers = max(1, workers)
    }

    /// Walks `path` and cuts its archive into members. Blocking (one `lstat` per entry).
    package func plan(_ path: StorePath, registration: [UInt8]) throws -> PackingPlan {
        let entries = try StorePathArchiver.walk(diskPath: storeDirectory + "/" + path.name, archiveName: String(path.absolutePath.dropFirst()))
        let registrationName = InitrdLayout.registrationName(path)
        let members = ArchiveMemberPlan(
            entries: entries, registrationNameLength: registrationName.count, registrationSize: UInt64(registration.count))
        return PackingPlan(packer: self, entries: entries, registrationName: registrationName, registration: registration, members: members)
    }

    /// Packs `path` with its `registration` into `sink`, member after member. Blocking: call it off
    /// the cooperative pool.
    package func pack<Sink: ArchiveSink>(_ path: StorePath, registration: [UInt8], into sink: Sink) throws -> Sink {
        let plan = try plan(path, registration: registration)
        var sink = sink
        for index in plan.members.members.indices { sink = try plan.pack(member: index, into: sink) }
        return sink
    }
}

/// A store path's archive cut into members, ready to be compressed one by one (each on any thread).
package struct PackingPlan: Sendable {
    let packer: StorePathPacker
    let entries: [StorePathArchiver.Entry]
    let registrationName: [UInt8]
    let registration: [UInt8]
    package let members: ArchiveMemberPlan

    /// Compresses member `index` into `sink`, reading its files. Blocking.
    package func pack<Sink: ArchiveSink>(member index: Int, into sink: Sink) throws -> Sink {
        let member = members.members[index]
        let encoder = try packer.compressor.makeEncoder(level: packer.level, inputSize: member.size, workers: packer.workers)
        // Inode numbers continue across members, so the joined members equal the one-stream archive.
        var writer = NewcWriter(sink: CompressingSink(encoder: encoder, output: sink), firstInode: UInt32(member.entries.lowerBound + 1))
        try StorePathArchiver.write(entries[member.entries], into: &writer)
        var compressing: CompressingSink<Sink>
        if member.isLast {
            try writer.appendFile(registrationName, mode: 0o444, contents: registration)
            compressing = try writer.finish()
        } else {
            compressing = try writer.finishWithoutTrailer()
        }
        guard writer.bytesWritten == member.size else {
            throw ArchiveError.sizeChanged(expected: member.size, actual: writer.bytesWritten)
        }
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
