/// The rules of the machines directory as one request sees them, and how a machine picks its rule.
/// Pure: no file system, so matching, ties and defaults are tested on values.
public struct RuleSet: Sendable, Equatable {
    /// The valid rules, by name.
    public var rules: [MachineRule]
    /// Files skipped, with why: `(file name, reason)`, sorted by file name.
    public var invalid: [(file: String, reason: String)]

    public init(rules: [MachineRule], invalid: [(file: String, reason: String)] = []) {
        self.rules = rules.sorted { $0.name < $1.name }
        self.invalid = invalid.sorted { $0.file < $1.file }
    }

    public static func == (a: RuleSet, b: RuleSet) -> Bool {
        a.rules == b.rules && a.invalid.map(\.file) == b.invalid.map(\.file) && a.invalid.map(\.reason) == b.invalid.map(\.reason)
    }

    /// The rule named `name`, if it is valid.
    public func rule(named name: String) -> MachineRule? { rules.first { $0.name == name } }

    /// Which rule `machine` boots by: the matching rule with the most keys; several with that many
    /// is a tie (never a guess); none is ``Match/none``.
    public func match(_ machine: MachineIdentity) -> Match {
        let matching = rules.filter { rule in rule.match.allSatisfy { machine.values[$0.key] == $0.value } }
        guard let best = matching.map(\.match.count).max() else { return .none }
        let top = matching.filter { $0.match.count == best }
        return top.count == 1 ? .rule(top[0]) : .tie(top.map(\.name))
    }

    /// The outcome of ``match(_:)``.
    public enum Match: Sendable, Equatable {
        case rule(MachineRule)
        /// The rules (names, sorted) that match equally well.
        case tie([String])
        case none
    }
}
