/// What a stand-in store path holds on disk: a file, a symlink, or a directory of more nodes.
public indirect enum StoreNode: Sendable, Equatable {
    /// A regular file with these contents (mode 0555 when `executable`, else 0444, as in a store).
    case file(String, executable: Bool = false)
    /// A symlink with this target, written as given.
    case symlink(String)
    /// A directory (mode 0555) holding these entries by name.
    case directory([String: StoreNode])

    /// Bytes of file contents and link targets below this node: the stand-in's NAR size.
    var contentSize: Int {
        switch self {
        case .file(let contents, _): contents.utf8.count
        case .symlink(let target): target.utf8.count
        case .directory(let entries): entries.values.reduce(0) { $0 + $1.contentSize }
        }
    }
}
