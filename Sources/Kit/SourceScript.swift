/// An iPXE script a source serves at a top-level path of its own (e.g. `/boot.ipxe`), made from the
/// request's query. Answered `text/plain`, never cached.
public struct SourceScript: Sendable {
    /// The path without its leading `/`: one segment ending in `.ipxe`, e.g. `"boot.ipxe"`.
    public var path: String
    /// The script for a request with this raw query (without `?`; nil when there is none).
    public var render: @Sendable (_ query: String?) -> String

    public init(path: String, render: @escaping @Sendable (_ query: String?) -> String) {
        self.path = path
        self.render = render
    }
}
