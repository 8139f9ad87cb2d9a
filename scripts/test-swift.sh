#!/usr/bin/env bash
# Build and test the Swift package, including the runs against the Rust CLI.
#
#   scripts/test-swift.sh              # everything
#   scripts/test-swift.sh --no-cross   # skip the cross-language runs (unit tests only)
#   scripts/test-swift.sh --build-only # steps 1 and 3 only (used by scripts/demo.sh)
#
# Steps, each printed as it runs:
#   1. cargo build (host): the staticlib libroam_shm_swift.a and the roam-shm CLI
#   2. drift checks: the UniFFI sources + the header copy (gen-swift-bindings.sh
#      --check) and the C header itself (gen-c-header.sh --check)
#   3. swift build --build-tests, in the Swift toolchain (scripts/swift-toolchain.sh:
#      native swift, or a cached Debian trixie chroot that shares /tmp and /dev/shm)
#   4. the Rust peers on the host side: `roam-shm host --echo` (socket under /tmp,
#      segment under /dev/shm) for the Swift guests, and a watcher that starts
#      `roam-shm guest` once the Swift host's socket appears
#   5. swift test (XCTest + Swift Testing), whose own summary is shown; then the
#      Rust side's verdicts: the guest's byte-for-byte check, `roam-shm segment
#      inspect --json` (no slot left allocated after the SIGKILLed Swift guest) and
#      the host's recovery lines
# Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh

CROSS=1
BUILD_ONLY=0
case "${1:-}" in
  --no-cross) CROSS=0 ;;
  --build-only) BUILD_ONLY=1 ;;
  "") ;;
  -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
  *) die "unknown argument: $1 (see --help)" ;;
esac

COUNT=${ROAM_SHM_TEST_COUNT:-10000}
CARGO_TARGET=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
# The Swift build links the archive from a directory inside the repository: the
# toolchain chroot sees the repository, but not a target/ that is a symlink to a
# cache elsewhere (as in CI).
LIB_DIR=$REPO/.build/roam-shm-native
step_start=$SECONDS
step() {
  section "$* (+$((SECONDS - step_start)) s)"
}

step "1/5 cargo build: libroam_shm_swift.a and the roam-shm CLI"
run cargo build --locked -p roam-shm-swift -p roam-shm-cli
[[ -f $CARGO_TARGET/debug/libroam_shm_swift.a ]] || die "no $CARGO_TARGET/debug/libroam_shm_swift.a after the build"

if [[ $BUILD_ONLY == 0 ]]; then
  step "2/5 drift checks"
  run scripts/gen-swift-bindings.sh --check
  run scripts/gen-c-header.sh --check
fi

step "3/5 swift build --build-tests"
# SwiftPM does not relink when only the static library changed: when it did, copy
# it and drop the linked products, so they are relinked against the new archive.
mkdir -p "$LIB_DIR"
if ! cmp -s "$CARGO_TARGET/debug/libroam_shm_swift.a" "$LIB_DIR/libroam_shm_swift.a"; then
  log "libroam_shm_swift.a changed: copying it to $LIB_DIR, removing linked Swift products so they relink"
  cp "$CARGO_TARGET/debug/libroam_shm_swift.a" "$LIB_DIR/libroam_shm_swift.a"
  rm -rf .build/*/debug/RoamShmPackageTests.xctest .build/*/debug/roam-shm-swift-peer
fi
export ROAM_SHM_LIB_DIR=$LIB_DIR
run scripts/swift-toolchain.sh -- swift build --build-tests
[[ $BUILD_ONLY == 0 ]] || exit 0

RUN_DIR=""
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  [[ -z $RUN_DIR ]] || rm -rf -- "$RUN_DIR"
  [[ -z ${SEGMENT:-} ]] || rm -f -- "$SEGMENT"
}
trap cleanup EXIT

