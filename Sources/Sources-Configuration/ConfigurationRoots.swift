import Logging
import NetbootHost

/// Keeps `GC_ROOT_DIR/configuration-NAME` on the result of the newest evaluation *started*.
///
/// Builds finish in any order; a slow older build finishing late must not move the root back.
/// Updates for one name run one after another, each checking the evaluation id first.
public actor ConfigurationRoots {
    private var applied: [String: UInt64] = [:]
    private var tail: [String: Task<Void, Never>] = [:]
    private let context: SourceContext

    public init(context: SourceContext) { self.context = context }

    /// The GC root of configuration `name`.
    public nonisolated func rootPath(_ name: String) -> String { context.gcRootDirectory + "/configuration-" + name }

    /// Points the root of `name` at `path` if evaluation `id` is newer than the one it shows now.
    public func update(_ name: String, evaluation id: UInt64, path: StorePath) async {
        let previous = tail[name]
        let root = rootPath(name)
        let context = self.context
        let task = Task {
            await previous?.value
            guard self.shouldApply(name, id) else { return }
            do {
                try await context.addRoot(root, for: path)
            } catch {
                context.logger.error("could not update the configuration's GC root", metadata: ["root": "\(root)", "error": "\(error)"])
            }
        }
        tail[name] = task
        await task.value
    }

    private func shouldApply(_ name: String, _ id: UInt64) -> Bool {
        guard id > applied[name, default: 0] else { return false }
        applied[name] = id
        return true
    }
}
