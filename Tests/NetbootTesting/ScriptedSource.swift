import NetbootHost

/// A boot source that gives the answers a test scripts for it, one per URL segment:
/// `/dispatch/NAME/KEY` resolves to `answers[KEY]` (404 for a key it was not given).
///
/// For the answers no real source gives cheaply and at will — "retry later" while work goes on,
/// "failed" with a reason — so that the host's rendering of them can be tested on its own.
public struct ScriptedSource: BootSource {
    public let name: String
    public let answers: [String: Resolution]

    public init(name: String = "scripted", answers: [String: Resolution]) {
        self.name = name
        self.answers = answers
    }

    public func resolve(_ request: DispatchRequest) async throws -> Resolution {
        let key = try request.segments(1, usage: "/dispatch/\(name)/ANSWER")[0]
        guard let answer = answers[key] else { throw DispatchError.notFound("no scripted answer '\(key)'") }
        return answer
    }
}
