import HTTPTypes
import NetbootHost

/// One table of what the server answers, by route × method × outcome, driving both the in-memory
/// run (the router with ``InMemoryNixStore``) and the live run (the binary with real Nix).
///
/// Each mode names its own store paths and profiles for the outcomes (``RouteOutcomeTable/Subjects``);
/// the routes, methods and expected answers are the same for both.
enum RouteOutcomeTable {
    /// A route the server answers (or does not).
    enum Route: String, CaseIterable, Sendable {
        case root = "/"
        case status = "/status"
        case healthz = "/healthz"
        case script = "/boot/NAME/netboot.ipxe"
        case kernel = "/boot/NAME/bzImage"
        case initrd = "/boot/NAME/initrd"
        case closure = "/dispatch/closure/NAME"
        case profile = "/dispatch/profile/NAME"
        /// The test-only ``ScriptedSource`` (registered in memory only).
        case scripted = "/dispatch/scripted/ANSWER"
        /// A registered source turned off with `--disable-source`.
        case disabledSource = "/dispatch/configuration/NAME"
        case unknownSource = "/dispatch/nosuchsource/NAME"
        case unknownRoute = "/boot/NAME/kernel"
    }

    /// What the request is about.
    enum Outcome: String, Sendable {
        /// A NixOS system (or a profile naming one): served.
        case ok
        /// A name that cannot be a store path (or a profile segment that cannot be a file name).
        case badName
        /// Well-formed, but no valid path (or no such source, profile or page).
        case absent
        /// A valid path that is no NixOS system.
        case notASystem
        /// The source is turned off.
        case sourceOff
        /// Nix fails on the path.
        case nixFailure
        /// The source is still working.
        case retryLater
        /// The source failed in a way that may pass.
        case failed
    }

    /// What the answer must carry besides its status.
    enum Body: Equatable, Sendable {
        /// Any body (a kernel, an initrd, the status page).
        case any
        /// One line of text containing this (an error, or the liveness line).
        case line(String)
        /// An iPXE script starting with this line (`#!ipxe`) and containing this text.
        case script(containing: String)
        /// No body (a redirect).
        case empty
    }

    struct Case: Sendable {
        var route: Route
        var method: HTTPRequest.Method
        var outcome: Outcome
        var status: Int
        var body: Body
        var allow: String? = nil
        var retryAfter: String? = nil
        var location: Bool = false
        var cacheControl: String? = nil

        var label: String { "\(method) \(route.rawValue) [\(outcome)]" }
    }

    /// What each outcome is about in one mode: store path names, profile names, scripted answers.
    struct Subjects: Sendable {
        var system: StorePath
        var plain: StorePath
        var absent: StorePath
        /// A path Nix fails on; nil where Nix cannot be made to fail (live).
        var failing: StorePath?

        /// The request path of `route` for `outcome`; nil when this mode cannot make it.
        func path(_ route: Route, _ outcome: Outcome) -> String? {
            let name: String?
            switch route {
            case .root: return "/"
            case .status: return "/status"
            case .healthz: return "/healthz"
            case .scripted: return "/dispatch/scripted/\(outcome.rawValue)"
            case .disabledSource: return "/dispatch/configuration/rack"
            case .unknownSource: return "/dispatch/nosuchsource/\(system.name)"
            case .profile:
                // The profiles each mode makes: PROFILE_DIR/OUTCOME -> /nix/store/PATH.
                name = outcome == .badName ? ".hidden" : outcome == .nixFailure && failing == nil ? nil : outcome.rawValue
            case .script, .kernel, .initrd, .closure, .unknownRoute:
                name = storePathName(outcome)
            }
            guard let name else { return nil }
            return route.rawValue.replacingOccurrences(of: "NAME", with: name)
        }

        func storePathName(_ outcome: Outcome) -> String? {
            switch outcome {
            case .ok, .sourceOff, .retryLater, .failed: system.name
            case .badName: "\(system.hashPart)_not-a-store-path-name"
            case .absent: absent.name
            case .notASystem: plain.name
            case .nixFailure: failing?.name
            }
        }

        /// The profiles to make: name and the store path it points at.
        var profiles: [(name: String, target: StorePath)] {
            [("ok", system), ("notASystem", plain), ("absent", absent)] + (failing.map { [("nixFailure", $0)] } ?? [])
        }
    }

