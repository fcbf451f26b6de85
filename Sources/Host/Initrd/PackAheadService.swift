import Logging
import ServiceLifecycle
import Synchronization

/// Packs the initrd of a system ahead of its request, while iPXE fetches the script and the kernel.
///
/// ``request(_:)`` never waits: it hands the system to the service through a bounded stream and
/// drops it if that system is already pending or being packed, or if the stream is full (a pass is
/// only a head start; the initrd request packs whatever is still missing). The passes run as child
/// tasks of ``run()``, one per system at a time, and are cancelled when the service shuts down.
package final class PackAheadService: Service, Sendable {
    /// Most systems waiting for their pass.
    package static let maximumPending = 64

    private let assembler: InitrdAssembler
    private let logger: Logger
    /// Systems pending or being packed.
    private let wanted = Mutex<Set<StorePath>>([])
    private let requests: AsyncStream<StorePath>
    private let requestContinuation: AsyncStream<StorePath>.Continuation

    package init(assembler: InitrdAssembler, logger: Logger) {
        self.assembler = assembler
        self.logger = logger
        (requests, requestContinuation) = AsyncStream.makeStream(of: StorePath.self, bufferingPolicy: .bufferingOldest(Self.maximumPending))
    }

    /// Asks for a pass over `system`; returns at once. False if it was dropped (a pass for it is
    /// pending or running, too many are pending, or the service has stopped).
    @discardableResult
    package func request(_ system: StorePath) -> Bool {
        guard wanted.withLock({ $0.insert(system).inserted }) else { return false }
        switch requestContinuation.yield(system) {
        case .enqueued:
            return true
        case .dropped, .terminated:
            _ = wanted.withLock { $0.remove(system) }
            return false
        @unknown default:
            _ = wanted.withLock { $0.remove(system) }
            return false
        }
    }

    /// Systems pending or being packed now.
    package var pendingCount: Int { wanted.withLock { $0.count } }

    package func run() async throws {
        await withDiscardingTaskGroup { group in
            for await system in requests.cancelOnGracefulShutdown() {
                group.addTask { await self.pass(system) }
            }
            group.cancelAll()
        }
        requestContinuation.finish()
    }

    private func pass(_ system: StorePath) async {
        defer { _ = wanted.withLock { $0.remove(system) } }
        do {
            await (try await assembler.initrd(for: system)).release()
        } catch is CancellationError {
            return
        } catch {
            logger.warning("packing ahead failed", metadata: ["path": "\(system.name)", "error": "\(error)"])
        }
    }
}
