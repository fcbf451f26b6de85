import NetbootKit

/// One job on one named Hydra, as `/dispatch/hydra/HYDRA/PROJECT/JOBSET/JOB` names it.
///
/// It is the key of the shared lookups and names the job's GC root.
struct HydraJob: Hashable, Sendable, CustomStringConvertible {
    /// The operator's name for the Hydra (`--hydra NAME=…`).
    var hydra: String
    var project: String
    var jobset: String
    var job: String

    /// Longest file name most file systems accept.
    static let maximumRootNameLength = 255

    var description: String { "\(hydra)/\(project)/\(jobset)/\(job)" }

    /// `hydra-` and the four parts, each percent-escaped and joined with `+`, which escaping never
    /// produces: two different jobs never share a root, and no part can leave the root directory.
    var gcRootName: String {
        "hydra-" + [hydra, project, jobset, job].map(PercentEscaping.escape).joined(separator: "+")
    }

    /// The GC root under `directory`, or a 400 when the escaped name is too long for a file name.
    func gcRoot(in directory: String) throws(DispatchError) -> String {
        let name = gcRootName
        guard name.utf8.count <= Self.maximumRootNameLength else {
            throw .badRequest("the Hydra job name is too long to name its GC root (\(name.utf8.count) bytes once escaped, at most \(Self.maximumRootNameLength))")
        }
        return directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }
}
