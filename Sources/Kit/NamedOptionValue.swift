import ArgumentParser

/// A `NAME=VALUE` option value naming something a source may reach (`--hydra main=https://…`,
/// `--flake infra=path:/srv/infra`): the name appears in dispatch URLs, so it is checked as a URL
/// segment; the value is the source's to check.
public struct NamedOptionValue: Sendable, Equatable {
    public var name: String
    public var value: String

    /// Splits `argument` at its first `=`; `option` (`--flake`) and `valueName` (`FLAKEREF`) word the
    /// errors, which stop the server at start-up.
    public init(parsing argument: String, option: String, valueName: String) throws {
        guard let equals = argument.firstIndex(of: "=") else {
            throw ValidationError("\(option) takes NAME=\(valueName), not '\(argument)'")
        }
        name = String(argument[..<equals])
        value = String(argument[argument.index(after: equals)...])
        do { try DispatchSegment.validate(name) } catch {
            throw ValidationError("\(option) \(argument): the name cannot appear in a URL: \(error)")
        }
    }
}
