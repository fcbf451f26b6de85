import HTTPTypes
import Logging

/// An error that says why a store path is not served as a bootable system: its HTTP status, one
/// public line without server paths, and the full detail for the log.
///
/// ``SystemLayoutError`` and ``KernelLineError`` are the two kinds.
package protocol BootRefusal: Error {
    /// 404 when the system cannot be booted, 400 when the request's arguments are to blame, 500
    /// when the server failed to read.
    var status: HTTPResponse.Status { get }
    /// One line for the client (and for the iPXE console of a retry script).
    var publicReason: String { get }
    /// Everything known, for the server log.
    var logMetadata: Logger.Metadata { get }
}

extension SystemLayoutError: BootRefusal {}
extension KernelLineError: BootRefusal {}

extension BootRefusal {
    /// Logs the refusal (a hostile symlink as a warning, a server failure as an error, a path that
    /// is simply not a system at debug level) and returns the error to answer with.
    package func reported(to logger: Logger) -> PlainTextError {
        let level: Logger.Level =
            if status.code >= 500 { .error } else if (self as? SystemLayoutError)?.reason == .missing { .debug } else { .warning }
        logger.log(level: level, "refused to boot", metadata: logMetadata)
        return PlainTextError(status, publicReason)
    }
}

extension StorePath {
    /// The name, cut to 64 characters so that a message naming it stays short.
    package var shortName: String {
        name.count <= 64 ? name : String(name.prefix(61)) + "..."
    }
}
