#!/usr/bin/env bash
# Build the C library and install header, libraries and pkg-config file into PREFIX.
#
#   scripts/install-c.sh PREFIX            # release build (what users want)
#   scripts/install-c.sh --debug PREFIX    # debug build (fast; used by scripts/test-c.sh)
#
# Installs PREFIX/include/roam_shm.h, PREFIX/lib/libroam_shm_ffi.{a,so} and
# PREFIX/lib/pkgconfig/roam_shm.pc (prefix written in). Then:
#   PKG_CONFIG_PATH=PREFIX/lib/pkgconfig cc app.c $(pkg-config --cflags --libs roam_shm)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh

PROFILE=release
PREFIX=""
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) PROFILE=debug ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    -*) die "unknown option: $1" ;;
    *) [ -z "$PREFIX" ] || die "more than one PREFIX"; PREFIX="$1" ;;
  esac
  shift
done
[ -n "$PREFIX" ] || die "usage: scripts/install-c.sh [--debug] PREFIX"
mkdir -p "$PREFIX"
PREFIX="$(cd "$PREFIX" && pwd)"

if [ "$PROFILE" = release ]; then
  run cargo build -p roam-shm-ffi --release --locked
else
  run cargo build -p roam-shm-ffi --locked
fi
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
LIBDIR_SRC="$TARGET_DIR/$PROFILE"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"
[ -n "$VERSION" ] || die "cannot read the workspace version from Cargo.toml"

run install -d "$PREFIX/include" "$PREFIX/lib/pkgconfig"
run install -m 0644 bindings/c/include/roam_shm.h "$PREFIX/include/roam_shm.h"
run install -m 0644 "$LIBDIR_SRC/libroam_shm_ffi.a" "$PREFIX/lib/libroam_shm_ffi.a"
run install -m 0755 "$LIBDIR_SRC/libroam_shm_ffi.so" "$PREFIX/lib/libroam_shm_ffi.so"
sed -e "s|@PREFIX@|$PREFIX|" -e "s|@VERSION@|$VERSION|" bindings/c/roam_shm.pc.in \
  > "$PREFIX/lib/pkgconfig/roam_shm.pc"
log "wrote $PREFIX/lib/pkgconfig/roam_shm.pc (prefix $PREFIX, version $VERSION, $PROFILE build)"
