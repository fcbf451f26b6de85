// swift-tools-version: 6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

/// Libraries a module may use beside the kit (never Hummingbird, NIO or the host).
let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")
let serviceLifecycle: Target.Dependency = .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
/// swift-metrics' API (like swift-log's): the kit records through it, the host decides where it goes.
let coreMetrics: Target.Dependency = .product(name: "CoreMetrics", package: "swift-metrics")

/// The modules: codecs and boot sources, each standing on NetbootKit alone. Adding one is one entry
/// here (its target, wired into the executable and the tests) and one line in the executable.
let modules: [Target] = [
    .target(name: "Codecs", dependencies: ["NetbootKit", "CZlib", "CLzma", "CZstd"], path: "Sources/Codecs", swiftSettings: swiftSettings),
    .target(name: "ClosureSource", dependencies: ["NetbootKit"], path: "Sources/Sources-Closure", swiftSettings: swiftSettings),
    .target(name: "ProfileSource", dependencies: ["NetbootKit", argumentParser, logging], path: "Sources/Sources-Profile", swiftSettings: swiftSettings),
    .target(
        name: "ConfigurationSource", dependencies: ["NetbootKit", argumentParser, logging, serviceLifecycle],
        path: "Sources/Sources-Configuration", swiftSettings: swiftSettings),
    .target(
        name: "HydraSource", dependencies: ["NetbootKit", "CCurl", argumentParser, logging, serviceLifecycle],
        path: "Sources/Sources-Hydra", swiftSettings: swiftSettings),
    .target(name: "FlakeSource", dependencies: ["NetbootKit", argumentParser, serviceLifecycle], path: "Sources/Sources-Flake", swiftSettings: swiftSettings),
    .target(name: "MachineSource", dependencies: ["NetbootKit", argumentParser, logging], path: "Sources/Sources-Machine", swiftSettings: swiftSettings),
]

let package = Package(
    name: "nix-netboot-serve",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "nix-netboot-serve", targets: ["nix-netboot-serve"]),
        .library(name: "NetbootKit", targets: ["NetbootKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // C libraries, as Debian's -dev packages ship them.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CLzma", path: "Sources/CLzma", pkgConfig: "liblzma", providers: [.apt(["liblzma-dev"])]),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CCurl", path: "Sources/CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),

        // The plugin kit: what a codec or a boot source needs, and nothing of the HTTP host.
        .target(
            name: "NetbootKit",
            dependencies: [
                argumentParser, logging, serviceLifecycle, coreMetrics,
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Sources/Kit",
            swiftSettings: swiftSettings
        ),

        // The host: registry, CPIO packing, cache, assembler, layout reader, HTTP, services.
        .target(
            name: "NetbootHost",
            dependencies: [
                "NetbootKit",
                "CZlib",  // crc32 of cached archives
                .product(name: "Hummingbird", package: "hummingbird"),
                logging,
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
                argumentParser, serviceLifecycle,
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                coreMetrics, .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "Sources/Host",
            // Not MemberImportVisibility: with NIO in the module, Glibc's `struct stat` is attributed to
            // NIO's internal CNIOLinux module, which cannot be imported by name.
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")]
        ),

        // The composition root: one line per module.
        .executableTarget(
            name: "nix-netboot-serve",
            dependencies: ["NetbootHost"] + modules.map { .target(name: $0.name) },
            path: "Sources/nix-netboot-serve",
            swiftSettings: swiftSettings
        ),

        // Test support: stand-ins for Nix (an in-memory store over real files) and a scripted source.
        .target(name: "NetbootTesting", dependencies: ["NetbootHost"], path: "Tests/NetbootTesting", swiftSettings: swiftSettings),

        .testTarget(
            name: "NetbootHostTests",
            dependencies: [
                "NetbootHost", "NetbootKit", "NetbootTesting", "CZlib", "CLzma", "CZstd",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                argumentParser, logging, serviceLifecycle,
            ] + modules.map { .target(name: $0.name) },
            path: "Tests/NetbootHostTests",
            swiftSettings: swiftSettings
        ),
    ] + modules
)
