import Foundation

/// One TCP connection to 127.0.0.1 with blocking reads and writes and a receive timeout: for
/// requests no HTTP client would send (bad framing, NUL bytes, half requests, trickles).
final class RawConnection {
    let fd: Int32

    /// Connects; `receiveBuffer` (set before connecting, so the window is small from the start)
    /// makes a slow reader.
    init(port: Int, receiveTimeout: Double = 10, receiveBuffer: Int32? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ShellError(description: "socket: \(errno)") }
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            throw ShellError(description: "connect: \(errno)")
        }
        var timeout = timeval(tv_sec: Int(receiveTimeout), tv_usec: Int((receiveTimeout - receiveTimeout.rounded(.down)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close(fd) }

    /// Sends all of `bytes`; false if the server closed or reset the connection meanwhile.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return false }
            offset += sent
        }
        return true
    }

    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Everything until the server closes (or the timeout passes, or a reset), and whether it closed.
    func readToEnd() -> (bytes: [UInt8], closed: Bool) {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 { result += buffer[0..<count]; continue }
            return (result, count == 0 || errno == ECONNRESET)
        }
    }

    /// Bytes available within `seconds`, without waiting for the close.
    func readAvailable(waiting seconds: Double) -> [UInt8] {
        var poll = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard Glibc.poll(&poll, 1, Int32(seconds * 1000)) > 0 else { return [] }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        return count > 0 ? Array(buffer[0..<count]) : []
    }
}

/// One HTTP/1.1 response parsed strictly from raw bytes.
struct RawResponse {
    var status: Int
    var headers: [(name: String, value: String)]
    var body: [UInt8]
    /// Bytes after the response (there must be none: one request per connection).
    var trailing: [UInt8]

    func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name.lowercased() }?.value }
    var text: String { String(decoding: body, as: UTF8.self) }

    /// Parses `bytes` as exactly one response; `head` says the request was HEAD (no body whatever
    /// the length). Throws with a reason for anything malformed.
    init(parsing bytes: [UInt8], head: Bool = false) throws {
        guard let end = Self.find([13, 10, 13, 10], in: bytes) else {
            throw ShellError(description: "no complete response head in \(bytes.count) bytes: \(Self.show(bytes))")
        }
        let lines = String(decoding: bytes[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let statusLine = lines[0].split(separator: " ", maxSplits: 2)
        guard statusLine.count >= 2, statusLine[0] == "HTTP/1.1", let status = Int(statusLine[1]), (100...599).contains(status) else {
            throw ShellError(description: "bad status line \(lines[0])")
        }
        self.status = status
        headers = try lines.dropFirst().map { line in
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex else { throw ShellError(description: "bad header line \(line)") }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        let rest = Array(bytes[(end + 4)...])
        if head || status == 304 || status == 204 {
            body = []
            trailing = rest
        } else if let length = headers.first(where: { $0.name.lowercased() == "content-length" }).flatMap({ Int($0.value) }) {
            guard rest.count >= length else { throw ShellError(description: "body of \(rest.count) bytes under Content-Length \(length)") }
            body = Array(rest[..<length])
            trailing = Array(rest[length...])
        } else {
            body = rest  // delimited by the close
            trailing = []
        }
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for index in 0...(haystack.count - needle.count) where haystack[index..<(index + needle.count)].elementsEqual(needle) { return index }
        return nil
    }

    static func show(_ bytes: [UInt8]) -> String {
        String(decoding: bytes.prefix(300), as: UTF8.self).debugDescription
    }
}

/// Sends `request` on a fresh connection, closes the write side and reads the whole answer.
func rawExchange(port: Int, _ request: [UInt8], shutdownWrite: Bool = true, timeout: Double = 10) throws -> (bytes: [UInt8], closed: Bool) {
    let connection = try RawConnection(port: port, receiveTimeout: timeout)
    connection.send(request)
    if shutdownWrite { connection.shutdownWrite() }
    return connection.readToEnd()
}
