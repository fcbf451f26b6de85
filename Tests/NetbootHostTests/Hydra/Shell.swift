import Foundation
import XCTest

/// What a shell command printed (trimmed) and how it ended.
struct ShellResult {
    var status: Int32
    var output: String
    var error: String
}

/// ``shell(_:environment:allowFailure:)`` with its output as trimmed text.
@discardableResult
func sh(_ command: String, allowFailure: Bool = false) throws -> ShellResult {
    let result = try shell(command, allowFailure: allowFailure)
    return ShellResult(
        status: result.status,
        output: String(decoding: result.output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines),
        error: result.error)
}

/// ``makeTemporaryDirectory(_:_:)`` under the name the Hydra tests use.
func temporaryDirectory(_ test: XCTestCase, _ label: String) throws -> String {
    try makeTemporaryDirectory(test, "hydra-\(label)")
}
