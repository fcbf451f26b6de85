import Synchronization

/// Where a packing writes its archive: the temporary file's ``FileDescriptorSink``, which stops the
/// packing (throws `CancellationError`) once the packing is cancelled, so a blocking producer on a
/// thread pool ends within one write of a shutdown.
package struct PackingSink: ArchiveSink {
    package private(set) var file: FileDescriptorSink
    let cancellation: PackingCancellation

    init(file: FileDescriptorSink, cancellation: PackingCancellation) {
        self.file = file
        self.cancellation = cancellation
    }

    package mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        if cancellation.isCancelled { throw CancellationError() }
        try file.write(bytes)
    }
}

/// A flag a packing's task sets when it is cancelled, read by the packing's thread.
final class PackingCancellation: Sendable {
    private let cancelled = Atomic<Bool>(false)

    var isCancelled: Bool { cancelled.load(ordering: .relaxed) }

    func cancel() { cancelled.store(true, ordering: .relaxed) }
}
