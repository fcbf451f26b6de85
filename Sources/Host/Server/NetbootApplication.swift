import Logging
import ServiceLifecycle
import UnixSignals

/// The server as it runs: the HTTP server and every background service under one lifecycle.
///
/// On graceful shutdown (SIGTERM or SIGINT with ``runService(gracefulShutdownSignals:)``) the
/// services stop in reverse order: first the background work (its jobs are cancelled, which ends
/// the Nix processes they run, and whoever waits for them is answered), then the HTTP server
/// (``GracefulHTTPService``: no new connections, responses in flight get the grace period, then
/// their connections are closed), then the rest; thread pools are shut down by the services that
/// own them.
package struct NetbootApplication: Service {
    /// Services that outlive the HTTP server (stopped last).
    package let foundation: [any Service]
    package let http: GracefulHTTPService
    /// Background work (stopped first).
    package let background: [any Service]
    package let logger: Logger

    package init(foundation: [any Service], http: GracefulHTTPService, background: [any Service], logger: Logger) {
        self.foundation = foundation
        self.http = http
        self.background = background
        self.logger = logger
    }

    package func run() async throws {
        try await ServiceGroup(configuration: configuration(signals: [])).run()
    }

    /// Runs until one of `gracefulShutdownSignals`, then shuts down as described above.
    package func runService(gracefulShutdownSignals: [UnixSignal] = [.sigterm, .sigint]) async throws {
        try await ServiceGroup(configuration: configuration(signals: gracefulShutdownSignals)).run()
    }

    private func configuration(signals: [UnixSignal]) -> ServiceGroupConfiguration {
        var configuration = ServiceGroupConfiguration(
            services: foundation + [http] + background, gracefulShutdownSignals: signals, logger: logger)
        // A last resort: the grace period ends the HTTP side; whatever still runs well after it is cancelled.
        configuration.maximumGracefulShutdownDuration = http.grace + .seconds(15)
        return configuration
    }
}
