import ServiceLifecycle

/// Runs ``GCRootPins/sweep()`` at start-up and then periodically, for as long as the server runs.
public struct PinSweeperService: Service {
    public let pins: GCRootPins
    public let interval: Duration

    public init(pins: GCRootPins, interval: Duration) {
        self.pins = pins
        self.interval = interval
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await pins.runSweeper(every: interval)
        }
    }
}
