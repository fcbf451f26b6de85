/// The last boot of each machine, for `/status`: bounded, since anyone can send any MAC. Pure; the
/// source keeps one behind a lock.
public struct BootRecords: Sendable, Equatable {
    /// One machine's last boot.
    public struct Record: Sendable, Equatable {
        /// Seconds since the epoch.
        public var time: Int
        public var client: String
        public var rule: String
        /// The store path's name (`HASH-NAME`).
        public var path: String

        public init(time: Int, client: String, rule: String, path: String) {
            self.time = time
            self.client = client
            self.rule = rule
            self.path = path
        }
    }

    /// The most machines remembered; a new machine beyond that pushes out the one seen longest ago.
    public let capacity: Int
    private(set) var records: [String: (record: Record, order: Int)] = [:]
    private var counter = 0

    public init(capacity: Int = 256) {
        self.capacity = max(1, capacity)
    }

    public static func == (a: BootRecords, b: BootRecords) -> Bool { a.latestFirst.map(\.machine) == b.latestFirst.map(\.machine) }

    /// Notes `machine`'s boot.
    public mutating func record(_ machine: String, _ record: Record) {
        counter += 1
        if records[machine] == nil, records.count >= capacity,
           let oldest = records.min(by: { $0.value.order < $1.value.order })?.key {
            records[oldest] = nil
        }
        records[machine] = (record, counter)
    }

    /// Every machine remembered with its last boot, the latest first.
    public var latestFirst: [(machine: String, record: Record)] {
        records.sorted { $0.value.order > $1.value.order }.map { ($0.key, $0.value.record) }
    }
}
