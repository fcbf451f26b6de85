import Logging
import ServiceLifecycle
import UnixSignals

/// Keeps SIGHUP from killing the server (its default action), which would cut every download.
///
/// The server writes no log file, so there is nothing to reopen: the signal is ignored and logged.
package struct HangupService: Service {
    package let logger: Logger

    package init(logger: Logger) { self.logger = logger }

    package func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            logger.notice("SIGHUP received; ignored (there is no log file to reopen)")
        }
    }
}
