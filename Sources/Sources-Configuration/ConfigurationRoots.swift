import Logging
import NetbootKit

/// Keeps `GC_ROOT_DIR/configuration-NAME` on the result of the newest evaluation *started*.
///
/// Builds finish in any order; a slow older build finishing late must not move the root back. Each
/// evaluation says which derivation it wants for its configuration (``want(_:evaluation:derivation:)``);
/// when a derivation is built (``built(_:path:)``), every configuration whose newest wanted
/// evaluation gave it, and whose root shows an older evaluation, is pointed at the result. The actor
/// serialises the bookkeeping; a root update that is still running when a newer one arrives is
/// followed by it, never overtaken.
public actor ConfigurationRoots {
    /// Per configuration: the newest evaluation that asked, with its derivation.
    private var wanted: [String: (evaluation: UInt64, derivation: Derivation)] = [:]
    /// Per configuration: the evaluation its root shows.
    private var applied: [String: UInt64] = [:]
    /// Updates in progress, per configuration, so that they apply in order.
    private var updating: Set<String> = []
    private let context: SourceContext

    public init(context: SourceContext) { self.context = context }

    /// The GC root of configuration `name`.
    public nonisolated func rootPath(_ name: String) -> String { context.gcRootDirectory + "/configuration-" + name }

    /// Evaluation `id` of `name` gave `derivation`.
    public func want(_ name: String, evaluation id: UInt64, derivation: Derivation) {
        if id > wanted[name]?.evaluation ?? 0 { wanted[name] = (id, derivation) }
    }

    /// `derivation` was built to `path`: moves the roots that want it.
    public func built(_ derivation: Derivation, path: StorePath) async {
        for name in wanted.keys.sorted() where wanted[name]?.derivation == derivation {
            await apply(name, path: path)
        }
    }

    private func apply(_ name: String, path: StorePath) async {
        guard !updating.contains(name), let want = wanted[name], want.evaluation > applied[name, default: 0] else { return }
        updating.insert(name)
        defer { updating.remove(name) }
        do {
            try await context.addRoot(rootPath(name), for: path)
            applied[name] = want.evaluation
        } catch {
            context.logger.error("could not update the configuration's GC root", metadata: ["root": "\(rootPath(name))", "error": "\(error)"])
        }
    }
}
