import Foundation
import Hummingbird
import Logging
import NetbootHost
import ServiceLifecycle
import XCTest

/// A small tmpfs mounted for one test (the tests run as root) and unmounted by its teardown.
func mountTmpfs(_ test: XCTestCase, size: String, readOnly: Bool = false) throws -> String {
    let dir = try makeTemporaryDirectory(test, "tmpfs")
    try shell("mount -t tmpfs -o size=\(size)\(readOnly ? ",ro" : "") tmpfs \(dir)")
    // Registered after the directory's removal block, so it runs first (teardown blocks run last-in, first-out).
    test.addTeardownBlock { _ = try? shell("umount -l \(dir)", allowFailure: true) }
    return dir
}

/// The names in `dir` that are half-written archives.
func temporaries(in dir: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix(".nns-tmp-") }
}

/// The one archive file of `path` in `dir` (any codec, level, checksum).
func archiveFile(of path: StorePath, in dir: String) throws -> String {
    let names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix(path.name + "@") }
    guard names.count == 1 else { throw ShellError(description: "expected one archive of \(path.name) in \(dir), found \(names)") }
    return dir + "/" + names[0]
}

/// Flips one bit in the middle of a file, keeping its size (the file may be read-only).
func flipBit(in file: String) throws {
    let handle = try FileHandleWritable(file)
    defer { handle.close() }
    try handle.flipMiddleBit()
}

/// Opens a read-only cache file for writing as root would (chmod first).
struct FileHandleWritable {
    let descriptor: Int32
    let size: Int

    init(_ path: String) throws {
        chmod(path, 0o644)
        descriptor = open(path, O_RDWR)
        guard descriptor >= 0 else { throw ShellError(description: "open \(path): \(errno)") }
        var info = stat()
        fstat(descriptor, &info)
        size = Int(info.st_size)
    }

    func flipMiddleBit() throws {
        guard size > 0 else { throw ShellError(description: "empty file") }
        var byte: UInt8 = 0
        let at = off_t(size / 2)
        guard pread(descriptor, &byte, 1, at) == 1 else { throw ShellError(description: "read") }
        byte ^= 0x10
        guard pwrite(descriptor, &byte, 1, at) == 1 else { throw ShellError(description: "write") }
    }

    func close() { _ = Foundation.close(descriptor) }
}

/// Truncates a (read-only) file to `size` bytes.
func truncateFile(_ file: String, to size: Int) throws {
    chmod(file, 0o644)
    guard truncate(file, off_t(size)) == 0 else { throw ShellError(description: "truncate \(file): \(errno)") }
}

/// Runs `services` (a cache's or an assembler's work) until the test ends, as the server runs them.
func startServices(_ services: [any Service], for test: XCTestCase) {
    let running = Task {
        await withDiscardingTaskGroup { group in
            for service in services { group.addTask { try? await service.run() } }
        }
    }
    test.addTeardownBlock {
        running.cancel()
        await running.value
    }
}

extension XCTestCase {
    /// `cache`, with its service running until the test ends.
    func running(_ cache: CPIOCache) -> CPIOCache {
        startServices([cache], for: self)
        return cache
    }

    /// `assembler`, with its services running until the test ends.
    func running(_ assembler: InitrdAssembler) -> InitrdAssembler {
        startServices(assembler.services, for: self)
        return assembler
    }
}

extension NetbootServer {
    /// The router served with the server's background services (the cache, packing passes, the
    /// sources' coordinators), as `.router` tests need it.
    func testApplication(logger: Logger? = nil) -> Application<RouterResponder<NetbootRequestContext>> {
        Application(router: makeRouter(), services: services, logger: logger ?? self.logger)
    }
}
