#!/usr/bin/env bash
# Regenerate the Swift package's generated sources, or check them for drift.
#
#   scripts/gen-swift-bindings.sh           # write them into bindings/swift/Sources
#   scripts/gen-swift-bindings.sh --check   # regenerate into a temp dir, diff, exit 1 on drift
#
# What is generated (all committed):
#   Sources/RoamShmFFI/RoamShmFFI.swift           UniFFI Swift (control plane)
#   Sources/CRoamShmFFI/include/CRoamShmFFI.h     UniFFI C header
#   Sources/CRoamShmFFI/include/module.modulemap  its module map (module CRoamShmFFI)
#   Sources/CRoamShm/include/roam_shm.h           copy of bindings/c/include/roam_shm.h
#
# The generator is the workspace's pinned bindgen (rust/uniffi-bindgen, same uniffi
# version as the library) in library mode: it reads the UniFFI metadata from the
# freshly built libroam_shm_swift.a. Needs only cargo (first build of the bindgen
# takes ~3 min on 2 cores; later runs reuse it).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh

CHECK=0
case "${1:-}" in
  --check) CHECK=1 ;;
  "") ;;
  -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
  *) die "unknown argument: $1 (see --help)" ;;
esac

SRC=bindings/swift/Sources
C_HEADER=bindings/c/include/roam_shm.h
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
LIB=$TARGET_DIR/debug/libroam_shm_swift.a

run cargo build --quiet --locked -p roam-shm-swift
run cargo build --quiet --locked -p uniffi-bindgen --bin uniffi-bindgen-swift

OUT=$(mktemp -d "${TMPDIR:-/tmp}/roam-swift-gen.XXXXXX")
trap 'rm -rf -- "$OUT"' EXIT
# --module-name: the C module the generated Swift imports (`import CRoamShmFFI`,
# also set as ffi_module_name in bindings/swift/rust/uniffi.toml; without it the
# generated `#if canImport(...)` would silently skip the import).
run "$TARGET_DIR/debug/uniffi-bindgen-swift" "$LIB" "$OUT/raw" \
  --swift-sources --headers --modulemap \
  --module-name CRoamShmFFI --modulemap-filename module.modulemap >/dev/null

mkdir -p "$OUT/tree/RoamShmFFI" "$OUT/tree/CRoamShmFFI/include" "$OUT/tree/CRoamShm/include"
mv "$OUT/raw/RoamShmFFI.swift" "$OUT/tree/RoamShmFFI/"
mv "$OUT/raw/CRoamShmFFI.h" "$OUT/raw/module.modulemap" "$OUT/tree/CRoamShmFFI/include/"
if [[ -f $C_HEADER ]]; then
  cp "$C_HEADER" "$OUT/tree/CRoamShm/include/roam_shm.h"
else
  log "warning: $C_HEADER does not exist yet (C ABI not merged): keeping the committed copy"
  cp "$SRC/CRoamShm/include/roam_shm.h" "$OUT/tree/CRoamShm/include/roam_shm.h" 2>/dev/null || true
fi
leftover=$(ls -A "$OUT/raw")
[[ -z $leftover ]] || die "the bindgen produced unexpected files: $leftover"

FILES=(RoamShmFFI/RoamShmFFI.swift CRoamShmFFI/include/CRoamShmFFI.h
  CRoamShmFFI/include/module.modulemap CRoamShm/include/roam_shm.h)

if [[ $CHECK == 1 ]]; then
  drift=0 checked=()
  for f in "${FILES[@]}"; do
    [[ -f $OUT/tree/$f ]] || continue
    checked+=("$SRC/$f")
    if ! diff -u "$SRC/$f" "$OUT/tree/$f" >"$OUT/diff" 2>&1; then
      log "DRIFT: $SRC/$f differs from freshly generated output:"
      head -n 40 "$OUT/diff" >&2
      drift=1
    fi
  done
  [[ $drift == 0 ]] || die "generated Swift sources are stale: run scripts/gen-swift-bindings.sh and commit"
  log "no drift: ${checked[*]}"
  exit 0
fi

written=()
for f in "${FILES[@]}"; do
  [[ -f $OUT/tree/$f ]] || continue
  mkdir -p "$(dirname "$SRC/$f")"
  cp "$OUT/tree/$f" "$SRC/$f"
  written+=("$SRC/$f")
done
log "wrote ${written[*]}"
