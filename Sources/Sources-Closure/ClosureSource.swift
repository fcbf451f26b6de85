import NetbootHost

/// `/dispatch/closure/NAME`: boots the store path named directly.
public struct ClosureSource: BootSource {
    public let store: any NixStore
    public init(store: any NixStore) { self.store = store }
    public var name: String { "closure" }

    public func resolve(_ request: DispatchRequest) async throws -> Resolution {
        guard request.segments.count == 1 else { throw DispatchError.badRequest("expected /dispatch/closure/STORE-PATH-NAME") }
        let path = try StorePath(name: request.segments[0])
        guard try await store.isValid(path) else { throw DispatchError.notFound("\(path) is not a valid store path") }
        return .storePath(path)
    }
}
