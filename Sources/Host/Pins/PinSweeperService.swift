import ServiceLifecycle

/// Runs ``GCRootPins/sweep()`` at start-up and then periodically, for as long as the server runs.
package struct PinSweeperService: Service {
    package let pins: GCRootPins
    package let interval: Duration

    package init(pins: GCRootPins, interval: Duration) {
        self.pins = pins
        self.interval = interval
    }

    package func run() async throws {
        await cancelWhenGracefulShutdown {
            await pins.runSweeper(every: interval)
        }
    }
}
