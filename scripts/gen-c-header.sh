#!/usr/bin/env bash
# Generate bindings/c/include/roam_shm.h from the roam-shm-ffi sources with a pinned
# cbindgen (installed once into target/tools).
#
#   scripts/gen-c-header.sh           # regenerate the committed header
#   scripts/gen-c-header.sh --check   # fail (exit 1, with a diff) if it would change
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh

CBINDGEN_VERSION=0.29.0
TOOLS=target/tools
CBINDGEN="$TOOLS/bin/cbindgen"
HEADER=bindings/c/include/roam_shm.h

CHECK=0
case "${1:-}" in
  --check) CHECK=1 ;;
  -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
  "") ;;
  *) die "unknown argument: $1" ;;
esac

# Idempotent install of the pinned version (skipped when already present).
if ! { [ -x "$CBINDGEN" ] && "$CBINDGEN" --version 2>/dev/null | grep -qx "cbindgen $CBINDGEN_VERSION"; }; then
  log "installing cbindgen $CBINDGEN_VERSION into $TOOLS (once)"
  run cargo install cbindgen --version "=$CBINDGEN_VERSION" --locked --root "$TOOLS" --quiet
fi

tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
run "$CBINDGEN" --quiet --config bindings/c/cbindgen.toml --crate roam-shm-ffi --output "$tmp" bindings/c

if [ "$CHECK" -eq 1 ]; then
  if ! diff -u "$HEADER" "$tmp"; then
    die "$HEADER is out of date: run scripts/gen-c-header.sh and commit the result"
  fi
  log "$HEADER is up to date"
else
  mkdir -p "$(dirname "$HEADER")"
  cp "$tmp" "$HEADER"
  log "wrote $HEADER"
fi