    /// What `GET` answers for each route and outcome (`HEAD` answers the same without a body).
    static let answers: [(Route, Outcome, Int, Body)] = [
        (.root, .ok, 200, .line("nix-netboot-serve")),
        (.status, .ok, 200, .any),
        (.healthz, .ok, 200, .line("ok")),

        (.script, .ok, 200, .script(containing: "kernel bzImage initrd=initrd rdinit=/nix/store/")),
        (.script, .badName, 400, .line("not a store path name")),
        (.script, .absent, 404, .line("is not a valid store path")),
        (.script, .notASystem, 404, .line("has no init: it is not a NixOS system")),
        (.script, .nixFailure, 502, .line("nix failed")),

        (.kernel, .ok, 200, .any),
        (.kernel, .badName, 400, .line("not a store path name")),
        (.kernel, .absent, 404, .line("is not a valid store path")),
        (.kernel, .notASystem, 404, .line("has no kernel: it is not a NixOS system")),
        (.kernel, .nixFailure, 502, .line("nix failed")),

        (.initrd, .ok, 200, .any),
        (.initrd, .badName, 400, .line("not a store path name")),
        (.initrd, .absent, 404, .line("is not a valid store path")),
        (.initrd, .notASystem, 404, .line("it is not a NixOS system")),
        (.initrd, .nixFailure, 502, .line("nix failed")),

        (.closure, .ok, 302, .empty),
        (.closure, .badName, 400, .line("not a store path name")),
        (.closure, .absent, 404, .line("is not a valid store path")),
        (.closure, .notASystem, 200, .script(containing: "chain")),
        (.closure, .nixFailure, 502, .line("nix failed")),

        (.profile, .ok, 302, .empty),
        (.profile, .badName, 400, .line("path segment")),
        (.profile, .absent, 404, .line("profile absent points at something that is not a valid store path")),
        (.profile, .notASystem, 200, .script(containing: "chain")),
        (.profile, .nixFailure, 502, .line("nix failed")),

        (.scripted, .retryLater, 503, .line("still building")),
        (.scripted, .failed, 200, .script(containing: "the configuration is broken")),

        (.disabledSource, .sourceOff, 404, .line("configuration booting is turned off")),
        (.unknownSource, .absent, 404, .line("no such boot source")),
        (.unknownRoute, .absent, 404, .line("no such page")),
    ]

    /// The methods besides `GET` and `HEAD` that every route refuses (405 with `Allow`, or 404 where
    /// no route is).
    static let otherMethods: [HTTPRequest.Method] = [.post, .put, .delete, .patch, .options]

    /// Paths near the routes that no route takes: 404 to every method (no `Allow`).
    static func unknownPaths(_ system: StorePath) -> [String] {
        [
            "/favicon.ico", "/boot", "/boot/\(system.name)/", "/boot/\(system.name)/initrd/x", "/dispatch", "/dispatch/closure",
            "/nix/store", "/nix/store/\(system.name)/kernel",
        ]
    }

    /// The answers the ``ScriptedSource`` gives for the table.
    static let scriptedAnswers: [String: Resolution] = [
        Outcome.retryLater.rawValue: .stillWorking("still building the system"),
        Outcome.failed.rawValue: .failed(reason: "the configuration is broken"),
    ]

    /// Every case: `GET` and `HEAD` for each answer, then each other method once per route.
    static let cases: [Case] = {
        var cases: [Case] = []
        for (route, outcome, status, body) in answers {
            var get = Case(route: route, method: .get, outcome: outcome, status: status, body: body)
            if status == 503 { get.retryAfter = "\(Resolution.retryDelay)" }
            if status == 302 { get.location = true }
            // A script from /dispatch is a retry script: never cached.
            if case .script = body, route != .script { get.cacheControl = "no-store" }
            var head = get
            head.method = .head
            cases += [get, head]
        }
        var seen: Set<Route> = []
        for (route, outcome, _, _) in answers where seen.insert(route).inserted {
            for method in otherMethods {
                cases.append(
                    route == .unknownRoute
                        ? Case(route: route, method: method, outcome: outcome, status: 404, body: .line("no such page"))
                        : Case(route: route, method: method, outcome: outcome, status: 405, body: .line("\(method.rawValue) is not allowed"), allow: "GET, HEAD"))
            }
        }
        return cases
    }()

    /// Why the live binary cannot make a case (nil when it can).
    static func liveSkipReason(_ testCase: Case) -> String? {
        if testCase.route == .scripted { return "the scripted source is test-only; the binary registers only its real sources" }
        if testCase.outcome == .nixFailure { return "the live binary runs the real Nix, which cannot be made to fail on one path" }
        return nil
    }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
