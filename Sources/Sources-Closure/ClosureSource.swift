import NetbootKit

/// `/dispatch/closure/NAME`: boots the store path named directly. The simplest ``BootSource``.
public struct ClosureSource: BootSourceModule {
    public let store: any NixStore

    public init(options: NoOptions = NoOptions(), context: SourceContext) { self.store = context.store }

    public var name: String { "closure" }

    public func resolve(_ request: DispatchRequest) async throws -> Resolution {
        let name = try request.segments(1, usage: "/dispatch/closure/STORE-PATH-NAME")[0]
        let path = try StorePath(name: name)
        guard try await store.isValid(path) else { throw DispatchError.notFound("\(path) is not a valid store path") }
        return .storePath(path)
    }
}
