#!/usr/bin/env bash
# The Swift guest of scripts/demo.sh: bindings/swift/Tests/Peer (roam-shm-swift-peer),
# built by SwiftPM and run through scripts/swift-toolchain.sh (native swift, or the
# cached Debian trixie chroot, which shares /tmp and /dev/shm with this host).
#
#   scripts/demo-swift-guest.sh build
#   scripts/demo-swift-guest.sh run SOCKET
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh

case "${1:-}" in
  build)
    log "building the Swift guest (swift build in the Swift toolchain)"
    scripts/test-swift.sh --build-only
    ;;
  run)
    sock=${2:?usage: scripts/demo-swift-guest.sh run SOCKET}
    scripts/swift-toolchain.sh -- .build/debug/roam-shm-swift-peer --socket "$sock" \
      --count 2000 --size 0 --max-size 200000 --seed 7 --progress-every 1000000 |
      sed -u 's/^/swift /'
    ;;
  *) die "usage: scripts/demo-swift-guest.sh build | run SOCKET" ;;
esac
