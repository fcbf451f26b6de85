import ArgumentParser
import ClosureSource
import Codecs
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NetbootHost
import NIOCore
import Synchronization
import XCTest

/// The layout reader against real store paths: symlink escapes refused everywhere, real-shaped
/// systems served, the kernel line capped and free of control characters, no dead ends in dispatch.
final class SystemLayoutTests: XCTestCase {

    // MARK: Fixtures

    /// Toplevels built from `Tests/fixtures/layout/systems.nix`.
    struct Fixtures: Sendable {
        let system, relative, kernelPackage, initPackage, throughLeaky, loop, kernelDirectory: StorePath
        let longParams, hugeParams, escapeParams, verticalTabParams, formFeedParams, whitespaceParams: StorePath

        static let shared: Fixtures = {
            func attr(_ name: String) -> StorePath {
                let out = try! shellString(
                    "nix-build \(repositoryRoot)/Tests/fixtures/layout/systems.nix --no-out-link -A \(name) --argstr busyboxDir \(busyboxDirectory)")
                return try! StorePath(absolutePath: out)
            }
            return Fixtures(
                system: attr("system"), relative: attr("relative"), kernelPackage: attr("kernelPackage"), initPackage: attr("initPackage"),
                throughLeaky: attr("throughLeaky"), loop: attr("loop"), kernelDirectory: attr("kernelDirectory"),
                longParams: attr("longParams"), hugeParams: attr("hugeParams"), escapeParams: attr("escapeParams"), verticalTabParams: attr("verticalTabParams"),
                formFeedParams: attr("formFeedParams"), whitespaceParams: attr("whitespaceParams"))
        }()
    }

    /// A file outside the store whose contents must never reach a client.
    struct Secret {
        let path: String
        let text: String
    }

    func makeSecret() throws -> Secret {
        let dir = try makeTemporaryDirectory(self, "secret")
        let text = "NNS-SECRET-\(UUID().uuidString)"
        try (text + "\n").write(toFile: dir + "/secret", atomically: true, encoding: .utf8)
        return Secret(path: dir + "/secret", text: text)
    }

    /// `nix-store --add` of a directory named `name` holding `init` (a file), `kernel` (a file) and
    /// `kernel-params` (a file), each replaced by a symlink where `links` names a target.
    func addToStore(_ name: String, links: [String: String]) throws -> StorePath {
        let dir = try makeTemporaryDirectory(self, "add") + "/" + name
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for file in ["init", "kernel", "kernel-params"] {
            if let target = links[file] {
                try FileManager.default.createSymbolicLink(atPath: dir + "/" + file, withDestinationPath: target)
            } else {
                try "a stand-in \(file)\n".write(toFile: dir + "/" + file, atomically: true, encoding: .utf8)
            }
        }
        return try StorePath(absolutePath: try shellString("nix-store --add \(dir)"))
    }

    func makeApp(_ recorder: LogRecorder) throws -> (app: some ApplicationProtocol, stateDir: String) {
        let stateDir = try makeTemporaryDirectory(self, "state")
        let options = try ServerOptions.parse(["--state-dir", stateDir])
        var registry = ModuleRegistry()
        try registry.register(compressor: ZstdCompressor())
        var logger = Logger(label: "test") { _ in RecordingLogHandler(recorder: recorder) }
        logger.logLevel = .info
        let store = NixStoreCLI()
        try registry.register(source: ClosureSource(context: NetbootServer.sourceContext(options: options, store: store, logger: logger)))
        let server = try NetbootServer(options: options, registry: registry, store: store, logger: logger)
        return (server.testApplication(logger: logger), stateDir)
    }

    // MARK: Real-shaped systems

