# shellcheck shell=bash
# Small helpers shared by the scripts in scripts/. Source it; it defines
# functions only (plus LOG_PREFIX if unset) and changes no shell options.
#
#   log MSG...                  print "[prefix] MSG" to stderr
#   die MSG...                  log, then exit 1
#   run CMD...                  log the command (shell-quoted), then run it
#   need_root_or_sudo CMD...    return if root; else re-exec CMD via sudo
#   apt_install_if_missing PKG...  install missing Debian packages; runs
#                               apt-get update at most once per process

# Prefix for log lines: the calling script's name without ".sh".
: "${LOG_PREFIX:=$(basename "${0%.sh}")}"

log() {
  printf '[%s] %s\n' "$LOG_PREFIX" "$*" >&2
}

die() {
  log "error: $*"
  exit 1
}

# Echo a command in a form that can be pasted back into a shell, then run it.
run() {
  local quoted
  printf -v quoted '%q ' "$@"
  log "+ ${quoted% }"
  "$@"
}

# Usage: need_root_or_sudo "$0" "$@"
# Returns when already root. Otherwise re-executes the given command line
# through sudo (keeping the environment, so ROAM_* settings survive) or dies.
need_root_or_sudo() {
  [[ ${EUID:-$(id -u)} -eq 0 ]] && return 0
  command -v sudo >/dev/null 2>&1 || die "must run as root (and sudo is not installed)"
  log "not root: re-running through sudo"
  exec sudo --preserve-env -- "$@"
}

_COMMON_APT_UPDATED=${_COMMON_APT_UPDATED:-0}

# Install the named packages that are not installed yet (no recommends).
# Quiet and fast when everything is present. Needs root.
apt_install_if_missing() {
  local pkg missing=()
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "installing missing packages: ${missing[*]}"
  if [[ $_COMMON_APT_UPDATED -eq 0 ]]; then
    run apt-get update -qq
    _COMMON_APT_UPDATED=1
  fi
  run env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Print a visible section heading (used by scripts/test.sh between suites).
section() {
  printf '\n==== %s ====\n' "$*" >&2
}