if [[ $CROSS == 1 ]]; then
  step "4/5 Rust peers for the cross-language tests"
  RUN_DIR=$(mktemp -d /tmp/roam-swift-test.XXXXXX)
  CLI=$CARGO_TARGET/debug/roam-shm
  SEGMENT=/dev/shm/roam-swift-test-$$
  RUST_HOST_SOCKET=$RUN_DIR/rust-host.sock
  SWIFT_HOST_SOCKET=$RUN_DIR/swift-host.sock
  log "+ $CLI host --socket $RUST_HOST_SOCKET --echo --segment $SEGMENT --verbose  (background)"
  "$CLI" host --socket "$RUST_HOST_SOCKET" --echo --segment "$SEGMENT" --verbose >"$RUN_DIR/rust-host.log" 2>&1 &
  HOST_PID=$!
  PIDS+=("$HOST_PID")
  for _ in $(seq 200); do [[ -S $RUST_HOST_SOCKET ]] && break; sleep 0.05; done
  [[ -S $RUST_HOST_SOCKET ]] || { cat "$RUN_DIR/rust-host.log" >&2; die "the Rust host did not start"; }
  GUEST_ARGS=(guest --socket "$SWIFT_HOST_SOCKET" --count "$COUNT" --size 0 --max-size 300000 --seed 11)
  log "+ (once $SWIFT_HOST_SOCKET appears) $CLI ${GUEST_ARGS[*]}  (background)"
  (
    for _ in $(seq 12000); do [[ -S $SWIFT_HOST_SOCKET ]] && break; sleep 0.05; done
    status=0
    "$CLI" "${GUEST_ARGS[@]}" >"$RUN_DIR/rust-guest.log" 2>&1 || status=$?
    echo "$status" >"$RUN_DIR/rust-guest.status"
  ) &
  PIDS+=("$!")
  export ROAM_SHM_TEST_RUST_HOST_SOCKET=$RUST_HOST_SOCKET ROAM_SHM_TEST_RUST_HOST_SEGMENT=$SEGMENT
  export ROAM_SHM_TEST_SWIFT_HOST_SOCKET=$SWIFT_HOST_SOCKET ROAM_SHM_TEST_COUNT=$COUNT
else
  step "4/5 cross-language runs skipped (--no-cross)"
fi

step "5/5 swift test"
failed=0
run scripts/swift-toolchain.sh -- swift test || failed=1

if [[ $CROSS == 1 ]]; then
  section "Rust side of the cross-language runs"
  if [[ -f $RUN_DIR/rust-guest.status ]]; then
    log "roam-shm guest (against the Swift host), exit status $(cat "$RUN_DIR/rust-guest.status"):"
    sed 's/^/    /' "$RUN_DIR/rust-guest.log" >&2
    [[ $(cat "$RUN_DIR/rust-guest.status") == 0 ]] || failed=1
    grep -q " $COUNT echoes verified" "$RUN_DIR/rust-guest.log" || { log "FAIL: the Rust guest did not verify $COUNT echoes"; failed=1; }
  else
    log "FAIL: the Rust guest never ran (the Swift host's socket did not appear)"
    failed=1
  fi
  log "+ $CLI segment inspect --json $SEGMENT"
  if "$CLI" segment inspect --json "$SEGMENT" >"$RUN_DIR/inspect.json"; then
    python3 - "$RUN_DIR/inspect.json" <<'EOF' || failed=1
import json, sys
doc = json.load(open(sys.argv[1]))
allocated = sum(c["allocated"] for c in doc["pool"])
busy = [p for p in doc["peers"] if p["state"] != "Empty"]
print(f"    segment after the Swift guests left: {allocated} slots allocated, {len(busy)} peer entries in use", file=sys.stderr)
sys.exit(0 if allocated == 0 and not busy else 1)
EOF
  else
    log "FAIL: could not inspect $SEGMENT"
    failed=1
  fi
  kill -TERM "$HOST_PID" 2>/dev/null || true
  wait "$HOST_PID" 2>/dev/null || true
  log "roam-shm host (serving the Swift guests) said:"
  sed 's/^/    /' "$RUN_DIR/rust-host.log" >&2
  grep -q "gone (" "$RUN_DIR/rust-host.log" || { log "FAIL: the Rust host reported no departed guest"; failed=1; }
  grep -q " 0 slots in use at exit" "$RUN_DIR/rust-host.log" || { log "FAIL: the Rust host ended with slots in use"; failed=1; }
fi

section "summary (+$((SECONDS - step_start)) s)"
if [[ $failed != 0 ]]; then
  log "Swift tests FAILED"
  exit 1
fi
log "Swift tests passed"
