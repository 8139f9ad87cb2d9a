#!/usr/bin/env bash
# Smoke test of the benchmarks (no timing assertions):
#   1. `roam-shm bench --quick`: every row of the harness runs once, short, through
#      the CLI (built without the iceoryx2 baseline), and writes its report and plot;
#   2. `cargo bench --no-run`: the criterion micro-benchmarks compile.
# Exits non-zero if either fails.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh

case "${1:-}" in
  -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
esac

passed=0
failed=0
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

log "1/2: roam-shm bench --quick (release build of the CLI)"
if run cargo build --release --locked -p roam-shm-cli \
  && run target/release/roam-shm bench --quick --out "$out" >"$out/stdout.txt" \
  && [[ -s "$out/report.md" && -s "$out/bench.png" && -s "$out/results.tsv" ]]; then
  log "bench --quick: $(($(wc -l <"$out/results.tsv") - 1)) rows, report and plot written"
  passed=$((passed + 1))
else
  log "FAILED: roam-shm bench --quick (output below)"
  cat "$out/stdout.txt" >&2 2>/dev/null || true
  failed=$((failed + 1))
fi

log "2/2: criterion benches compile (cargo bench --no-run)"
if run cargo bench --locked -p roam-shm-bench --no-run; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
fi

echo "bench smoke: $passed passed, $failed failed"
[[ $failed -eq 0 ]] || die "bench smoke test failed"
