import Logging

/// Keeps each system's GC root (`GC_ROOT_DIR/ROOT`) on the result of its newest evaluation *started*.
///
/// Builds finish in any order; a slow older build finishing late must not move the root back. Each
/// evaluation says which derivation it wants for its root (``want(_:evaluation:derivation:)``); when a
/// derivation is built (``built(_:path:)``), every root whose newest wanted evaluation gave it, and
/// which shows an older evaluation, is pointed at the result. The actor serialises the bookkeeping; a
/// root update that is still running when a newer one arrives is followed by it, never overtaken.
public actor NewestEvaluationRoots {
    /// Per root: the newest evaluation that asked, with its derivation.
    private var wanted: [String: (evaluation: UInt64, derivation: Derivation)] = [:]
    /// Per root: the evaluation it shows.
    private var applied: [String: UInt64] = [:]
    /// Per root: a built result newer than the one it shows, waiting for the update in progress.
    private var pending: [String: (evaluation: UInt64, path: StorePath)] = [:]
    /// Updates in progress, per root, so that they apply in order.
    private var updating: Set<String> = []
    private let context: SourceContext

    public init(context: SourceContext) { self.context = context }

    /// The path of the GC root named `root`.
    public nonisolated func rootPath(_ root: String) -> String { context.gcRootDirectory + "/" + root }

    /// Evaluation `id` for `root` gave `derivation`.
    public func want(_ root: String, evaluation id: UInt64, derivation: Derivation) {
        if id > wanted[root]?.evaluation ?? 0 { wanted[root] = (id, derivation) }
    }

    /// `derivation` was built to `path`: moves the roots that want it.
    public func built(_ derivation: Derivation, path: StorePath) async {
        for root in wanted.keys.sorted() {
            guard let want = wanted[root], want.derivation == derivation, want.evaluation > applied[root, default: 0] else { continue }
            if want.evaluation > pending[root]?.evaluation ?? 0 { pending[root] = (want.evaluation, path) }
            await apply(root)
        }
    }

    /// Moves `root` to its pending result, and then to any newer one that arrives meanwhile.
    private func apply(_ root: String) async {
        guard !updating.contains(root) else { return }  // the running update takes it when it is done
        updating.insert(root)
        defer { updating.remove(root) }
        while let next = pending.removeValue(forKey: root) {
            guard next.evaluation > applied[root, default: 0] else { continue }
            do {
                try await context.addRoot(rootPath(root), for: next.path)
                applied[root] = next.evaluation
            } catch {
                context.logger.error("could not update a system's GC root", metadata: ["root": "\(rootPath(root))", "error": "\(error)"])
            }
        }
    }
}
