#!/usr/bin/env bash
# The main job: processes in several languages sharing one roam-shm segment.
#
#   scripts/demo.sh
#
# 1. builds the CLI (release), the C guest and the Python package (and the Swift
#    guest, in its toolchain chroot);
# 2. starts one echo host (Rust) on a /dev/shm segment and attaches a guest in each
#    language (Rust, C, Python, Swift), each sending mixed-size messages and checking
#    every echoed byte, printing what it did;
# 3. runs `roam-shm demo`: several Rust guest processes, one killed with SIGKILL
#    mid-stream and recovered by the host, then the segment inspected.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh

run cargo build --release -p roam-shm-cli
CLI=$PWD/target/release/roam-shm
scripts/demo-guests.sh build
WORK=$(mktemp -d /tmp/roam-demo.XXXXXX)
SOCK=$WORK/host.sock
SEG=/dev/shm/roam-demo-$$
HOST_PID=
cleanup() {
  [ -n "$HOST_PID" ] && kill "$HOST_PID" 2>/dev/null && wait "$HOST_PID" 2>/dev/null
  rm -rf "$WORK"
  rm -f "$SEG"
}
trap cleanup EXIT

section "one segment, guests in several languages"
"$CLI" host --echo --verbose --socket "$SOCK" --segment "$SEG" &
HOST_PID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
[ -S "$SOCK" ] || die "host did not start"

log "a Rust guest, plus guests in C, Python and Swift, all at once"
"$CLI" guest --socket "$SOCK" --count 5000 --size 0 --max-size 65536 --seed 1 &
RUST_GUEST=$!
scripts/demo-guests.sh run "$SOCK"
wait "$RUST_GUEST"

"$CLI" segment inspect "$SEG"
kill "$HOST_PID"; wait "$HOST_PID" 2>/dev/null || true; HOST_PID=

section "crash and recovery"
run "$CLI" demo --guests 3 --count 20000
