/// A refusal a boot source can throw; the host renders it with its status and reason.
public enum DispatchError: Error, Equatable, CustomStringConvertible {
    /// 400: the URL cannot name anything.
    case badRequest(String)
    /// 404: nothing by that name, or the source is not configured.
    case notFound(String)
    /// 502: something the source depends on failed (Nix, Hydra).
    case upstreamFailed(String)

    public var description: String {
        switch self {
        case .badRequest(let reason), .notFound(let reason), .upstreamFailed(let reason): reason
        }
    }
}
