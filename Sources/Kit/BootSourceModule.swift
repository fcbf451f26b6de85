import ArgumentParser

/// A boot source as the executable registers it: its own command-line options, and how it is made
/// from them.
///
/// The executable lists modules by type (`ProfileSource.self`), one line each; the host parses every
/// module's ``Options`` from the same command line, shows them in `--help` under ``optionsTitle``,
/// and makes each source with its options and the ``SourceContext``.
public protocol BootSourceModule: BootSource {
    /// The module's command-line options (``NoOptions`` when it has none).
    associatedtype Options: ParsableArguments
    /// The heading of the module's options in `--help`.
    static var optionsTitle: String { get }
    /// Makes the source; throw `ValidationError` for options that cannot work.
    init(options: Options, context: SourceContext) throws
}

extension BootSourceModule {
    public static var optionsTitle: String { "\(Self.self)" }
}

/// The options of a module that has none.
public struct NoOptions: ParsableArguments, Sendable {
    public init() {}
}
