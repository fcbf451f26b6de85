#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs blocking work (a libcurl transfer) on a thread of its own, away from Swift's cooperative pool
/// and from NIO's shared thread pool, so a slow Hydra holds up neither the event loops nor file I/O.
///
/// One short-lived thread per call, which ends before the call returns. The callers bound how many
/// run at once: the Hydra source's lookups are at most `--max-hydra-lookups`, and a cancelled lookup
/// keeps its place until its transfer has stopped, so the threads are bounded by that flag.
enum DedicatedThread {
    /// The thread could not be started (the process is out of threads or memory).
    struct StartError: Error, CustomStringConvertible {
        var code: Int32
        var description: String { "could not start a thread (error \(code))" }
    }

    /// Runs `work` on a new thread and returns its result.
    static func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let job = Unmanaged.passRetained(Job { continuation.resume(returning: work()) })
            #if os(Linux)
            var thread = pthread_t()
            #else
            var thread: pthread_t? = nil
            #endif
            let code = pthread_create(&thread, nil, { argument in
                Unmanaged<Job>.fromOpaque(DedicatedThread.unwrapped(argument)).takeRetainedValue().body()
                return nil
            }, job.toOpaque())
            guard code == 0 else {
                job.release()
                continuation.resume(throwing: StartError(code: code))
                return
            }
            #if os(Linux)
            pthread_detach(thread)
            #else
            if let thread { pthread_detach(thread) }
            #endif
        }
    }

    /// The work handed to the thread, kept alive by an unmanaged reference until the thread takes it.
    private final class Job: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    /// The thread argument is optional on Linux and not on Darwin; this accepts both.
    private static func unwrapped(_ pointer: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer { pointer! }
}
