#!/usr/bin/env bash
# Build and test the C ABI (bindings/c), printing each step.
#
#   scripts/test-c.sh
#
# Steps: build libroam_shm_ffi (debug) and the roam-shm CLI; check the committed
# header for drift; check with nm that every seed (roam 7.x) function and every
# function in the header is exported; build the C suite with -Wall -Wextra -Werror
# and run it, then again under ASan+UBSan with leak detection (plus a leak canary
# proving the detector works); cross-language runs (C guest <-> `roam-shm host
# --echo`, `roam-shm guest` <-> C echo host, 10,000 messages each); install into a
# temporary prefix and build a program outside the repo with pkg-config.
# Installs missing tools (gcc, pkg-config, binutils) through apt. The last line is
# "N passed, N failed" over the C suite's tests (both builds) and the other steps;
# exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh

case "${1:-}" in
  -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
  "") ;;
  *) die "unknown argument: $1" ;;
esac

START=$SECONDS
ROOT="$PWD"
WORK="$(mktemp -d /tmp/roam-test-c.XXXXXX)"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  rm -rf "$WORK"
  rm -f /dev/shm/roam-test-c-$$-*
}
trap cleanup EXIT

PASSED=0
FAILED=0
declare -a SUMMARY=()
step_ok() { PASSED=$((PASSED + 1)); SUMMARY+=("ok    $1"); log "ok: $1"; }
step_fail() { FAILED=$((FAILED + 1)); SUMMARY+=("FAIL  $1"); log "FAILED: $1"; }
# step NAME CMD...: run one check, record it, keep going.
step() {
  local name="$1"; shift
  section "$name"
  if "$@"; then step_ok "$name"; else step_fail "$name"; fi
}

if [ "$(id -u)" -eq 0 ]; then
  apt_install_if_missing gcc libc6-dev pkg-config binutils
fi
for tool in gcc pkg-config nm cargo; do
  command -v "$tool" >/dev/null || die "$tool is required"
done

CFLAGS=(-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 -I"$ROOT/bindings/c/include")
SAN=(-fsanitize=address,undefined -fno-omit-frame-pointer)
LIBS=(-lpthread -ldl -lm -lrt)
LIB_A="$ROOT/target/debug/libroam_shm_ffi.a"
CLI="$ROOT/target/debug/roam-shm"
TESTS=(bindings/c/tests/test_*.c)

build() {
  run cargo build -p roam-shm-ffi -p roam-shm-cli --locked || return 1
  [ -f "$LIB_A" ] && [ -f "$ROOT/target/debug/libroam_shm_ffi.so" ] && [ -x "$CLI" ]
}

header_check() {
  run scripts/gen-c-header.sh --check || return 1
  # The header compiles as C11 and as C++ (its layout asserts run in both), twice
  # included.
  printf '#include "roam_shm.h"\n#include "roam_shm.h"\nint main(void) { return ROAM_OK; }\n' >"$WORK/hdr.c"
  run gcc "${CFLAGS[@]}" -c "$WORK/hdr.c" -o "$WORK/hdr.o" || return 1
  if command -v g++ >/dev/null; then
    run g++ -std=c++11 -Wall -Wextra -Werror -I"$ROOT/bindings/c/include" -x c++ -c "$WORK/hdr.c" -o "$WORK/hdr_cpp.o" || return 1
  fi
}

# Every status code in the header is documented in the README table and named by the
# C suite's status test (so a new code cannot be added silently).
status_codes_check() {
  local code bad=0
  for code in $(grep -oE '^  (ROAM_OK|ROAM_ERR_[A-Z_]+) = ' bindings/c/include/roam_shm.h | awk '{print $1}'); do
    grep -q "\`$code\`" bindings/c/README.md || { log "$code is not in bindings/c/README.md"; bad=1; }
    grep -qw "$code" bindings/c/tests/test_status.c || { log "$code is not in tests/test_status.c"; bad=1; }
  done
  [ "$bad" -eq 0 ]
}

