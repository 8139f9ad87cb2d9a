#!/usr/bin/env bash
# Build the release form of the native library the Swift package links, so a
# SwiftPM dependency on RoamShm needs no unsafe flags.
#
#   scripts/build-swift-release.sh            # build the artifact for this OS
#   scripts/build-swift-release.sh --verify   # ... then build and run a consumer package
#                                             #     against it (Linux: in the Swift toolchain)
#
# Which path Package.swift takes (see its header comment):
#   ROAM_SHM_LIB_DIR set  local development: linkedLibrary + an unsafe -L flag
#                         (scripts/test-swift.sh; root package only)
#   Linux, unset          system-library target RoamShmNative, found with pkg-config:
#                         this script writes bindings/swift/build/roam-shm-swift/
#                         {lib/libroam_shm_swift.a, lib/pkgconfig/roam-shm-swift.pc,
#                         include/roam_shm.h} and a .tar.gz of it; consumers unpack it
#                         anywhere and set PKG_CONFIG_PATH=<dir>/lib/pkgconfig
#                         (the .pc file is relocatable: ${pcfiledir}).
#   Apple, unset          binary target RoamShmNative.xcframework (macOS arm64+x86_64,
#                         iOS, iOS simulator), built here on macOS with xcodebuild into
#                         bindings/swift/build/; for a published release, upload the zip
#                         and put its URL and the printed checksum into Package.swift
#                         (xcframeworkURL / xcframeworkChecksum).
# (A static-library .artifactbundle binary target would be the portable choice, but
# Swift 6.0.3 rejects it on Linux.)
#
# The library is built with LTO in its own target directory (target/swift-release).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh

VERIFY=0
case "${1:-}" in
  --verify) VERIFY=1 ;;
  "") ;;
  -h | --help) sed -n '2,28p' "$0"; exit 0 ;;
  *) die "unknown argument: $1 (see --help)" ;;
esac

OUT=bindings/swift/build
TARGET_DIR=target/swift-release
VERSION=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="roam-shm-swift"))')
# Release profile overrides for this build only: one LTO'd codegen unit, no debug info.
export CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 CARGO_PROFILE_RELEASE_DEBUG=0

build_lib() { # build_lib [--target TRIPLE]
  run cargo build --locked --release -p roam-shm-swift --target-dir "$TARGET_DIR" "$@"
}

linux_release() {
  build_lib
  local triple prefix tarball
  triple=$(rustc -vV | sed -n 's/^host: //p')
  prefix=$OUT/roam-shm-swift
  rm -rf -- "$prefix"
  mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
  cp "$TARGET_DIR/release/libroam_shm_swift.a" "$prefix/lib/"
  cp bindings/c/include/roam_shm.h "$prefix/include/"
  cat >"$prefix/lib/pkgconfig/roam-shm-swift.pc" <<EOF
# roam-shm for Swift: one static library with the UniFFI control plane and the C ABI.
# Relocatable: paths are relative to this file.
prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: roam-shm-swift
Description: Zero-copy shared-memory IPC (roam 7.x compatible), native part of the RoamShm Swift package
Version: $VERSION
Libs: -L\${libdir} -lroam_shm_swift
Cflags: -I\${includedir}
EOF
  tarball=$OUT/roam-shm-swift-$VERSION-$triple.tar.gz
  run tar -czf "$tarball" -C "$OUT" roam-shm-swift
  log "library: $(du -h "$prefix/lib/libroam_shm_swift.a" | cut -f1) ($prefix/lib/libroam_shm_swift.a)"
  log "artifact: $tarball (sha256 $(sha256sum "$tarball" | cut -d' ' -f1))"
  log "use: unpack it, then PKG_CONFIG_PATH=<dir>/roam-shm-swift/lib/pkgconfig swift build"
}

