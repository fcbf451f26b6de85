import ArgumentParser
import NetbootKit

/// A Hydra the operator named with `--hydra NAME=BASE_URL`: the only kind this server contacts.
struct HydraServer: Sendable, Equatable {
    /// The name used in `/dispatch/hydra/NAME/…`.
    var name: String
    /// `http://…` or `https://…`, without a trailing `/`.
    var baseURL: String

    /// Parses and checks one `--hydra` value.
    init(argument: String) throws {
        let parsed = try NamedOptionValue(parsing: argument, option: "--hydra", valueName: "BASE_URL")
        name = parsed.name
        var url = parsed.value
        let lowered = url.lowercased()
        guard let scheme = ["http://", "https://"].first(where: { lowered.hasPrefix($0) }) else {
            throw ValidationError("--hydra \(argument): the base URL must start with http:// or https://")
        }
        let rest = url.dropFirst(scheme.count)
        let authority = rest.prefix { $0 != "/" }
        guard !authority.isEmpty else { throw ValidationError("--hydra \(argument): the base URL names no host") }
        guard !url.contains(where: { $0 == "?" || $0 == "#" || $0.isWhitespace }),
              !url.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F })
        else {
            throw ValidationError("--hydra \(argument): the base URL may not contain a query, a fragment, spaces or control characters")
        }
        while url.hasSuffix("/") { url.removeLast() }
        baseURL = url
    }

    /// `BASE_URL/job/PROJECT/JOBSET/JOB/latest`, each part percent-escaped.
    func latestBuildURL(of job: HydraJob) -> String {
        baseURL + "/job/" + [job.project, job.jobset, job.job].map(PercentEscaping.escape).joined(separator: "/") + "/latest"
    }

    /// Parses every `--hydra` value; a name given twice is an error.
    static func parseAll(_ arguments: [String]) throws -> [String: HydraServer] {
        var servers: [String: HydraServer] = [:]
        for argument in arguments {
            let server = try HydraServer(argument: argument)
            guard servers[server.name] == nil else {
                throw ValidationError("--hydra \(server.name) is given twice")
            }
            servers[server.name] = server
        }
        return servers
    }
}
