#!/usr/bin/env bash
# Run the full benchmark comparison and regenerate docs/benchmarks.md (and
# docs/benchmarks.png): roam-shm against the raw floor, Unix sockets, pipes, a
# bare futex, iceoryx2 and in-process queues (see the document for the method).
#
#   scripts/bench.sh                 # full run (a few minutes), rewrites the doc
#   scripts/bench.sh --quick         # smoke-sized run; results in target/bench only
#   scripts/bench.sh --only lat/format,tput/ring   # a subset; target/bench only
#
# Other arguments are passed to roam-shm-bench (see `roam-shm-bench --help`).
# As root it runs under SCHED_FIFO (--realtime) so that other work on a shared
# machine cannot preempt the spinning processes; ROAM_BENCH_REALTIME=0 turns that
# off. The iceoryx2 baseline is compiled in here (cargo feature `iceoryx2`); the
# `roam-shm bench` CLI subcommand runs the same harness without it.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh

case "${1:-}" in
  -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
esac

partial=0
for a in "$@"; do
  case "$a" in
    --quick|--only|--only=*|--measure-ms|--measure-ms=*|--no-iceoryx2) partial=1 ;;
  esac
done

extra=()
if [[ ${EUID:-$(id -u)} -eq 0 && "${ROAM_BENCH_REALTIME:-1}" != 0 ]]; then
  extra+=(--realtime)
else
  log "not using SCHED_FIFO (needs root; ROAM_BENCH_REALTIME=${ROAM_BENCH_REALTIME:-1}): expect noisier numbers"
fi

rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git diff --quiet HEAD -- 2>/dev/null; then rev="$rev (with uncommitted changes)"; fi
export ROAM_BENCH_GIT="$rev"

run cargo build --release --locked -p roam-shm-bench --features iceoryx2
if [[ $partial -eq 1 ]]; then
  log "partial run: results in target/bench/, docs/benchmarks.md left as it is"
  run target/release/roam-shm-bench "${extra[@]}" "$@"
else
  run target/release/roam-shm-bench "${extra[@]}" --doc docs/benchmarks.md "$@"
  log "wrote docs/benchmarks.md and docs/benchmarks.png"
fi