    func testARealShapedSystemIsServedThroughItsClosure() async throws {
        let fixtures = Fixtures.shared
        let recorder = LogRecorder()
        try await makeApp(recorder).app.test(.router) { client in
            for system in [fixtures.system, fixtures.relative] {
                let script = try await client.execute(uri: "/boot/\(system.name)/netboot.ipxe", method: .get)
                XCTAssertEqual(script.status, .ok, String(buffer: script.body))
                XCTAssertTrue(String(buffer: script.body).contains("kernel bzImage initrd=initrd rdinit=\(system.absolutePath)/init "), String(buffer: script.body))
                let kernel = try await client.execute(uri: "/boot/\(system.name)/bzImage", method: .get)
                XCTAssertEqual(kernel.status, .ok, String(buffer: kernel.body))
                let expected = try Data(contentsOf: URL(fileURLWithPath: fixtures.kernelPackage.absolutePath + "/bzImage"))
                XCTAssertEqual(Data(kernel.body.readableBytesView), expected)
                XCTAssertEqual(kernel.headers[.contentLength], "\(expected.count)")
                XCTAssertEqual(kernel.headers[.eTag], "\"\(system.hashPart)-kernel\"")
                let initrd = try await client.execute(uri: "/boot/\(system.name)/initrd", method: .get)
                XCTAssertEqual(initrd.status, .ok, String(buffer: initrd.body))
                let parsed = try KernelInitramfs.parse(Array(initrd.body.readableBytesView))
                XCTAssertNotNil(parsed.tree["nix/store/\(fixtures.kernelPackage.name)/bzImage"], "the kernel's own path is in the initrd")
                XCTAssertNotNil(parsed.tree["nix/store/\(fixtures.initPackage.name)"])
                let head = try await client.execute(uri: "/boot/\(system.name)/initrd", method: .head)
                XCTAssertEqual(head.status, .ok)
                XCTAssertEqual(head.headers[.contentLength], "\(initrd.body.readableBytes)")
            }
        }
        XCTAssertFalse(recorder.text.contains("refused to boot"), recorder.text)
    }

    // MARK: Escapes

    func testSymlinkEscapesAre404EverywhereWithTheRefusalLogged() async throws {
        let secret = try makeSecret()
        let other = PackFixtures.shared.system  // valid, has a kernel, not in any closure below
        let invalidName = "0" + String(repeating: "1", count: 31) + "-nns-never-registered"
        // A directory that exists in the store but is no valid path (a leftover of a failed build).
        let unregistered = "/nix/store/\(String(repeating: "2", count: 32))-nns-unregistered-\(UUID().uuidString.prefix(8).lowercased())"
        try FileManager.default.createDirectory(atPath: unregistered, withIntermediateDirectories: true)
        try (secret.text + "\n").write(toFile: unregistered + "/kernel", atomically: true, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: unregistered) }

