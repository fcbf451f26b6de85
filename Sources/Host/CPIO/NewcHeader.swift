/// The 110-byte header of one entry in a newc (`070701`) CPIO archive.
///
/// Thirteen fields of eight ASCII hex digits follow the magic. Names are stored after the header
/// with their NUL and padded so that the data starts on a multiple of 4.
package struct NewcHeader: Equatable, Sendable {
    package static let magic = Array("070701".utf8)
    package static let size = 110
    /// The kernel's limit on a name, NUL included.
    package static let maximumNameSize = 4096
    /// The trailer's name.
    package static let trailerName = Array("TRAILER!!!".utf8)

    package var inode: UInt32 = 0
    package var mode: UInt32 = 0
    package var uid: UInt32 = 0
    package var gid: UInt32 = 0
    package var linkCount: UInt32 = 1
    package var modificationTime: UInt32 = 0
    package var fileSize: UInt32 = 0
    package var deviceMajor: UInt32 = 0
    package var deviceMinor: UInt32 = 0
    package var specialDeviceMajor: UInt32 = 0
    package var specialDeviceMinor: UInt32 = 0
    /// Length of the name including its NUL.
    package var nameSize: UInt32 = 0

    package init() {}

    /// Appends the header (the checksum field is always 0 in newc).
    package func encode(into buffer: inout [UInt8]) {
        buffer.append(contentsOf: Self.magic)
        for field in [
            inode, mode, uid, gid, linkCount, modificationTime, fileSize, deviceMajor, deviceMinor,
            specialDeviceMajor, specialDeviceMinor, nameSize, 0,
        ] {
            Self.appendHex(field, to: &buffer)
        }
    }

    static let hexDigits = Array("0123456789ABCDEF".utf8)

    static func appendHex(_ value: UInt32, to buffer: inout [UInt8]) {
        var shift: UInt32 = 28
        while true {
            buffer.append(hexDigits[Int((value >> shift) & 0xF)])
            if shift == 0 { break }
            shift -= 4
        }
    }

    /// Bytes of NUL padding that bring `length` to a multiple of 4.
    package static func padding(after length: Int) -> Int { (4 - length % 4) % 4 }
}