apple_release() {
  command -v xcodebuild >/dev/null || die "xcodebuild not found (needs Xcode)"
  local t
  local targets=(aarch64-apple-darwin x86_64-apple-darwin aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios)
  for t in "${targets[@]}"; do
    run rustup target add "$t"
    build_lib --target "$t"
  done
  local lib=libroam_shm_swift.a fat=$TARGET_DIR/fat
  mkdir -p "$fat/macos" "$fat/ios-sim"
  run lipo -create "$TARGET_DIR/aarch64-apple-darwin/release/$lib" "$TARGET_DIR/x86_64-apple-darwin/release/$lib" \
    -output "$fat/macos/$lib"
  run lipo -create "$TARGET_DIR/aarch64-apple-ios-sim/release/$lib" "$TARGET_DIR/x86_64-apple-ios/release/$lib" \
    -output "$fat/ios-sim/$lib"
  local xcf=$OUT/RoamShmNative.xcframework
  rm -rf -- "$xcf"
  run xcodebuild -create-xcframework \
    -library "$fat/macos/$lib" \
    -library "$TARGET_DIR/aarch64-apple-ios/release/$lib" \
    -library "$fat/ios-sim/$lib" \
    -output "$xcf"
  (cd "$OUT" && rm -f RoamShmNative.xcframework.zip && run zip -qry RoamShmNative.xcframework.zip RoamShmNative.xcframework)
  log "artifact: $xcf (used by Package.swift when xcframeworkURL is empty)"
  log "for a published release: upload $OUT/RoamShmNative.xcframework.zip, then set in Package.swift:"
  log "  xcframeworkURL = \"<its URL>\""
  log "  xcframeworkChecksum = \"$(swift package compute-checksum "$OUT/RoamShmNative.xcframework.zip")\""
}

# A throwaway package that depends on this one by path, with no ROAM_SHM_LIB_DIR:
# it must resolve, build and link through the release path alone.
verify_linux() {
  local dir pc
  dir=$(mktemp -d /tmp/roam-swift-release.XXXXXX)
  trap 'rm -rf -- "$dir"' RETURN
  # The package as it would be committed: the manifest and Swift sources (tracked
  # and new files, not ignored ones).
  mkdir -p "$dir/roam-shm"
  git ls-files -z --cached --others --exclude-standard -- Package.swift bindings/swift/Sources bindings/swift/Tests |
    tar --null -T - -cf - | tar -xf - -C "$dir/roam-shm"
  mkdir -p "$dir/consumer/Sources/consumer"
  cat >"$dir/consumer/Package.swift" <<EOF
// swift-tools-version:6.0
import PackageDescription
let package = Package(
    name: "consumer",
    dependencies: [.package(path: "$dir/roam-shm")],
    targets: [.executableTarget(name: "consumer", dependencies: [.product(name: "RoamShm", package: "roam-shm")])]
)
EOF
  # The program is the README's example (bindings/swift/README.md, "## Example"),
  # so the documented code is compiled and run against the release artifact.
  python3 - bindings/swift/README.md "/tmp/roam-release-check-$$.sock" >"$dir/consumer/Sources/consumer/main.swift" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
section = text.split("## Example", 1)[1]
code = re.search(r"```swift\n(.*?)```", section, re.S).group(1)
sys.stdout.write(code.replace("/tmp/demo.sock", sys.argv[2]))
EOF
  unset ROAM_SHM_LIB_DIR
  export PKG_CONFIG_PATH=$REPO/$OUT/roam-shm-swift/lib/pkgconfig
  log "the manifest without ROAM_SHM_LIB_DIR must use no unsafe flags:"
  scripts/swift-toolchain.sh -C "$dir/roam-shm" -- swift package dump-package >"$dir/manifest.json"
  if grep -q unsafeFlags "$dir/manifest.json"; then
    die "Package.swift uses unsafeFlags without ROAM_SHM_LIB_DIR"
  fi
  grep -q '"pkgConfig" : "roam-shm-swift"' "$dir/manifest.json" ||
    die "Package.swift does not use the pkg-config system library without ROAM_SHM_LIB_DIR"
  log "  none; RoamShmNative is the pkg-config system library"
  run scripts/swift-toolchain.sh -C "$dir/consumer" -- swift run consumer | tee "$dir/run.log"
  grep -qx hello "$dir/run.log" || die "the README example did not print hello"
  log "the README example built against the release artifact and printed hello"
}

case "$(uname -s)" in
  Linux)
    linux_release
    [[ $VERIFY == 0 ]] || verify_linux
    ;;
  Darwin)
    apple_release
    [[ $VERIFY == 0 ]] || log "--verify: on macOS, build a consumer package against the XCFramework by hand (not automated)"
    ;;
  *) die "unsupported OS $(uname -s)" ;;
esac