symbols_check() {
  local exported missing=0 name
  exported="$(nm -g --defined-only "$LIB_A" 2>/dev/null | awk '$2 == "T" {print $3}' | sort -u)"
  while read -r name; do
    case "$name" in ''|'#'*) continue ;; esac
    if ! grep -qx "$name" <<<"$exported"; then log "seed function not exported: $name"; missing=1; fi
  done < bindings/c/tests/seed-symbols.txt
  # Every function the header declares must be exported too.
  for name in $(grep -oE '^[A-Za-z_][A-Za-z0-9_ *]*[ *](roam_[a-z0-9_]+)\(' bindings/c/include/roam_shm.h \
                | grep -oE 'roam_[a-z0-9_]+\($' | tr -d '('); do
    if ! grep -qx "$name" <<<"$exported"; then log "header function not exported: $name"; missing=1; fi
  done
  log "$(grep -c . <<<"$(grep '^roam_' <<<"$exported")") roam_* functions exported; $(grep -vc '^#' bindings/c/tests/seed-symbols.txt) seed names checked"
  [ "$missing" -eq 0 ]
}

# Run a C suite binary, fold its "N passed, N failed" line into the totals.
run_suite() {
  local label="$1"; shift
  local out="$WORK/$label.out" line p f
  "$@" >"$out" 2>&1
  local rc=$?
  cat "$out" >&2
  line="$(tail -n1 "$out")"
  if [[ "$line" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    p="${BASH_REMATCH[1]}"; f="${BASH_REMATCH[2]}"
    PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
    SUMMARY+=("$( [ "$rc" -eq 0 ] && [ "$f" -eq 0 ] && echo "ok  " || echo "FAIL")  C suite ($label): $line")
  else
    FAILED=$((FAILED + 1)); SUMMARY+=("FAIL  C suite ($label): no summary line (exit $rc)")
    return 1
  fi
  if grep -q "ERROR: \(Address\|Leak\)Sanitizer\|runtime error:" "$out"; then
    FAILED=$((FAILED + 1)); SUMMARY+=("FAIL  C suite ($label): sanitizer report"); return 1
  fi
  [ "$rc" -eq 0 ] || { FAILED=$((FAILED + 1)); SUMMARY+=("FAIL  C suite ($label): exit $rc"); return 1; }
}

c_suite() {
  local label="$1"; shift
  section "C suite ($label)"
  local bin="$WORK/roam_c_tests_$label"
  if ! run gcc "${CFLAGS[@]}" "$@" -o "$bin" "${TESTS[@]}" "$LIB_A" "${LIBS[@]}"; then
    FAILED=$((FAILED + 1)); SUMMARY+=("FAIL  C suite ($label): does not compile"); return
  fi
  if [ "$label" = plain ]; then
    run_suite "$label" "$bin"
  else
    run_suite "$label" env ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
      UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "$bin"
  fi
}

leak_canary() {
  run gcc "${CFLAGS[@]}" "${SAN[@]}" -o "$WORK/leak_canary" bindings/c/tests/leak_canary.c "$LIB_A" "${LIBS[@]}" || return 1
  if ASAN_OPTIONS=detect_leaks=1 "$WORK/leak_canary" >"$WORK/canary.out" 2>&1; then
    log "the leak canary exited 0: LeakSanitizer is not working"; return 1
  fi
  grep -q "LeakSanitizer: detected memory leaks" "$WORK/canary.out" || { cat "$WORK/canary.out" >&2; return 1; }
  log "LeakSanitizer caught the deliberate leak (so the suite's clean run means no leaks)"
}

build_examples() {
  local ex
  for ex in echo_guest echo_host; do
    run gcc "${CFLAGS[@]}" -O2 -o "$WORK/$ex" "bindings/c/examples/$ex.c" "$LIB_A" "${LIBS[@]}" || return 1
  done
}

wait_for_socket() {
  local i
  for i in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.1; done
  log "socket $1 did not appear"; return 1
}

# C guest -> `roam-shm host --echo` (file-backed segment, as roam guests need).
cross_c_guest() {
  local sock="$WORK/cli-host.sock" seg="/dev/shm/roam-test-c-$$-cli" hp rc
  "$CLI" host --socket "$sock" --echo --segment "$seg" --guests 1 --idle-exit 60 >"$WORK/cli-host.log" 2>&1 &
  hp=$!; PIDS+=("$hp")
  wait_for_socket "$sock" || return 1
  run timeout 300 "$WORK/echo_guest" "$sock" 10000 | tee "$WORK/c-guest.out"
  rc=${PIPESTATUS[0]}
  # Give the host 30 s to finish after its guest; kill it if it hangs.
  timeout 30 tail --pid="$hp" -f /dev/null || { log "host $hp did not exit: killing it"; kill "$hp"; }
  wait "$hp"; local hrc=$?
  cat "$WORK/cli-host.log" >&2
  [ "$rc" -eq 0 ] && [ "$hrc" -eq 0 ] || return 1
  grep -q "10000 messages echoed byte-exact" "$WORK/c-guest.out" || return 1
  # Every path was used: inline, slot and mmap.
  grep -Eq "inline [1-9][0-9]*, slot [1-9][0-9]*, mmap [1-9][0-9]*" "$WORK/c-guest.out" || return 1
  grep -q "0 slots in use at exit" "$WORK/cli-host.log"
}

# `roam-shm guest` -> C echo host.
cross_c_host() {
  local sock="$WORK/c-host.sock" hp rc
  "$WORK/echo_host" "$sock" --guests 1 >"$WORK/c-host.log" 2>&1 &
  hp=$!; PIDS+=("$hp")
  wait_for_socket "$sock" || return 1
  run timeout 300 "$CLI" guest --socket "$sock" --count 10000 --size 0 --max-size 100000 | tee "$WORK/cli-guest.out"
  rc=${PIPESTATUS[0]}
  # Give the host 30 s to finish after its guest; kill it if it hangs.
  timeout 30 tail --pid="$hp" -f /dev/null || { log "host $hp did not exit: killing it"; kill "$hp"; }
  wait "$hp"; local hrc=$?
  cat "$WORK/c-host.log" >&2
  [ "$rc" -eq 0 ] && [ "$hrc" -eq 0 ] || return 1
  grep -q "10000 echoes verified" "$WORK/cli-guest.out" && grep -q "10000 messages echoed" "$WORK/c-host.log"
}

# Install into a temporary prefix and build a program outside the repo with pkg-config.
installed_prefix() {
  local prefix="$WORK/prefix" app="$WORK/outside"
  run scripts/install-c.sh --debug "$prefix" || return 1
  mkdir -p "$app"
  cat >"$app/main.c" <<'CEOF'
#include <stdio.h>
#include <string.h>
#include <roam_shm.h>
int main(void) {
  RoamSegmentConfig c;
  if (roam_segment_config_default(&c) != ROAM_OK) return 1;
  RoamHost *h = NULL;
  int s = roam_host_create(&c, NULL, &h);
  if (s != ROAM_OK) { fprintf(stderr, "%s\n", roam_status_str(s)); return 1; }
  roam_host_destroy(h);
  printf("outside: %s; bipbuf header %u bytes\n", roam_status_str(s), roam_bipbuf_header_size());
  return strncmp(roam_status_str(ROAM_ERR_FULL), "ROAM_ERR_FULL", 13) != 0;
}
CEOF
  (
    cd "$app" || exit 1
    export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
    run pkg-config --modversion roam_shm || exit 1
    # shellcheck disable=SC2046
    run gcc -std=c11 -Wall -Wextra -Werror -o app main.c $(pkg-config --cflags --libs roam_shm) || exit 1
    LD_LIBRARY_PATH="$prefix/lib" run ./app || exit 1
    # Static: the archive plus Libs.private.
    # shellcheck disable=SC2046
    run gcc -std=c11 -Wall -Wextra -Werror -o app-static main.c $(pkg-config --cflags roam_shm) \
      "$(pkg-config --variable=libdir roam_shm)/libroam_shm_ffi.a" \
      $(pkg-config --static --libs-only-l roam_shm | sed 's/-lroam_shm_ffi//') || exit 1
    run ./app-static
  )
}

section "build"
if build; then
  step_ok "build libroam_shm_ffi.{a,so} and roam-shm (debug)"
  step "header matches the sources (gen-c-header.sh --check)" header_check
  step "nm: every seed and header function is exported" symbols_check
  step "every status code is documented and tested" status_codes_check
  c_suite plain
  c_suite asan "${SAN[@]}"
  step "leak canary: LeakSanitizer reports a deliberate leak" leak_canary
  if step "build examples (echo_guest, echo_host)" build_examples; then
    step "cross-language: C guest x 10000 <-> roam-shm host --echo" cross_c_guest
    step "cross-language: roam-shm guest x 10000 <-> C echo host" cross_c_host
  fi
  step "install to a prefix; pkg-config build outside the repo" installed_prefix
else
  step_fail "build libroam_shm_ffi.{a,so} and roam-shm (debug)"
fi

section "summary ($((SECONDS - START)) s)"
printf '%s\n' "${SUMMARY[@]}" >&2
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
