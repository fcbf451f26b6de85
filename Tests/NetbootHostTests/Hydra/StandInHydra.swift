import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A loopback HTTP server playing a Hydra and its binary cache, for the tests.
///
/// `GET /job/P/J/JOB/latest` answers `302 Location: /build/ID` (404 for an unknown job), `GET /build/ID`
/// the build's JSON; both insist on `Accept: application/json` as Hydra does. Every other path is a
/// file of the binary cache directory, if one is given. A few `/test/…` paths exercise the HTTP client.
/// Every request is recorded.
final class StandInHydra: Sendable {
    /// What the stand-in serves.
    struct Setup: Sendable {
        /// `PROJECT/JOBSET/JOB` (URL-escaped, as it appears in the path) → build ID.
        var jobs: [String: Int] = [:]
        /// Build ID → the body answered for `/build/ID`.
        var builds: [Int: String] = [:]
        /// A binary cache directory (`nix copy --to file://DIR`), served as static files.
        var cacheDirectory: String?
        /// How long the first `/latest` request is held before being answered.
        var firstLookupDelay: Duration?
    }

    /// One request as the stand-in saw it.
    struct Seen: Sendable, Equatable {
        var path: String
        var accept: String?
    }

    let port: Int
    var baseURL: String { "http://127.0.0.1:\(port)" }
    private let state: State
    private let group: ServiceGroup
    private let running: Task<Void, any Error>

    /// Everything received so far, in order.
    var requests: [Seen] { state.seen.withLock { $0 } }

    private final class State: Sendable {
        let setup: Setup
        let seen = Mutex<[Seen]>([])
        let delayPending: Mutex<Bool>
        init(setup: Setup) {
            self.setup = setup
            self.delayPending = Mutex(setup.firstLookupDelay != nil)
        }
    }

    private init(port: Int, state: State, group: ServiceGroup, running: Task<Void, any Error>) {
        self.port = port
        self.state = state
        self.group = group
        self.running = running
    }

    /// Starts listening on an ephemeral port of 127.0.0.1.
    static func start(_ setup: Setup) async throws -> StandInHydra {
        let state = State(setup: setup)
        var logger = Logger(label: "stand-in-hydra")
        logger.logLevel = .warning
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let application = Application(
            responder: CallbackResponder<BasicRequestContext> { request, _ in
                try await Self.respond(to: request, state: state)
            },
            configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                portContinuation.yield(channel.localAddress?.port ?? 0)
                portContinuation.finish()
            },
            logger: logger)
        let group = ServiceGroup(configuration: .init(services: [application], logger: logger))
        let running = Task { try await group.run() }
        var port = 0
        for await bound in ports { port = bound }
        guard port > 0 else {
            running.cancel()
            throw ShellError(description: "the stand-in Hydra did not start")
        }
        return StandInHydra(port: port, state: state, group: group, running: running)
    }

    /// Stops listening and waits for the server to end.
    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await running.value
    }

    private static func respond(to request: Request, state: State) async throws -> Response {
        let path = request.uri.path
        let accept = request.headers[.accept]
        state.seen.withLock { $0.append(Seen(path: path, accept: accept)) }
        let setup = state.setup
        let wantsJSON = accept == "application/json"

        if path.hasPrefix("/job/") && path.hasSuffix("/latest") {
            if state.delayPending.withLock({ pending in defer { pending = false }; return pending }),
               let delay = setup.firstLookupDelay {
                try await Task.sleep(for: delay)
            }
            guard wantsJSON else { return text(.notAcceptable, "this stand-in speaks JSON only") }
            let job = String(path.dropFirst("/job/".count).dropLast("/latest".count))
            guard let id = setup.jobs[job] else { return text(.notFound, "no such job") }
            return Response(status: .found, headers: [.location: "/build/\(id)", .contentLength: "0"])
        }
        if path.hasPrefix("/build/") {
            guard wantsJSON else { return text(.notAcceptable, "this stand-in speaks JSON only") }
            guard let id = Int(path.dropFirst("/build/".count)), let body = setup.builds[id] else {
                return text(.notFound, "no such build")
            }
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
        }
        switch path {
        case "/test/redirect-loop":
            return Response(status: .found, headers: [.location: "/test/redirect-loop", .contentLength: "0"])
        case "/test/redirect-elsewhere":
            return Response(status: .found, headers: [.location: "http://127.0.0.2:9/build/7", .contentLength: "0"])
        case "/test/redirect-to-ftp":
            return Response(status: .found, headers: [.location: "ftp://127.0.0.1/file", .contentLength: "0"])
        case "/test/large":
            return Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(repeating: UInt8(ascii: "x"), count: 5 << 20)))
        case "/test/teapot":
            return text(.init(code: 418), "short and stout")
        default:
            break
        }
        if let directory = setup.cacheDirectory, !path.contains(".."),
           let data = FileManager.default.contents(atPath: directory + path), !path.hasSuffix("/") {
            return Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
        }
        return text(.notFound, "not found")
    }

    private static func text(_ status: HTTPResponse.Status, _ message: String) -> Response {
        Response(status: status, headers: [.contentType: "text/plain"], body: ResponseBody(byteBuffer: ByteBuffer(string: message)))
    }

    /// Runs `body` with a started stand-in and stops it afterwards, whatever happens.
    static func with<T>(_ setup: Setup, _ body: (StandInHydra) async throws -> T) async throws -> T {
        let hydra = try await start(setup)
        do {
            let result = try await body(hydra)
            try await hydra.stop()
            return result
        } catch {
            try? await hydra.stop()
            throw error
        }
    }

    /// The documented JSON of a finished, successful build with the given `out` path.
    static func buildJSON(id: Int, job: String, outPath: String?) -> String {
        let outputs = outPath.map { #"{"out":{"path":"\#($0)"}}"# } ?? "{}"
        return """
            {"id":\(id),"finished":1,"buildstatus":0,"nixname":"\(job)","system":"x86_64-linux","project":"P","jobset":"J","job":"\(job)",\
            "buildoutputs":\(outputs),"buildproducts":{},"timestamp":1700000000,"starttime":1700000001,"stoptime":1700000002,\
            "drvpath":"/nix/store/00000000000000000000000000000000-\(job).drv","priority":100,"releasename":null,"buildmetrics":{}}
            """
    }
}
