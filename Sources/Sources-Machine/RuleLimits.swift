/// What one rule may hold: beyond these it is refused with the reason, never truncated.
public struct RuleLimits: Sendable, Equatable {
    /// The rule file's own size.
    public var fileBytes: Int
    /// Files in `files`.
    public var files: Int
    /// The contents of all files together.
    public var contentBytes: Int
    /// `cmdline`.
    public var cmdlineBytes: Int
    /// One overlay path.
    public var pathBytes: Int

    public init(fileBytes: Int = 64 * 1024, files: Int = 32, contentBytes: Int = 48 * 1024, cmdlineBytes: Int = 1024, pathBytes: Int = 1024) {
        self.fileBytes = fileBytes
        self.files = files
        self.contentBytes = contentBytes
        self.cmdlineBytes = cmdlineBytes
        self.pathBytes = pathBytes
    }

    public static let standard = RuleLimits()
}
