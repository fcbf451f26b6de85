#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NIOCore
import NIOPosix
import Synchronization

/// Lets work running on an event loop wait until the loop has polled for I/O once more.
///
/// NIO runs every task that is ready before it polls again. Response bodies that read, write and
/// go on on the loop can therefore keep it from accepting connections and reading requests for
/// seconds when their clients read as fast as the server writes (measured: 200 downloads on two
/// loops, a tenth of the requests first read after 7 s, some cut by the 5 s idle deadline). A body
/// that awaits ``next()`` after each chunk goes on only after the loop's next poll: the first waiter
/// of a turn writes a byte to a pipe that the loop watches like any socket, and reading it resumes
/// every waiter. So each turn of the loop serves new connections, requests and one chunk of each
/// body in flight.
package final class EventLoopTurns: @unchecked Sendable {
    let eventLoop: any EventLoop
    /// The pipe's write end; -1 once the loop stopped watching it (or never did).
    private var wakeDescriptor: Int32
    /// Bodies waiting for the next poll. Touched on the loop's thread only.
    private var waiters: [CheckedContinuation<Void, Never>] = []

    private init(eventLoop: any EventLoop, wakeDescriptor: Int32) {
        self.eventLoop = eventLoop
        self.wakeDescriptor = wakeDescriptor
    }

    /// The turns of every loop, set up on first use: one pipe per loop for as long as it runs.
    private static let known = Mutex<[ObjectIdentifier: EventLoopFuture<EventLoopTurns>]>([:])

    /// The turns of `eventLoop`. On a loop that cannot watch a pipe (an embedded loop in tests) the
    /// turns degrade to a plain hop through the loop's task queue.
    package static func of(_ eventLoop: any EventLoop) async -> EventLoopTurns {
        let future = known.withLock { table in
            if let existing = table[ObjectIdentifier(eventLoop)] { return existing }
            let made = make(on: eventLoop)
            table[ObjectIdentifier(eventLoop)] = made
            return made
        }
        return (try? await future.get()) ?? EventLoopTurns(eventLoop: eventLoop, wakeDescriptor: -1)
    }

    private static func make(on eventLoop: any EventLoop) -> EventLoopFuture<EventLoopTurns> {
        var ends: [Int32] = [-1, -1]
        guard let bootstrap = NIOPipeBootstrap(validatingGroup: eventLoop), pipe(&ends) == 0 else {
            return eventLoop.makeSucceededFuture(EventLoopTurns(eventLoop: eventLoop, wakeDescriptor: -1))
        }
        _ = fcntl(ends[1], F_SETFL, fcntl(ends[1], F_GETFL) | O_NONBLOCK)
        _ = fcntl(ends[1], F_SETFD, FD_CLOEXEC)
        _ = fcntl(ends[0], F_SETFD, FD_CLOEXEC)
        let turns = EventLoopTurns(eventLoop: eventLoop, wakeDescriptor: ends[1])
        let readEnd = ends[0]
        return bootstrap
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(WakeHandler(turns: turns)) }
            }
            .takingOwnershipOfDescriptor(input: readEnd)
            .map { _ in turns }
            .flatMapErrorThrowing { _ in
                close(readEnd)
                turns.stopWatching()
                return turns
            }
    }

    /// Returns after the loop polled for I/O once more (or after one hop through its task queue
    /// when the caller is not on the loop or the loop watches no pipe).
    package func next() async {
        guard wakeDescriptor >= 0, eventLoop.inEventLoop else {
            _ = try? await eventLoop.submit {}.get()
            return
        }
        await withCheckedContinuation { continuation in
            waiters.append(continuation)
            if waiters.count == 1 {
                var byte: UInt8 = 1
                if write(wakeDescriptor, &byte, 1) < 0 && errno != EAGAIN { resumeWaiters() }
            }
        }
    }

    /// The loop read the pipe: every waiter goes on.
    fileprivate func resumeWaiters() {
        let ready = waiters
        waiters.removeAll(keepingCapacity: true)
        for waiter in ready { waiter.resume() }
    }

    /// The loop no longer watches the pipe (it is shutting down): waiters go on, later ones hop.
    fileprivate func stopWatching() {
        if wakeDescriptor >= 0 { close(wakeDescriptor) }
        wakeDescriptor = -1
        resumeWaiters()
    }

    /// Reads the pipe in the loop's I/O phase.
    private final class WakeHandler: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let turns: EventLoopTurns

        init(turns: EventLoopTurns) { self.turns = turns }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) { turns.resumeWaiters() }

        func channelInactive(context: ChannelHandlerContext) { turns.stopWatching() }
    }
}
