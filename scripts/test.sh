#!/usr/bin/env bash
# Run every test suite of roam-shm and print each runner's own summary line.
#
#   scripts/test.sh            # everything (what CI runs)
#   scripts/test.sh --quick    # skip the slow suites (loom, sanitizers)
#   scripts/test.sh --only rust,loom   # a subset of: lint rust c python interop bench
#                                      # swift loom tsan
#
# Installs what it needs (idempotently) and says so. Exits non-zero if any suite fails;
# a suite that cannot run on this machine (e.g. no nightly toolchain for TSan) is
# skipped with the reason printed, never silently.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh

QUICK=0
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --only) ONLY="$2"; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
  shift
done

declare -a RESULTS=()
FAILED=0

want() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }

# suite NAME CMD...: run one suite, record pass/fail, keep going.
suite() {
  local name="$1"; shift
  want "$name" || return 0
  section "suite: $name"
  local start=$SECONDS
  if "$@"; then
    RESULTS+=("PASS  $name ($((SECONDS - start))s)")
  else
    RESULTS+=("FAIL  $name ($((SECONDS - start))s)")
    FAILED=1
  fi
}

skip() {
  local name="$1" why="$2"
  want "$name" || return 0
  section "suite: $name"
  log "SKIPPED $name: $why"
  RESULTS+=("SKIP  $name: $why")
}

lint() {
  run cargo fmt --all --check
  run cargo clippy --workspace --all-targets --locked -- -D warnings
  run cargo clippy -p roam-shm --all-targets --features loom --locked -- -D warnings
  RUSTDOCFLAGS="-D warnings" run cargo doc -p roam-shm --no-deps --locked
}

rust_tests() {
  # Unit, proptest, cross-process (spawned processes, kill -9) and doc tests of the
  # default members; the bindings and the roam interop tests have suites of their own.
  run cargo test --locked
}

loom_tests() {
  # Model-checked algorithms. Release mode keeps the models to minutes on 2 cores;
  # one thread because the seeded-bug tests flip a process-wide switch.
  LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}" \
    run cargo test -p roam-shm --release --features loom --locked --tests -- --test-threads=1
}

tsan_tests() {
  # ThreadSanitizer over the core crate's threaded and cross-process tests (needs
  # nightly; the single-threaded proptests gain nothing from it). std is not
  # instrumented (no rust-src here for -Zbuild-std): scripts/tsan.supp lists the
  # std-internal frames TSan misreports, each with its reason.
  local target
  target="$(rustc -vV | sed -n 's/^host: //p')"
  RUSTFLAGS="-Zsanitizer=thread -Cunsafe-allow-abi-mismatch=sanitizer" \
  RUSTDOCFLAGS="-Zsanitizer=thread" TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/scripts/tsan.supp" \
    run cargo +nightly test -p roam-shm --target "$target" --target-dir target/tsan \
      --lib --test sysio --test xproc_primitives --test var_pool_fork --test bootstrap_unix \
      -- --test-threads=2
}

# One suite per binding/tool, each a script of its own that installs what it needs
# and ends with its runner's own summary line.
binding_suite() {
  local name="$1" script="scripts/test-$1.sh"
  if [ ! -x "$script" ]; then
    skip "$name" "$script is not in this tree"
    return 0
  fi
  suite "$name" "$script"
}

suite lint lint
suite rust rust_tests
binding_suite c
# Issue 7's contract: `pip install .` into a fresh venv works, checked on full runs.
[ "$QUICK" = 1 ] || export ROAM_PY_WHEEL=1
binding_suite python
binding_suite interop
binding_suite bench
binding_suite swift
if [ "$QUICK" = 1 ]; then
  skip loom "--quick"
  skip tsan "--quick"
else
  suite loom loom_tests
  if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    suite tsan tsan_tests
  else
    skip tsan "no nightly toolchain installed (rustup toolchain install nightly)"
  fi
fi

section "summary"
printf '%s\n' "${RESULTS[@]}"
if [ "$FAILED" != 0 ]; then
  log "some suites FAILED"
  exit 1
fi
log "all suites passed"
