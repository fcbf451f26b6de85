// swift-tools-version: 6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "nix-netboot-serve",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "nix-netboot-serve", targets: ["nix-netboot-serve"]),
        .library(name: "NetbootHost", targets: ["NetbootHost"]),
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
    ],
    targets: [
        // C libraries, as Debian's -dev packages ship them.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CLzma", path: "Sources/CLzma", pkgConfig: "liblzma", providers: [.apt(["liblzma-dev"])]),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CCurl", path: "Sources/CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),

        // The host: protocols, registry, store client, CPIO packing, cache, assembler, HTTP.
        .target(
            name: "NetbootHost",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Sources/Host",
            // Not MemberImportVisibility: with NIO in the module, Glibc's `struct stat` is attributed to
            // NIO's internal CNIOLinux module, which cannot be imported by name.
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")]
        ),

        // Codecs: one Compressor per compression the kernel can unpack.
        .target(
            name: "Codecs",
            dependencies: ["NetbootHost", "CZlib", "CLzma", "CZstd"],
            path: "Sources/Codecs",
            swiftSettings: swiftSettings
        ),

        // Boot sources: each resolves /dispatch/NAME/... to a store path.
        .target(name: "ClosureSource", dependencies: ["NetbootHost"], path: "Sources/Sources-Closure", swiftSettings: swiftSettings),
        .target(
            name: "ProfileSource",
            dependencies: ["NetbootHost", .product(name: "ArgumentParser", package: "swift-argument-parser"), .product(name: "Logging", package: "swift-log")],
            path: "Sources/Sources-Profile", swiftSettings: [.enableUpcomingFeature("ExistentialAny")]),
        .target(
            name: "ConfigurationSource",
            dependencies: [
                "NetbootHost", .product(name: "ArgumentParser", package: "swift-argument-parser"), .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/Sources-Configuration", swiftSettings: swiftSettings),

        .target(
            name: "HydraSource",
            dependencies: [
                "NetbootHost", "CCurl", .product(name: "ArgumentParser", package: "swift-argument-parser"), .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/Sources-Hydra", swiftSettings: swiftSettings),

        // The composition root.
        .executableTarget(
            name: "nix-netboot-serve",
            dependencies: [
                "NetbootHost", "Codecs", "ClosureSource", "ProfileSource", "ConfigurationSource", "HydraSource",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/nix-netboot-serve",
            swiftSettings: swiftSettings
        ),

        .testTarget(
            name: "NetbootHostTests",
            dependencies: [
                "NetbootHost", "Codecs", "ClosureSource", "ProfileSource", "ConfigurationSource", "HydraSource",
                "CZlib", "CLzma", "CZstd",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/NetbootHostTests",
            swiftSettings: swiftSettings
        ),
    ]
)
