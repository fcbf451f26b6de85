import NIOCore
import NIOPosix
import NetbootHost
import Synchronization
import XCTest

/// Work that keeps an event loop busy still lets it poll for I/O when it waits for the loop's turns.
final class EventLoopTurnsTests: XCTestCase {
    /// Four endless chains of work on one loop, each awaiting the next turn between its steps (as a
    /// response body does between chunks): a connection to a server on that loop is still accepted.
    /// (With a plain hop through the task queue between steps, NIO runs the chains forever and
    /// never polls: the connection is not accepted at all.)
    func testBusyWorkOnALoopStillLetsItAcceptConnections() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let clients = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let turns = await EventLoopTurns.of(loop)
        let work = WorkState()
        let accepted = loop.makePromise(of: Void.self)
        let server = try await ServerBootstrap(group: loop)
            .childChannelInitializer { _ in
                accepted.succeed()
                return loop.makeSucceededVoidFuture()
            }
            .bind(host: "127.0.0.1", port: 0).get()
        var chains: [Task<Void, Never>] = []
        for _ in 0..<4 {
            chains.append(Task(executorPreference: EventLoopTaskExecutor(eventLoop: loop)) {
                while !work.stop.load(ordering: .relaxed) {
                    let until = ContinuousClock.now + .microseconds(200)
                    while ContinuousClock.now < until {}  // a chunk's worth of work
                    work.steps.add(1, ordering: .relaxed)
                    await turns.next()
                }
            })
        }
        try await Task.sleep(for: .milliseconds(100))
        let client = try await ClientBootstrap(group: clients).connect(to: try XCTUnwrap(server.localAddress)).get()
        let timeout = loop.scheduleTask(in: .seconds(10)) { accepted.fail(ChannelError.connectTimeout(.seconds(10))) }
        do {
            try await accepted.futureResult.get()
        } catch {
            XCTFail("the loop never accepted the connection while the work ran")
        }
        timeout.cancel()
        XCTAssertGreaterThan(work.steps.load(ordering: .relaxed), 10, "the work went on meanwhile")
        work.stop.store(true, ordering: .relaxed)
        for chain in chains { await chain.value }
        try await client.close()
        try await server.close()
        try await clients.shutdownGracefully()
        try await group.shutdownGracefully()
    }
}

/// What the chains of work share with the test.
private final class WorkState: Sendable {
    let stop = Atomic<Bool>(false)
    let steps = Atomic<Int>(0)
}
