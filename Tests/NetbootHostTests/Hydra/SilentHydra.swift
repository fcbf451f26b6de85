import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A Hydra that accepts connections on 127.0.0.1 and never answers, and counts the connections it
/// accepted and those its clients closed. A thread of its own polls the sockets.
final class SilentHydra: Sendable {
    /// Connections accepted and connections the client closed, so far.
    struct Counts: Sendable, Equatable {
        var accepted = 0
        var closed = 0
    }

    let port: Int
    var baseURL: String { "http://127.0.0.1:\(port)" }
    var counts: Counts { state.withLock { $0 } }

    private let listener: Int32
    private let state = Mutex(Counts())
    private let stopping = Atomic<Bool>(false)
    private let stopped = DispatchSemaphore(value: 0)

    /// Starts listening on an ephemeral port.
    init() throws {
        let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard socketFD >= 0 else { throw ShellError(description: "socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr = in_addr(s_addr: inet_addr("127.0.0.1"))
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bind(socketFD, socketAddress, length) == 0 && listen(socketFD, 1024) == 0
                    && getsockname(socketFD, socketAddress, &length) == 0
            }
        }
        guard bound else {
            close(socketFD)
            throw ShellError(description: "bind/listen: errno \(errno)")
        }
        listener = socketFD
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in serve() }
    }

    /// Closes every socket and waits for the polling thread to end.
    func stop() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        stopped.wait()
    }

    /// Accepts, reads and discards, and notices closed connections, until stopped.
    private func serve() {
        var connections: [Int32] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !stopping.load(ordering: .acquiring) {
            var polled = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
                + connections.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            guard poll(&polled, nfds_t(polled.count), 50) > 0 else { continue }
            var open: [Int32] = []
            for entry in polled.dropFirst() {
                if entry.revents != 0 {
                    let count = read(entry.fd, &buffer, buffer.count)
                    if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) {
                        close(entry.fd)
                        state.withLock { $0.closed += 1 }
                        continue
                    }
                }
                open.append(entry.fd)
            }
            if polled[0].revents & Int16(POLLIN) != 0 {
                while true {
                    // Read only when poll says so: the accepted socket may block.
                    let accepted = accept(listener, nil, nil)
                    guard accepted >= 0 else { break }
                    _ = fcntl(accepted, F_SETFD, FD_CLOEXEC)
                    open.append(accepted)
                    state.withLock { $0.accepted += 1 }
                }
            }
            connections = open
        }
        for connection in connections { close(connection) }
        close(listener)
        stopped.signal()
    }

    /// Runs `body` with a started silent Hydra and stops it afterwards.
    static func with<T>(_ body: (SilentHydra) async throws -> T) async throws -> T {
        let hydra = try SilentHydra()
        defer { hydra.stop() }
        return try await body(hydra)
    }
}

/// Threads and open file descriptors of a process (`/proc/PID/task`, `/proc/PID/fd`).
struct ProcessLoad: Equatable, CustomStringConvertible {
    var threads: Int
    var files: Int

    /// Now, for `pid` (`self` for this process).
    static func of(_ pid: String = "self") -> ProcessLoad {
        func count(_ directory: String) -> Int { (try? FileManager.default.contentsOfDirectory(atPath: directory).count) ?? -1 }
        return ProcessLoad(threads: count("/proc/\(pid)/task"), files: count("/proc/\(pid)/fd"))
    }

    var description: String { "\(threads) threads, \(files) fds" }
}
