// swift-tools-version:6.0
//
// RoamShm: zero-copy shared-memory IPC for Swift, on the roam-shm Rust core.
// Sources live in bindings/swift/ (see bindings/swift/README.md).
//
// Targets
//   RoamShm      the Swift API (hand-written): Host, Guest, Message, ...
//   RoamShmFFI   UniFFI-generated Swift for the control plane (configuration,
//                inspection, session set-up, `RoamError`); committed, regenerated
//                by scripts/gen-swift-bindings.sh (--check finds drift)
//   CRoamShmFFI  the C header + module map RoamShmFFI calls (generated too)
//   CRoamShm     roam_shm.h, the C ABI of the hot path (a copy of
//                bindings/c/include/roam_shm.h, kept in sync by the same script)
//
// Everything is implemented by ONE Rust static library, libroam_shm_swift.a
// (crate bindings/swift/rust), holding both the UniFFI scaffolding and the C ABI
// symbols. How the linker finds it:
//
//   local development  ROAM_SHM_LIB_DIR=<dir holding libroam_shm_swift.a>
//                      (scripts/test-swift.sh copies cargo's archive to
//                      $REPO/.build/roam-shm-native and points it there):
//                      linkedLibrary + an unsafe -L flag. SwiftPM accepts unsafe
//                      flags only in a root package, which is what local dev is.
//   release, Linux     no env var: the system-library target RoamShmNative asks
//                      pkg-config for `roam-shm-swift`; scripts/build-swift-release.sh
//                      builds the prefix (lib/libroam_shm_swift.a +
//                      lib/pkgconfig/roam-shm-swift.pc); consumers set PKG_CONFIG_PATH.
//   release, Apple     no env var: a binary target, RoamShmNative.xcframework, built
//                      by scripts/build-swift-release.sh on macOS (path below, or a
//                      URL + checksum for a published release).
//
// None of the release paths uses unsafe flags, so the package works as a
// versioned SwiftPM dependency.
import PackageDescription

/// Directory holding libroam_shm_swift.a for local development, if set.
let localLibDir: String? = Context.environment["ROAM_SHM_LIB_DIR"].flatMap { $0.isEmpty ? nil : $0 }

// Published Apple binary: set both to use a release URL instead of the local path.
let xcframeworkURL = ""
let xcframeworkChecksum = ""

var nativeDependency: [Target.Dependency] = []
var nativeTargets: [Target] = []
var roamShmLinker: [LinkerSetting] = []

if let dir = localLibDir {
    roamShmLinker = [.linkedLibrary("roam_shm_swift"), .unsafeFlags(["-L\(dir)"])]
} else {
    #if os(Linux)
    nativeTargets = [
        .systemLibrary(
            name: "RoamShmNative",
            path: "bindings/swift/Sources/RoamShmNative",
            pkgConfig: "roam-shm-swift",
            providers: []
        ),
    ]
    #else
    nativeTargets = [
        xcframeworkURL.isEmpty
            ? .binaryTarget(name: "RoamShmNative", path: "bindings/swift/build/RoamShmNative.xcframework")
            : .binaryTarget(name: "RoamShmNative", url: xcframeworkURL, checksum: xcframeworkChecksum),
    ]
    #endif
    nativeDependency = ["RoamShmNative"]
}

let package = Package(
    name: "RoamShm",
    platforms: [.macOS(.v13), .iOS(.v16)],
    products: [
        .library(name: "RoamShm", targets: ["RoamShm"]),
    ],
    targets: nativeTargets + [
        .target(
            name: "CRoamShm",
            path: "bindings/swift/Sources/CRoamShm"
        ),
        .target(
            name: "CRoamShmFFI",
            path: "bindings/swift/Sources/CRoamShmFFI"
        ),
        .target(
            name: "RoamShmFFI",
            dependencies: ["CRoamShmFFI"],
            path: "bindings/swift/Sources/RoamShmFFI"
        ),
        .target(
            name: "RoamShm",
            dependencies: ["RoamShmFFI", "CRoamShm"] + nativeDependency,
            path: "bindings/swift/Sources/RoamShm",
            linkerSettings: roamShmLinker
        ),
        // Test-only (no product): payloads shared with the Rust CLI, and a Swift
        // guest in its own process for the cross-process tests.
        .target(
            name: "RoamShmTestSupport",
            dependencies: ["RoamShm"],
            path: "bindings/swift/Tests/Support"
        ),
        .executableTarget(
            name: "roam-shm-swift-peer",
            dependencies: ["RoamShm", "RoamShmTestSupport"],
            path: "bindings/swift/Tests/Peer"
        ),
        .testTarget(
            name: "RoamShmTests",
            dependencies: ["RoamShm", "RoamShmTestSupport", "roam-shm-swift-peer"],
            path: "bindings/swift/Tests/RoamShmTests"
        ),
    ]
)
