import HTTPTypes
import Logging

/// Why a `kernel …` line was not written: too long for the kernel, or a control character in the
/// system's own `kernel-params`.
package struct KernelLineError: Error, Equatable, CustomStringConvertible {
    /// What went wrong.
    package enum Reason: Equatable, Sendable {
        /// The system's `kernel-params` is not UTF-8.
        case parametersNotUTF8
        /// The system's `kernel-params` holds this control character.
        case controlCharacterInParameters(UInt32)
        /// The line is too long without any tuning argument: the system's own parameters are.
        case systemLineTooLong(bytes: Int)
        /// The tuning arguments make the line too long.
        case argumentsMakeLineTooLong(bytes: Int)
    }

    /// The system asked for.
    package var path: StorePath
    package var reason: Reason

    package init(path: StorePath, reason: Reason) {
        self.path = path
        self.reason = reason
    }

    /// 400 when the request's arguments are to blame, 404 when the system itself cannot be booted.
    package var status: HTTPResponse.Status {
        if case .argumentsMakeLineTooLong = reason { return .badRequest }
        return .notFound
    }

    package var publicReason: String {
        let limit = IPXEScript.maximumKernelLineBytes
        switch reason {
        case .parametersNotUTF8:
            return "refused: the kernel-params of \(path.shortName) is not UTF-8"
        case .controlCharacterInParameters(let value):
            let scalar = Unicode.Scalar(value).map(IPXEScript.codePoint) ?? "\(value)"
            return "refused: the kernel-params of \(path.shortName) holds a control character (\(scalar))"
        case .systemLineTooLong(let bytes):
            return "refused: the kernel-params of \(path.shortName) make a kernel line of \(bytes) bytes; the kernel keeps \(limit)"
        case .argumentsMakeLineTooLong(let bytes):
            return "cmdline_prefix_args and cmdline_suffix_args make the kernel line of \(path.shortName) \(bytes) bytes; the kernel keeps \(limit)"
        }
    }

    package var logMetadata: Logger.Metadata {
        ["path": "\(path.name)", "refusal": "\(reason)"]
    }

    package var description: String { publicReason }
}
