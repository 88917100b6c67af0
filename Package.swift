// swift-tools-version: 6.2
import PackageDescription

// Every target builds in Swift 6 language mode (the tools version sets it); these upcoming
// features make imports and existentials explicit so module boundaries stay visible.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]
// `roundf`, `expf` and friends live in libm, which Swift does not link by itself on Linux.
let libm: [LinkerSetting] = [.linkedLibrary("m", .when(platforms: [.linux]))]

let package = Package(
    name: "wconv",
    products: [
        .executable(name: "wconv", targets: ["wconv"]),
        .library(name: "WConvKit", targets: ["TensorCore", "Formats", "Quantize", "Pipeline", "Verify", "Finetune"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // C libraries, found through pkg-config (Debian: libopenblas-dev, libzstd-dev, libjson-c-dev).
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CJSONC", pkgConfig: "json-c", providers: [.apt(["libjson-c-dev"])]),

        .target(name: "TensorCore", swiftSettings: swiftSettings, linkerSettings: libm),
        .target(name: "Formats", dependencies: ["TensorCore", "CJSONC", "CZstd", .product(name: "Crypto", package: "swift-crypto")],
                swiftSettings: swiftSettings),
        .target(name: "Quantize", dependencies: ["TensorCore"], swiftSettings: swiftSettings, linkerSettings: libm),
        .target(name: "Pipeline", dependencies: ["TensorCore", "Formats", "Quantize"],
                swiftSettings: swiftSettings, linkerSettings: libm),
        .target(name: "Verify", dependencies: ["TensorCore", "Formats", "Quantize", "Pipeline", "COpenBLAS"],
                swiftSettings: swiftSettings, linkerSettings: libm),
        .target(name: "Finetune", dependencies: ["TensorCore", "Formats", "Quantize", "Pipeline", "Verify", "COpenBLAS"],
                swiftSettings: swiftSettings, linkerSettings: libm),
        .executableTarget(
            name: "wconv",
            dependencies: ["TensorCore", "Formats", "Quantize", "Pipeline", "Verify", "Finetune",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings),

        .target(name: "TestSupport", dependencies: ["TensorCore", .product(name: "Crypto", package: "swift-crypto")], path: "Tests/TestSupport",
                swiftSettings: swiftSettings),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "FormatsTests", dependencies: ["Formats", "TensorCore", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "QuantizeTests", dependencies: ["Quantize", "TensorCore", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "VerifyTests", dependencies: ["Verify", "Formats", "TensorCore", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "Formats", "TensorCore", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "FinetuneTests", dependencies: ["Finetune", "Verify", "Formats", "Quantize", "TensorCore", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "wconvTests", dependencies: ["Formats", "TensorCore", "TestSupport"], swiftSettings: swiftSettings),
    ]
)
