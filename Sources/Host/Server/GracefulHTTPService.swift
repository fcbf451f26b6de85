import Logging
import ServiceLifecycle

/// Runs the HTTP server; on graceful shutdown it stops accepting at once (the server's own
/// quiescing), lets responses in flight finish for at most `grace`, then closes the connections
/// still open, so that the server's shutdown ends.
package struct GracefulHTTPService: Service {
    package let http: any Service
    package let connections: InFlightConnections
    package let grace: Duration
    package let logger: Logger

    package init(http: any Service, connections: InFlightConnections, grace: Duration, logger: Logger) {
        self.http = http
        self.connections = connections
        self.grace = grace
        self.logger = logger
    }

    package func run() async throws {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await http.run()
                return true
            }
            group.addTask {
                do {
                    try await gracefulShutdown()
                    let open = connections.count
                    if open > 0 {
                        logger.notice("shutting down: responses in flight may finish", metadata: [
                            "connections": "\(open)", "grace": "\(grace)",
                        ])
                    }
                    try await Task.sleep(for: grace)
                } catch {
                    return false  // the server ended first
                }
                let closed = connections.closeAll()
                if closed > 0 {
                    logger.warning("shutdown grace over: closed connections still open", metadata: ["connections": "\(closed)"])
                }
                return false
            }
            while let serverEnded = try await group.next() {
                if serverEnded { break }
            }
            group.cancelAll()
        }
    }
}
