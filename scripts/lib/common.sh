# Shared shell helpers for scripts/ (sourced, not executed).
# Every script says what it does: `log` to stderr, `run` echoes a command then runs it.

log() { printf '[roam-shm] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
section() { printf '\n==== %s ====\n' "$*" >&2; }
run() { printf '[roam-shm] $ %s\n' "$*" >&2; "$@"; }