        let cases: [(label: String, path: StorePath, files: [String])] = [
            ("absolute /etc/shadow", try addToStore("nns-escape-absolute", links: ["kernel": "/etc/shadow"]), ["bzImage", "netboot.ipxe", "initrd"]),
            ("relative ../../../../etc/shadow", try addToStore("nns-escape-relative", links: ["kernel": "../../../../etc/shadow"]), ["bzImage", "netboot.ipxe", "initrd"]),
            ("a secret file", try addToStore("nns-escape-secret", links: ["kernel": secret.path, "kernel-params": secret.path]), ["bzImage", "netboot.ipxe", "initrd"]),
            ("a second store path outside the closure", try addToStore("nns-escape-other", links: ["kernel": other.absolutePath + "/kernel"]), ["bzImage", "netboot.ipxe", "initrd"]),
            ("the same, relative", try addToStore("nns-escape-other-relative", links: ["kernel": "../\(other.name)/kernel"]), ["bzImage", "netboot.ipxe", "initrd"]),
            ("an invalid path name", try addToStore("nns-escape-invalid", links: ["kernel": "/nix/store/\(invalidName)/kernel"]), ["bzImage", "netboot.ipxe", "initrd"]),
            ("a directory in the store that is no valid path", try addToStore("nns-escape-unregistered", links: ["kernel": unregistered + "/kernel"]), ["bzImage", "netboot.ipxe", "initrd"]),
            ("the store directory itself", try addToStore("nns-escape-store", links: ["init": "/nix/store"]), ["bzImage", "netboot.ipxe", "initrd"]),
            ("/proc/self/environ as kernel-params", try addToStore("nns-escape-proc", links: ["kernel-params": "/proc/self/environ"]), ["bzImage", "netboot.ipxe", "initrd"]),
            ("a second hop out of a path of the closure", Fixtures.shared.throughLeaky, ["bzImage", "netboot.ipxe", "initrd"]),
        ]
        let recorder = LogRecorder()
        try await makeApp(recorder).app.test(.router) { client in
            for (label, path, files) in cases {
                for file in files {
                    for method in [HTTPRequest.Method.get, .head] where method == .get || file == "initrd" {
                        let response = try await client.execute(uri: "/boot/\(path.name)/\(file)", method: method)
                        let body = String(buffer: response.body)
                        XCTAssertEqual(response.status, .notFound, "\(label): \(method) \(file): \(body)")
                        if method == .get { XCTAssertTrue(body.contains("leads outside its closure"), "\(label): \(file): \(body)") }
                        for leak in [secret.text, secret.path, "root:", "PATH=", "/etc/shadow", "/proc", unregistered, other.name] {
                            XCTAssertFalse(body.contains(leak), "\(label): \(file) leaks \(leak): \(body)")
                        }
                        XCTAssertNil(response.headers[.eTag], "\(label): \(file)")
                    }
                }
            }
        }
        let log = recorder.text
        XCTAssertTrue(log.contains("refused to boot"), log)
        XCTAssertTrue(log.contains("/etc/shadow"), "the log names the target")
        XCTAssertTrue(log.contains("/proc/self/environ"), log)
        XCTAssertTrue(log.contains(secret.path), log)
        XCTAssertTrue(log.contains("symlink leads outside the closure"), log)
        XCTAssertTrue(log.contains("symlink leaves the store"), log)
        XCTAssertFalse(log.contains(secret.text), "the secret itself was never read")
    }

    func testOtherRefusals() async throws {
        let fixtures = Fixtures.shared
        let recorder = LogRecorder()
        try await makeApp(recorder).app.test(.router) { client in
            for (path, reason) in [(fixtures.loop, "too many symlinks"), (fixtures.kernelDirectory, "is not a regular file")] {
                for file in ["bzImage", "netboot.ipxe", "initrd"] {
                    let response = try await client.execute(uri: "/boot/\(path.name)/\(file)", method: .get)
                    XCTAssertEqual(response.status, .notFound, "\(path.name)/\(file)")
                    XCTAssertTrue(String(buffer: response.body).contains(reason), String(buffer: response.body))
                }
            }
        }
        // What Nix refuses to add is not tested through it: a FIFO.
        let dir = try makeTemporaryDirectory(self, "fifo") + "/nns-fifo-init"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        XCTAssertEqual(mkfifo(dir + "/init", 0o644), 0)
        let added = try shell("nix-store --add \(dir)", allowFailure: true)
        XCTAssertNotEqual(added.status, 0, "nix-store --add took a FIFO: test it through the routes now")
        XCTAssertTrue(added.error.contains("unsupported type"), added.error)
    }

    // MARK: Objects Nix never stores, in a store directory of our own

    func testFIFOsSocketsDevicesAndLinksAreRefusedWithoutBeingOpened() throws {
        let store = try makeTemporaryDirectory(self, "store")
        func path(_ digit: Character, _ name: String) throws -> StorePath {
            try StorePath(name: String(repeating: digit, count: 32) + "-" + name)
        }
        let root = try path("0", "sys"), kernelPackage = try path("1", "linux"), outside = try path("2", "other")
        for dir in [root, kernelPackage, outside] { try FileManager.default.createDirectory(atPath: store + "/" + dir.name, withIntermediateDirectories: true) }
        try "the kernel\n".write(toFile: store + "/\(kernelPackage.name)/bzImage", atomically: true, encoding: .utf8)
        try "not for you\n".write(toFile: store + "/\(outside.name)/bzImage", atomically: true, encoding: .utf8)
        XCTAssertEqual(mkfifo(store + "/\(root.name)/init", 0o644), 0)
        XCTAssertEqual(mkfifo(store + "/\(kernelPackage.name)/fifo", 0o644), 0)
        let socketPath = store + "/\(kernelPackage.name)/socket"
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in socketPath.utf8.enumerated() where index < raw.count - 1 { raw[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        XCTAssertEqual(bound, 0, "bind a unix socket in the fake store")
        defer { close(fd) }
        let hasDevice = (try? shell("mknod \(store)/\(kernelPackage.name)/device c 1 3"))?.status == 0

        let layout = SystemLayout(root: root, closure: [root, kernelPackage], storeDirectory: store)
        func link(_ name: String, _ target: String) throws {
            let file = store + "/\(root.name)/\(name)"
            try? FileManager.default.removeItem(atPath: file)
            try FileManager.default.createSymbolicLink(atPath: file, withDestinationPath: target)
        }
        func reason(_ entry: SystemLayout.Entry) -> SystemLayoutError.Reason? {
            do { _ = try layout.open(entry); return nil } catch { return error.reason }
        }
        // init is a FIFO: refused by lstat, never opened (an open would block without a writer).
        XCTAssertEqual(reason(.`init`), .notRegularFile(kind: "a FIFO"))
        try link("kernel", "../\(kernelPackage.name)/fifo")
        XCTAssertEqual(reason(.kernel), .notRegularFile(kind: "a FIFO"))
        try link("kernel", "\(store)/\(kernelPackage.name)/socket")
        XCTAssertEqual(reason(.kernel), .notRegularFile(kind: "a socket"))
        if hasDevice {
            try link("kernel", "../\(kernelPackage.name)/device")
            XCTAssertEqual(reason(.kernel), .notRegularFile(kind: "a character device"))
        }
        try link("kernel", "/dev/null")
        XCTAssertEqual(reason(.kernel), .leavesStore(link: store + "/\(root.name)/kernel", target: "/dev/null"))
        try link("kernel", "../\(outside.name)/bzImage")
        guard case .outsideClosure(outside.name, _, _) = reason(.kernel) else { return XCTFail("\(String(describing: reason(.kernel)))") }
        // `..` is taken after the link before it was replaced by its target: kernel-dir is a link to
        // a directory in another path, and `..` from there is that path, not the toplevel.
        try FileManager.default.createDirectory(atPath: store + "/\(kernelPackage.name)/boot", withIntermediateDirectories: true)
        try link("kernel-dir", "\(store)/\(kernelPackage.name)/boot")
        try link("kernel", "kernel-dir/../bzImage")
        let file = try layout.open(.kernel)
        XCTAssertEqual(file.path, store + "/\(kernelPackage.name)/bzImage")
        XCTAssertEqual(file.size, 11)
        try link("kernel", "kernel-dir/../../../../etc/passwd")
        guard case .leavesStore = reason(.kernel) else { return XCTFail("\(String(describing: reason(.kernel)))") }
        try link("kernel", "kernel-dir/../../\(outside.name)/bzImage")
        guard case .outsideClosure = reason(.kernel) else { return XCTFail("\(String(describing: reason(.kernel)))") }
        // A chain that makes the resolver walk more than its step cap (each `d/..` is real work).
        try FileManager.default.createDirectory(atPath: store + "/\(root.name)/d", withIntermediateDirectories: true)
        try link("kernel", String(repeating: "d/../", count: 600) + "../\(kernelPackage.name)/bzImage")
        XCTAssertEqual(reason(.kernel), .tooManyLinks)
        try link("kernel", String(repeating: "d/../", count: 100) + "../\(kernelPackage.name)/bzImage")
        XCTAssertEqual(reason(.kernel), nil, "a long but bounded walk is fine")
        // A file is no directory.
        try link("kernel", "../\(kernelPackage.name)/bzImage/..")
        XCTAssertEqual(reason(.kernel), .missing)
        // kernel-params: size cap; absent is empty.
        XCTAssertEqual(try layout.kernelParameters(), [])
        try String(repeating: "x", count: SystemLayout.kernelParametersLimit + 1).write(toFile: store + "/\(root.name)/kernel-params", atomically: true, encoding: .utf8)
        XCTAssertEqual(reason(.kernelParameters), nil, "open without a limit")
        XCTAssertThrowsError(try layout.kernelParameters()) { error in
            XCTAssertEqual((error as? SystemLayoutError)?.reason, .tooLarge(size: UInt64(SystemLayout.kernelParametersLimit + 1), limit: SystemLayout.kernelParametersLimit))
        }
    }

    // MARK: Kernel line

    func testTheKernelLineIsCappedAt2048Bytes() async throws {
        let system = Fixtures.shared.system
        let recorder = LogRecorder()
        let (app, _) = try makeApp(recorder)
        try await app.test(.router) { client in
            let plain = try await client.execute(uri: "/boot/\(system.name)/netboot.ipxe", method: .get)
            let line = try XCTUnwrap(String(buffer: plain.body).split(separator: "\n").first { $0.hasPrefix("kernel ") })
            let room = IPXEScript.maximumKernelLineBytes - line.utf8.count - 1  // one space before the suffix
            let fits = try await client.execute(uri: "/boot/\(system.name)/netboot.ipxe?cmdline_suffix_args=\(String(repeating: "a", count: room))", method: .get)
            XCTAssertEqual(fits.status, .ok)
            let written = try XCTUnwrap(String(buffer: fits.body).split(separator: "\n").first { $0.hasPrefix("kernel ") })
            XCTAssertEqual(written.utf8.count, 2048)
            let over = try await client.execute(uri: "/boot/\(system.name)/netboot.ipxe?cmdline_suffix_args=\(String(repeating: "a", count: room + 1))", method: .get)
            XCTAssertEqual(over.status, .badRequest)
            XCTAssertTrue(String(buffer: over.body).contains("the kernel keeps 2048"), String(buffer: over.body))
            let prefixed = try await client.execute(uri: "/boot/\(system.name)/netboot.ipxe?cmdline_prefix_args=\(String(repeating: "b", count: room))&cmdline_suffix_args=c", method: .get)
            XCTAssertEqual(prefixed.status, .badRequest)
            let huge = try await client.execute(uri: "/boot/\(system.name)/netboot.ipxe?cmdline_suffix_args=\(String(repeating: "a", count: 10_000))", method: .get)
            XCTAssertEqual(huge.status, .badRequest)
            XCTAssertLessThan(huge.body.readableBytes, 200)
            // The system's own kernel-params too long: refused with a reason, whatever the query.
            let long = Fixtures.shared.longParams
            for file in ["netboot.ipxe", "netboot.ipxe?cmdline_suffix_args=x"] {
                let response = try await client.execute(uri: "/boot/\(long.name)/\(file)", method: .get)
                XCTAssertEqual(response.status, .notFound)
                XCTAssertTrue(String(buffer: response.body).contains("kernel-params of \(long.name) make a kernel line of"), String(buffer: response.body))
            }
            let huge1MiB = try await client.execute(uri: "/boot/\(Fixtures.shared.hugeParams.name)/netboot.ipxe", method: .get)
            XCTAssertEqual(huge1MiB.status, .notFound)
            XCTAssertTrue(String(buffer: huge1MiB.body).contains("kernel-params of \(Fixtures.shared.hugeParams.name) is larger than 16384 bytes"), String(buffer: huge1MiB.body))
        }
        XCTAssertTrue(recorder.text.contains("systemLineTooLong"), recorder.text)
    }

    func testControlCharactersAreRefused() async throws {
        let fixtures = Fixtures.shared
        try await makeApp(LogRecorder()).app.test(.router) { client in
            for bad in ["%0B", "%0C", "%1B%5B2J", "%7F", "%09", "%00", "%0A", "%0D", "%C2%9B"] {
                for argument in ["cmdline_prefix_args", "cmdline_suffix_args"] {
                    let response = try await client.execute(uri: "/boot/\(fixtures.system.name)/netboot.ipxe?\(argument)=a\(bad)b", method: .get)
                    XCTAssertEqual(response.status, .badRequest, "\(argument) \(bad)")
                    XCTAssertTrue(String(buffer: response.body).contains("may not contain control characters"), String(buffer: response.body))
                }
            }
            for (path, code) in [(fixtures.escapeParams, "U+001B"), (fixtures.verticalTabParams, "U+000B"), (fixtures.formFeedParams, "U+000C")] {
                let response = try await client.execute(uri: "/boot/\(path.name)/netboot.ipxe", method: .get)
                XCTAssertEqual(response.status, .notFound, path.name)
                XCTAssertTrue(String(buffer: response.body).contains("holds a control character (\(code))"), String(buffer: response.body))
            }
            let spaced = try await client.execute(uri: "/boot/\(fixtures.whitespaceParams.name)/netboot.ipxe", method: .get)
            XCTAssertEqual(spaced.status, .ok)
            XCTAssertTrue(String(buffer: spaced.body).contains("/init console=ttyS0 quiet loglevel=4\ninitrd initrd\n"), String(buffer: spaced.body))
        }
        XCTAssertThrowsError(try IPXEScript.kernelParameters([0x61, 0x00, 0x62], of: fixtures.system))
        XCTAssertThrowsError(try IPXEScript.kernelParameters([0x61, 0xFF], of: fixtures.system))
        XCTAssertEqual(try IPXEScript.kernelParameters(Array(" a=\"x  y\"\t\r\nb ".utf8), of: fixtures.system), "a=\"x y\" b")
    }

    // MARK: Dispatch

    func testDispatchAnswersTheRetryScriptInsteadOfADeadEnd() async throws {
        let fixtures = Fixtures.shared
        let secret = try makeSecret()
        let escaping = try addToStore("nns-dispatch-escape", links: ["kernel": secret.path])
        let recorder = LogRecorder()
        let (app, stateDir) = try makeApp(recorder)
        try await app.test(.router) { client in
            let cases: [(String, String)] = [
                ("/dispatch/closure/\(PackFixtures.shared.tree.name)", "has no init: it is not a NixOS system"),
                ("/dispatch/closure/\(escaping.name)", "leads outside its closure"),
                ("/dispatch/closure/\(fixtures.longParams.name)", "make a kernel line of"),
                ("/dispatch/closure/\(fixtures.hugeParams.name)", "is larger than 16384 bytes"),
                ("/dispatch/closure/\(fixtures.escapeParams.name)", "holds a control character"),
                ("/dispatch/closure/\(fixtures.system.name)?cmdline_suffix_args=\(String(repeating: "a", count: 1990))", "the kernel keeps 2048"),
            ]
            for (uri, reason) in cases {
                let response = try await client.execute(uri: uri, method: .get)
                let body = String(buffer: response.body)
                XCTAssertEqual(response.status, .ok, "\(uri): \(body)")
                XCTAssertEqual(response.headers[.cacheControl], "no-store")
                XCTAssertTrue(body.hasPrefix("#!ipxe\necho "), body)
                XCTAssertTrue(body.contains(reason), "\(uri): \(body)")
                XCTAssertTrue(body.contains("chain --autofree "), body)
                XCTAssertFalse(body.contains(secret.path) || body.contains(secret.text), body)
            }
            // A query bad in itself is still a 400, before any work.
            let huge = try await client.execute(uri: "/dispatch/closure/\(fixtures.system.name)?cmdline_suffix_args=\(String(repeating: "a", count: 3000))", method: .get)
            XCTAssertEqual(huge.status, .badRequest)
            // A system still redirects.
            let good = try await client.execute(uri: "/dispatch/closure/\(fixtures.system.name)?cmdline_suffix_args=x", method: .get)
            XCTAssertEqual(good.status, .found)
            XCTAssertEqual(good.headers[.location], "/boot/\(fixtures.system.name)/netboot.ipxe?cmdline_suffix_args=x")
        }
        let pins = (try? FileManager.default.contentsOfDirectory(atPath: stateDir + "/gc-roots/pins")) ?? []
        XCTAssertFalse(pins.contains { $0.contains(PackFixtures.shared.tree.hashPart) || $0.contains(escaping.hashPart) }, "refused paths are not pinned: \(pins)")
        XCTAssertTrue(recorder.text.contains(secret.path), "the log names the target")
    }
}

/// Log lines kept in memory, for tests that check what the server logged.
final class LogRecorder: Sendable {
    private let lines = Mutex<[String]>([])

    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var text: String { lines.withLock { $0.joined(separator: "\n") } }
}

/// A log handler that writes into a ``LogRecorder``.
struct RecordingLogHandler: LogHandler {
    let recorder: LogRecorder
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        let fields = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        recorder.append("\(event.level) \(event.message) \(fields)")
    }
}
