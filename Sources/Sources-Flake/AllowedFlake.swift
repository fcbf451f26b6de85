import ArgumentParser
import NetbootKit

/// A flake the operator named with `--flake NAME=FLAKEREF`: the only kind this server evaluates.
struct AllowedFlake: Sendable, Equatable {
    /// The name used in `/dispatch/flake/NAME/HOST`.
    var name: String
    /// The flake reference as given, e.g. `path:/srv/infra` or `git+file:///srv/infra`.
    var reference: String

    /// Parses and checks one `--flake` value.
    init(argument: String) throws {
        let parsed = try NamedOptionValue(parsing: argument, option: "--flake", valueName: "FLAKEREF")
        name = parsed.name
        reference = parsed.value
        guard FlakeRootName.escape(name).utf8.count <= FlakeRootName.maximumEscapedNameLength else {
            throw ValidationError("--flake \(argument): the name is too long for a GC root name")
        }
        guard !reference.isEmpty else { throw ValidationError("--flake \(argument): the flake reference is empty") }
        guard !reference.hasPrefix("-") else { throw ValidationError("--flake \(argument): the flake reference may not start with '-'") }
        guard !reference.contains("#") else {
            throw ValidationError("--flake \(argument): the flake reference may not name an attribute ('#'); the server picks nixosConfigurations.HOST")
        }
        guard !reference.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7F }) else {
            throw ValidationError("--flake \(argument): the flake reference may not contain spaces or control characters")
        }
    }

    /// Parses every `--flake` value; a name given twice is an error.
    static func parseAll(_ arguments: [String]) throws -> [String: AllowedFlake] {
        var flakes: [String: AllowedFlake] = [:]
        for argument in arguments {
            let flake = try AllowedFlake(argument: argument)
            guard flakes[flake.name] == nil else { throw ValidationError("--flake \(flake.name) is given twice") }
            flakes[flake.name] = flake
        }
        return flakes
    }

    /// `text` with the reference, and the local path it names, replaced by the flake's name: what Nix
    /// says about a flake goes to the machine without the server's paths.
    func redacting(_ text: String) -> String {
        var result = text
        var secrets = [reference]
        if let path = localPath { secrets += ["path:" + path, "git+file://" + path, "file://" + path, path] }
        for secret in secrets.sorted(by: { $0.count > $1.count }) {
            result = result.replacing(secret, with: name)
        }
        return result
    }

    /// The directory a `path:`, `git+file://`, `file://` or bare absolute reference names, without
    /// its query and trailing slashes.
    var localPath: String? {
        var rest = Substring(reference)
        if let scheme = rest.firstRange(of: "file://") {
            rest = rest[scheme.upperBound...]
        } else if rest.hasPrefix("path:") {
            rest = rest.dropFirst("path:".count)
        } else if !rest.hasPrefix("/") {
            return nil
        }
        if let query = rest.firstIndex(of: "?") { rest = rest[..<query] }
        while rest.count > 1, rest.hasSuffix("/") { rest = rest.dropLast() }
        return rest.count > 1 ? String(rest) : nil
    }
}
