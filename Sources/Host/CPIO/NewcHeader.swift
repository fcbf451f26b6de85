/// The 110-byte header of one entry in a newc (`070701`) CPIO archive.
///
/// Thirteen fields of eight ASCII hex digits follow the magic. Names are stored after the header
/// with their NUL and padded so that the data starts on a multiple of 4.
public struct NewcHeader: Equatable, Sendable {
    public static let magic = Array("070701".utf8)
    public static let size = 110
    /// The kernel's limit on a name, NUL included.
    public static let maximumNameSize = 4096
    /// The trailer's name.
    public static let trailerName = Array("TRAILER!!!".utf8)

    public var inode: UInt32 = 0
    public var mode: UInt32 = 0
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    public var linkCount: UInt32 = 1
    public var modificationTime: UInt32 = 0
    public var fileSize: UInt32 = 0
    public var deviceMajor: UInt32 = 0
    public var deviceMinor: UInt32 = 0
    public var specialDeviceMajor: UInt32 = 0
    public var specialDeviceMinor: UInt32 = 0
    /// Length of the name including its NUL.
    public var nameSize: UInt32 = 0

    public init() {}

    /// Appends the header (the checksum field is always 0 in newc).
    public func encode(into buffer: inout [UInt8]) {
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
    public static func padding(after length: Int) -> Int { (4 - length % 4) % 4 }
}
