#!/usr/bin/env bash
# Guests written in C, Python and Swift for scripts/demo.sh. Each sends mixed-size
# messages (inline, slot and mapped-region paths) to an echo host, checks every
# echoed byte and prints what it did.
#
#   scripts/demo-guests.sh build          # build what the guests need
#   scripts/demo-guests.sh run SOCKET     # run them all at once against SOCKET
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh
VENV=target/py-venv
C_GUEST=target/release/echo_guest_c

build() {
  # Release builds: the demo prints rates, and debug builds are several times slower.
  log "building the C guest (bindings/c/examples/echo_guest.c, static library, release)"
  run cargo build -q --release -p roam-shm-ffi
  run gcc -std=c11 -D_GNU_SOURCE -O2 -Ibindings/c/include -o "$C_GUEST" \
    bindings/c/examples/echo_guest.c target/release/libroam_shm_ffi.a -lpthread -ldl -lm -lrt
  log "building the Python package into $VENV (release)"
  [ -x "$VENV/bin/python" ] || run python3 -m venv "$VENV"
  "$VENV/bin/python" -c 'import maturin' 2>/dev/null \
    || run "$VENV/bin/pip" install -q --disable-pip-version-check maturin==1.16.0
  run env VIRTUAL_ENV="$PWD/$VENV" "$VENV/bin/maturin" develop -q --release
  if [ -x scripts/demo-swift-guest.sh ]; then
    scripts/demo-swift-guest.sh build
  fi
}

run_all() {
  local sock=$1 pids=() rc=0 p
  log "C, Python and Swift guests attach to the same segment at once"
  "$C_GUEST" "$sock" 3000 & pids+=($!)
  "$VENV/bin/python" bindings/python/examples/echo_guest.py "$sock" 2000 & pids+=($!)
  if [ -x scripts/demo-swift-guest.sh ]; then
    scripts/demo-swift-guest.sh run "$sock" & pids+=($!)
  fi
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  return $rc
}

case "${1:-}" in
  build) build ;;
  run) run_all "${2:?usage: scripts/demo-guests.sh run SOCKET}" ;;
  *) die "usage: scripts/demo-guests.sh build | run SOCKET" ;;
esac
