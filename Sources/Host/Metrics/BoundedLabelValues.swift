import Synchronization

/// Keeps a label's values few: the first `limit` distinct values are kept as they are, every later
/// one becomes ``overflow``. Values longer than ``maximumLength`` bytes are cut.
///
/// For labels whose values come from outside the code — machine rule names (files the operator
/// writes) or route templates — so that no series can be created without bound. A pure value: the
/// caller owns the synchronisation (see ``SharedBoundedLabelValues``).
package struct BoundedLabelValues: Sendable {
    /// What values past the limit are recorded as.
    package static let overflow = "other"
    /// The longest value kept, in UTF-8 bytes.
    package static let maximumLength = 100

    package let limit: Int
    private(set) package var admitted: Set<String> = []

    package init(limit: Int) {
        self.limit = max(0, limit)
    }

    /// The label value to record for `value`: itself while there is room (or once it was admitted),
    /// ``overflow`` after that.
    package mutating func admit(_ value: String) -> String {
        let value = Self.shortened(value)
        if admitted.contains(value) { return value }
        guard admitted.count < limit, value != Self.overflow else { return Self.overflow }
        admitted.insert(value)
        return value
    }

    /// `value` cut to at most ``maximumLength`` UTF-8 bytes, on a character boundary.
    static func shortened(_ value: String) -> String {
        guard value.utf8.count > maximumLength else { return value }
        var result = ""
        for character in value {
            guard result.utf8.count + character.utf8.count <= maximumLength else { break }
            result.append(character)
        }
        return result
    }
}

/// ``BoundedLabelValues`` shared between threads.
package final class SharedBoundedLabelValues: Sendable {
    private let values: Mutex<BoundedLabelValues>

    package init(limit: Int) {
        values = Mutex(BoundedLabelValues(limit: limit))
    }

    /// See ``BoundedLabelValues/admit(_:)``.
    package func admit(_ value: String) -> String {
        values.withLock { $0.admit(value) }
    }
}
