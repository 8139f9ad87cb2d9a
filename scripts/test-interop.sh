#!/usr/bin/env bash
# Interop tests against the published roam 7.3 crates (crate rust/roam-interop):
#   (a) a roam-built guest process attaches to our host and exchanges messages,
#   (b) our guest attaches to a roam-built host process and exchanges messages,
#   (c) `roam-shm segment inspect` reads a segment created by roam.
#
#   scripts/test-interop.sh              # debug build
#   scripts/test-interop.sh --release    # release build
#   scripts/test-interop.sh -- ARGS...   # extra arguments for the test binaries
#
# roam-interop is a workspace member but not a default member, so plain
# `cargo test` does not build the roam crates; this script does. Exits non-zero on
# any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh

PROFILE_ARGS=()
PROFILE_DIR=debug
TEST_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --release) PROFILE_ARGS=(--release); PROFILE_DIR=release ;;
    --) shift; TEST_ARGS=("$@"); break ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
  shift
done

command -v cargo >/dev/null 2>&1 || die "cargo not found"
[ -d /dev/shm ] || log "note: no /dev/shm; segments go to /tmp"

log "building the roam-shm CLI (test (c) runs it)"
run cargo build --locked "${PROFILE_ARGS[@]}" -p roam-shm-cli
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
[ -n "$target_dir" ] || die "could not find cargo's target directory"
cli="$target_dir/$PROFILE_DIR/roam-shm"
[ -x "$cli" ] || die "CLI not found at $cli"
export ROAM_SHM_CLI="$cli"
log "ROAM_SHM_CLI=$ROAM_SHM_CLI"

log "running the interop tests (roam-interop against roam-shm 7.3.0 from crates.io)"
start=$SECONDS
if run cargo test --locked "${PROFILE_ARGS[@]}" -p roam-interop -- "${TEST_ARGS[@]}"; then
  log "PASS: interop tests ($((SECONDS - start))s)"
else
  die "interop tests failed ($((SECONDS - start))s)"
fi
