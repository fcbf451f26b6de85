/// The ``DispatchRouter`` the host hands to sources: the registered sources minus those turned off,
/// with the same checks as `/dispatch/SOURCE/…` (configured, every segment valid).
package struct RegistryRouter: DispatchRouter {
    package let sources: [any BootSource]
    package let disabled: Set<String>

    package init(sources: [any BootSource], disabled: Set<String>) {
        self.sources = sources
        self.disabled = disabled
    }

    package var sourceNames: [String] {
        sources.filter { !disabled.contains($0.name) && $0.notConfiguredReason == nil }.map(\.name)
    }

    /// The source named `name` if a dispatch may reach it.
    package func source(named name: String) -> (any BootSource)? {
        disabled.contains(name) ? nil : sources.first { $0.name == name }
    }

    package func resolve(source name: String, _ request: DispatchRequest) async throws -> Resolution {
        guard let source = source(named: name) else { throw DispatchError.notFound("no boot source '\(name)' on this server") }
        if let reason = source.notConfiguredReason { throw DispatchError.notFound(reason) }
        for segment in request.segments { try DispatchSegment.validate(segment) }
        var request = request
        request.router = self
        return try await source.resolve(request)
    }
}
