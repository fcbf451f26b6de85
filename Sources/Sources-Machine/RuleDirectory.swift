#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging
import NetbootKit
import Synchronization

/// Reads the machines directory at every request: lists it and stats each `NAME.json`, and parses
/// again only the files whose inode, size or modification time changed. So an edit is seen by the
/// next request, with no polling and no restart. A file that cannot be a rule is logged once per
/// change, with its name and the reason.
public final class RuleDirectory: Sendable {
    public let path: String
    let limits: RuleLimits
    let ownSource: String
    let logger: Logger

    /// What a file's stat said when it was parsed, and what parsing gave.
    struct Parsed {
        var stamp: [Int]
        var sourceNames: [String]
        var result: Result<MachineRule, RuleProblem>
    }

    private let parsed = Mutex<[String: Parsed]>([:])

    public init(path: String, limits: RuleLimits = .standard, ownSource: String = "machine", logger: Logger) {
        self.path = path
        self.limits = limits
        self.ownSource = ownSource
        self.logger = logger
    }

    /// Whether the directory exists.
    public var exists: Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }

    /// The rules now, with the files that are not valid rules (among them those whose `boot` names
    /// no source in `sourceNames`). Throws when the directory cannot be listed.
    public func load(sourceNames: [String]) throws -> RuleSet {
        var rules: [MachineRule] = [], invalid: [(String, String)] = []
        var seen: Set<String> = []
        for file in try FileSystem.listDirectory(path).sorted() where file.hasSuffix(".json") && !file.hasPrefix(".") {
            let name = String(file.dropLast(5))
            seen.insert(file)
            switch readRule(file, name: name, sourceNames: sourceNames) {
            case .success(let rule): rules.append(rule)
            case .failure(let problem): invalid.append((file, problem.reason))
            }
        }
        parsed.withLock { parsed in parsed = parsed.filter { seen.contains($0.key) } }
        return RuleSet(rules: rules, invalid: invalid)
    }

    func readRule(_ file: String, name: String, sourceNames: [String]) -> Result<MachineRule, RuleProblem> {
        let full = path + "/" + file
        var info = stat()
        guard stat(full, &info) == 0 else { return .failure(RuleProblem("cannot be read (\(String(cString: strerror(errno))))")) }
        let stamp = [Int(info.st_ino), Int(info.st_size), Int(info.st_mtim.tv_sec), Int(info.st_mtim.tv_nsec), Int(info.st_ctim.tv_sec), Int(info.st_ctim.tv_nsec)]
        if let known = parsed.withLock({ $0[file] }), known.stamp == stamp, known.sourceNames == sourceNames { return known.result }
        var result = parse(full, info: info, name: name)
        if case .success(let rule) = result, !sourceNames.contains(rule.bootSource) {
            result = .failure(RuleProblem(
                "boot names the source '\(rule.bootSource)', which this server does not have (sources: \(sourceNames.joined(separator: ", ")))"))
        }
        parsed.withLock { $0[file] = Parsed(stamp: stamp, sourceNames: sourceNames, result: result) }
        switch result {
        case .success(let rule): logger.info("machine rule loaded", metadata: ["file": "\(full)", "match": "\(RuleText.match(rule))", "boot": "\(rule.boot)"])
        case .failure(let problem): logger.warning("machine rule skipped", metadata: ["file": "\(full)", "reason": "\(problem.reason)"])
        }
        return result
    }

    func parse(_ full: String, info: stat, name: String) -> Result<MachineRule, RuleProblem> {
        guard BootAdditions.isValidKey(name) else {
            return .failure(RuleProblem("the name before .json may hold only letters, digits, '.', '_' and '-'"))
        }
        guard info.st_mode & S_IFMT == S_IFREG else { return .failure(RuleProblem("not a regular file")) }
        guard Int(info.st_size) <= limits.fileBytes else {
            return .failure(RuleProblem("the file is \(info.st_size) bytes; a rule may have at most \(limits.fileBytes)"))
        }
        let bytes: [UInt8]
        do { bytes = try Self.readFile(full, limit: limits.fileBytes + 1) } catch { return .failure(RuleProblem("cannot be read (\(error))")) }
        do { return .success(try RuleParser.parse(bytes, name: name, ownSource: ownSource, limits: limits)) } catch { return .failure(error) }
    }

    /// At most `limit` bytes of the file at `path`.
    static func readFile(_ path: String, limit: Int) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw SystemError(operation: "open", errno: errno) }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: limit)
        var count = 0
        while count < limit {
            let n = bytes.withUnsafeMutableBytes { raw in read(fd, raw.baseAddress.map { $0 + count }, limit - count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError(operation: "read", errno: errno)
            }
            if n == 0 { break }
            count += n
        }
        return Array(bytes[..<count])
    }
}
