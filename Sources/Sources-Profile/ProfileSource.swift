import ArgumentParser
import Logging
import NetbootKit

/// `/dispatch/profile/NAME`: boots whatever the symlink `PROFILE_DIR/NAME` points at now.
///
/// The link is read at every request and followed the way Nix profiles chain
/// (`NAME -> NAME-7-link -> /nix/store/…`), so switching a profile switches what machines boot.
public struct ProfileSource: BootSourceModule {
    /// The source's command-line options.
    public struct Options: ParsableArguments, Sendable {
        @Option(help: "Directory of profile symlinks (default: STATE_DIR/profiles; profile booting is on when it exists or is given).")
        public var profileDir: String?

        public init() {}
    }

    public let directory: String
    public let store: any NixStore
    public let logger: Logger
    private let configured: Bool

    public init(options: Options, context: SourceContext) {
        self.directory = context.directory(options.profileDir, default: "profiles")
        self.configured = options.profileDir != nil
        self.store = context.store
        self.logger = context.logger
    }

    public var name: String { "profile" }

    public var notConfiguredReason: String? {
        configured || FileSystem.exists(directory) ? nil : "profile booting is not configured on this server (give --profile-dir, or create STATE_DIR/profiles)"
    }

    public func resolve(_ request: DispatchRequest) async throws -> Resolution {
        let profile = try request.segments(1, usage: "/dispatch/profile/NAME")[0]
        let path: StorePath
        do { path = try ProfileLink.resolve(directory + "/" + profile, profile: profile) } catch {
            logger.info("profile refused", metadata: ["profile": "\(profile)", "reason": "\(error.reason)", "at": "\(error.detail)"])
            throw DispatchError.notFound(error.reason)
        }
        guard try await store.isValid(path) else {
            logger.info("profile refused", metadata: ["profile": "\(profile)", "reason": "not a valid store path", "at": "\(path)"])
            throw DispatchError.notFound("profile \(profile) points at something that is not a valid store path")
        }
        return .storePath(path)
    }
}

extension ProfileSource {
    public static var optionsTitle: String { "Profile source" }
}
