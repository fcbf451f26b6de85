#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NetbootKit

/// Turns the bytes of `NAME.json` into a ``MachineRule``, or the reason it cannot be one. Pure: the
/// rule's `boot` source is checked against the registered sources by ``RuleSet``.
public enum RuleParser {
    /// The rule named `name` in `bytes`. `ownSource` is the machine source's name, which `boot` may not name.
    public static func parse(_ bytes: [UInt8], name: String, ownSource: String = "machine", limits: RuleLimits = .standard) throws(RuleProblem) -> MachineRule {
        guard bytes.count <= limits.fileBytes else { throw RuleProblem("the file is \(bytes.count) bytes; a rule may have at most \(limits.fileBytes)") }
        let file: RuleFile
        do { file = try JSONDecoder().decode(RuleFile.self, from: Data(bytes)) } catch let problem as RuleProblem {
            throw problem
        } catch {
            throw RuleProblem("not a rule: \(describe(error))")
        }
        var match: [MachineIdentity.Key: String] = [:]
        for (key, value) in file.match ?? [:] {
            guard let known = MachineIdentity.Key(rawValue: key) else {
                throw RuleProblem("match key '\(key)' is none of \(MachineIdentity.Key.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard !value.isEmpty, let normalised = MachineIdentity.normalise(value, for: known) else {
                throw RuleProblem("match \(key) '\(value.prefix(60))' is not a valid \(key)")
            }
            match[known] = normalised
        }
        guard let boot = file.boot else { throw RuleProblem("no 'boot' (SOURCE/SEGMENTS, e.g. profile/NAME)") }
        let parts = boot.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard let source = parts.first, !source.isEmpty else { throw RuleProblem("boot '\(boot.prefix(60))' is not SOURCE/SEGMENTS") }
        guard source != ownSource else { throw RuleProblem("boot may not name the \(ownSource) source itself") }
        let segments = Array(parts.dropFirst())
        for segment in segments {
            do { try DispatchSegment.validate(segment) } catch { throw RuleProblem("boot '\(boot.prefix(60))': \(error.description)") }
        }
        let cmdline = file.cmdline ?? ""
        if let bad = cmdline.unicodeScalars.first(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }) {
            let name = bad == "\r" ? "a CR" : bad == "\n" ? "an LF" : bad == "\0" ? "a NUL" : "a control character"
            throw RuleProblem("cmdline holds \(name) (it would end the kernel line of the boot script)")
        }
        guard cmdline.utf8.count <= limits.cmdlineBytes else { throw RuleProblem("cmdline is \(cmdline.utf8.count) bytes; at most \(limits.cmdlineBytes)") }
        let overlay = try OverlayPlan.entries(files: file.files ?? [:], directories: file.directories ?? [:], limits: limits)
        return MachineRule(
            name: name, match: match, bootSource: source, bootSegments: segments,
            cmdline: cmdline.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " "), overlay: overlay)
    }

    /// A decoding error in a few words (the decoder's own descriptions name Swift types).
    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            "wrong type at \(path(context.codingPath))"
        case DecodingError.keyNotFound(let key, let context):
            "missing \(key.stringValue) at \(path(context.codingPath))"
        case DecodingError.dataCorrupted(let context):
            context.codingPath.isEmpty ? "not valid JSON" : "bad value at \(path(context.codingPath))"
        default: "not valid JSON"
        }
    }

    static func path(_ codingPath: [any CodingKey]) -> String {
        codingPath.isEmpty ? "the top" : codingPath.map(\.stringValue).joined(separator: ".")
    }
}

/// The JSON shape of a rule file; unknown keys are refused (a misspelt key must not be ignored).
struct RuleFile: Decodable {
    var match: [String: String]?
    var boot: String?
    var cmdline: String?
    var files: [String: FileSpec]?
    var directories: [String: String]?

    /// A file: its text alone, or `{ "text": …, "mode": "0600" }`.
    struct FileSpec: Decodable {
        var text: String
        var mode: String?

        private enum CodingKeys: String, CodingKey, CaseIterable { case text, mode }

        init(from decoder: any Decoder) throws {
            if let text = try? decoder.singleValueContainer().decode(String.self) {
                self.text = text
                return
            }
            let container = try decoder.container(keyedBy: AnyKey.self)
            try AnyKey.refuseUnknown(container, known: CodingKeys.allCases.map(\.rawValue), in: "a file")
            let known = try decoder.container(keyedBy: CodingKeys.self)
            text = try known.decode(String.self, forKey: .text)
            mode = try known.decodeIfPresent(String.self, forKey: .mode)
        }
    }

    private enum CodingKeys: String, CodingKey, CaseIterable { case match, boot, cmdline, files, directories }

    init(from decoder: any Decoder) throws {
        try AnyKey.refuseUnknown(try decoder.container(keyedBy: AnyKey.self), known: CodingKeys.allCases.map(\.rawValue), in: "a rule")
        let container = try decoder.container(keyedBy: CodingKeys.self)
        match = try container.decodeIfPresent([String: String].self, forKey: .match)
        boot = try container.decodeIfPresent(String.self, forKey: .boot)
        cmdline = try container.decodeIfPresent(String.self, forKey: .cmdline)
        files = try container.decodeIfPresent([String: FileSpec].self, forKey: .files)
        directories = try container.decodeIfPresent([String: String].self, forKey: .directories)
    }
}

/// Any key of a JSON object.
struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }

    static func refuseUnknown(_ container: KeyedDecodingContainer<AnyKey>, known: [String], in what: String) throws {
        if let unknown = container.allKeys.map(\.stringValue).sorted().first(where: { !known.contains($0) }) {
            throw RuleProblem("unknown key '\(unknown.prefix(60))' in \(what) (keys: \(known.joined(separator: ", ")))")
        }
    }
}
