/// Where a store path's archive is cut into members that are compressed independently, so that one
/// large path is packed on every core.
///
/// The kernel's cpio parser is back in its reset state after every complete entry, so a compressed
/// member may end after any entry (see `formats.md`). The cut points are a pure function of the
/// path's entries — never of load, `--jobs` or the core count — so the archive's bytes are too: a new
/// member starts before an entry that would take the current one past ``targetBytes`` of archive
/// bytes. A member is therefore at most ``targetBytes`` long unless it holds a single larger entry
/// (a large file, which the codec compresses in its own parallel mode). The registration file and
/// the trailer end the last member. Decompressed and joined, the members are exactly the archive one
/// stream would hold.
package struct ArchiveMemberPlan: Equatable, Sendable {
    /// Archive bytes after which the next entry starts a new member.
    package static let targetBytes: UInt64 = 16 << 20

    /// One member: a run of the path's entries.
    package struct Member: Equatable, Sendable {
        /// Indices into the path's entries.
        package var entries: Range<Int>
        /// Uncompressed bytes of the member, with the registration and the trailer for the last one.
        package var size: UInt64
        /// Whether the member ends the archive (holds the registration and the trailer).
        package var isLast: Bool

        package init(entries: Range<Int>, size: UInt64, isLast: Bool) {
            self.entries = entries
            self.size = size
            self.isLast = isLast
        }
    }

    package private(set) var members: [Member]

    /// Cuts `entries` (in archive order) into members; the last one also holds a registration file
    /// of `registrationSize` bytes named by `registrationNameLength` bytes, and the trailer.
    package init(
        entries: [StorePathArchiver.Entry], registrationNameLength: Int, registrationSize: UInt64,
        targetBytes: UInt64 = ArchiveMemberPlan.targetBytes
    ) {
        var members: [Member] = []
        var start = 0
        var size: UInt64 = 0
        for (index, entry) in entries.enumerated() {
            let entrySize = entry.archiveSize
            if index > start && size + entrySize > targetBytes {
                members.append(Member(entries: start..<index, size: size, isLast: false))
                start = index
                size = 0
            }
            size += entrySize
        }
        let tail = StorePathArchiver.entrySize(nameLength: registrationNameLength, dataSize: registrationSize)
            + StorePathArchiver.trailerSize
        members.append(Member(entries: start..<entries.count, size: size + tail, isLast: true))
        self.members = members
    }

    /// Uncompressed bytes of the whole archive.
    package var totalSize: UInt64 { members.reduce(0) { $0 + $1.size } }
}
