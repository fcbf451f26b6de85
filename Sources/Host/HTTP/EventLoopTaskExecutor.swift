import NIOCore

/// Runs tasks on a connection's event loop.
///
/// A response body that streams cached files spends most of its time handing chunks between
/// threads: the file thread, the task's thread, the event loop. Run on the event loop itself, the
/// loop reads a chunk (from the page cache), writes it and waits for the flush without leaving it.
package final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    package let eventLoop: any EventLoop

    package init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    package func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        eventLoop.execute { job.runSynchronously(on: executor) }
    }
}
