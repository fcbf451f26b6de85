#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import ArgumentParser
import Logging
import NetbootKit
import Synchronization

/// `/dispatch/machine?mac=…&uuid=…`: picks the machine's rule in the machines directory and boots
/// what its `boot` names, through the other sources, with the rule's kernel arguments and files.
///
/// `/boot.ipxe` is the one URL to give every machine. Rules are read at every request (see
/// ``RuleDirectory``); a machine no rule matches, or two rules match equally, is told so and asks
/// again after ``MachineScripts/waitSeconds``.
public struct MachineSource: BootSourceModule {
    /// The source's command-line options.
    public struct Options: ParsableArguments, Sendable {
        @Option(help: "Directory of machine rules, NAME.json each (default: STATE_DIR/machines; machine booting is on when it exists).")
        public var machinesDir: String?

        public init() {}
    }

    public let directory: RuleDirectory
    public let logger: Logger
    let boots: BootLog
    /// Seconds since the epoch, for boot records (a test may fix it).
    let now: @Sendable () -> Int

    public init(options: Options, context: SourceContext) {
        self.init(directory: context.directory(options.machinesDir, default: "machines"), logger: context.logger)
    }

    public init(directory: String, logger: Logger, limits: RuleLimits = .standard, records: Int = 256, now: @escaping @Sendable () -> Int = { Int(time(nil)) }) {
        self.directory = RuleDirectory(path: directory, limits: limits, logger: logger)
        self.logger = logger
        self.boots = BootLog(capacity: records)
        self.now = now
    }

    public var name: String { "machine" }
    public var acceptsEmptyPath: Bool { true }

    public var notConfiguredReason: String? {
        directory.exists ? nil : "machine booting is not configured on this server (create STATE_DIR/machines, or give --machines-dir)"
    }

    public var scripts: [SourceScript] {
        [SourceScript(path: "boot.ipxe") { query in MachineScripts.entry(query: query) }]
    }

    /// The rules now, each `boot` checked against the server's other sources.
    func rules(_ router: any DispatchRouter) throws -> RuleSet {
        do { return try directory.load(sourceNames: router.sourceNames.filter { $0 != name }) } catch {
            logger.error("machines directory unreadable", metadata: ["directory": "\(directory.path)", "error": "\(error)"])
            throw DispatchError.upstreamFailed("the machines directory cannot be read (details in the server log)")
        }
    }

    public func resolve(_ request: DispatchRequest) async throws -> Resolution {
        guard request.segments.isEmpty else { throw DispatchError.badRequest("expected /dispatch/machine?mac=…&uuid=… (see /boot.ipxe)") }
        guard let router = request.router else { throw DispatchError.upstreamFailed("the machine source needs the server's other sources") }
        let machine = try MachineIdentity.from(query: request.query)
        let set = try rules(router)
        switch set.match(machine) {
        case .none:
            logger.notice("no machine rule matches", metadata: [
                "machine": "\(machine.label)", "uuid": "\(machine.values[.uuid] ?? "-")", "client": "\(request.client ?? "-")",
                "create": "\(directory.path)/\(MachineScripts.suggestedFile(machine))",
            ])
            return .waitAndRetry(lines: MachineScripts.unknownMachine(machine), seconds: MachineScripts.waitSeconds)
        case .tie(let names):
            logger.error("machine rules tie", metadata: [
                "machine": "\(machine.label)", "files": "\(names.map { directory.path + "/" + $0 + ".json" }.joined(separator: " "))",
            ])
            return .waitAndRetry(lines: MachineScripts.tie(machine, rules: names), seconds: MachineScripts.waitSeconds)
        case .rule(let rule):
            let answer = try await router.resolve(source: rule.bootSource, DispatchRequest(segments: rule.bootSegments, query: request.query, client: request.client))
            switch answer {
            case .storePath(let path), .boot(let path, _):
                logger.info("machine boots", metadata: ["machine": "\(machine.label)", "rule": "\(rule.name)", "path": "\(path.name)"])
                let record = BootRecords.Record(time: now(), client: request.client ?? "-", rule: rule.name, path: path.name)
                boots.records.withLock { $0.record(machine.label, record) }
                return .boot(path, additions: rule.additions)
            case .retryLater, .failed, .waitAndRetry:
                return answer
            }
        }
    }

    public func additions(forKey key: String, router: any DispatchRouter) async throws -> BootAdditions? {
        try rules(router).rule(named: key)?.additions
    }

    public func statusLines(router: any DispatchRouter) async -> [String] {
        guard directory.exists, let set = try? rules(router) else { return [] }
        return set.rules.map(RuleText.status) + set.invalid.map { RuleText.status(invalidFile: $0.file, reason: $0.reason) }
            + boots.records.withLock { $0.latestFirst }.map { RuleText.status(machine: $0.machine, record: $0.record) }
    }
}

extension MachineSource {
    public static var optionsTitle: String { "Machine source" }
}

/// The source's ``BootRecords``, shared by its copies.
final class BootLog: Sendable {
    let records: Mutex<BootRecords>
    init(capacity: Int) { records = Mutex(BootRecords(capacity: capacity)) }
}
