#!/usr/bin/env bash
# Run a command with a working Swift 6 toolchain: the host's own `swift` if
# there is one, otherwise a cached Debian trixie chroot (Debian 12 has no
# Swift package; trixie ships `swiftlang` 6.0.x). See usage() below.
set -euo pipefail

# Native mode must also work with macOS's /bin/bash 3.2: no empty "${a[@]}"
# under set -u and no GNU-only tools before the chroot branch.
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
SCRIPT=$SCRIPT_DIR/$(basename -- "${BASH_SOURCE[0]}")
REPO=$(cd -- "$SCRIPT_DIR/.." && pwd -P)
LOG_PREFIX=swift-toolchain
# shellcheck source=scripts/lib/common.sh
. "$SCRIPT_DIR/lib/common.sh"

SUITE=trixie
# swiftlang: compiler, SwiftPM, Foundation, XCTest, Swift Testing.
# libc6-dev / libstdc++-14-dev: headers and crt files swiftc and clang link
# against (not pulled in with --no-install-recommends). ca-certificates:
# https for SwiftPM package dependencies. pkgconf: SwiftPM's
# .systemLibrary(pkgConfig:) targets.
read -r -a EXTRA_PACKAGES <<<"${ROAM_SWIFT_EXTRA_PACKAGES:-}"
PACKAGES=(swiftlang libc6-dev libstdc++-14-dev ca-certificates pkgconf ${EXTRA_PACKAGES[@]+"${EXTRA_PACKAGES[@]}"})
# Bump when the recipe changes in a way the package list does not show; a
# chroot whose marker records another recipe is finished again (apt-get).
RECIPE_VERSION=1
RECIPE="v$RECIPE_VERSION $SUITE ${PACKAGES[*]}"

CHROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# Environment variables copied into the chroot (globs allowed), on top of
# the names listed in ROAM_SWIFT_PASS_ENV.
PASS_ENV=('ROAM_*' 'RUST_LOG' 'RUST_BACKTRACE' 'CI' 'GITHUB_ACTIONS' 'TERM'
  'NO_COLOR' 'PKG_CONFIG_PATH' 'LIBRARY_PATH' 'SWIFT_*')

usage() {
  cat <<EOF
Usage: scripts/swift-toolchain.sh [options] [--] <command...>

Run <command...> (e.g. \`swift build --build-tests\`, \`swift test\`) in the
repository root with a working Swift 6 toolchain.

  native  \`swift\` is on PATH (macOS, Linux with a toolchain): the command
          runs directly.
  chroot  otherwise (Debian 12): a Debian $SUITE chroot with swiftlang is
          created once (debootstrap from the host's own Debian mirror, then
          apt-get: ~440 MB download, 2.6 GB on disk, 1-5 min on 2 cores) and
          reused; the command runs inside it as root (or as the sudo caller,
          via chroot --userspec). It lives outside the repository by
          default, so fresh clones (CI) and \`cargo clean\` reuse it.

Options:
  -C, --cd DIR      run the command in DIR instead of the repository root
  --print-mode      print "native" or "chroot" and exit
  --setup-only      make sure the toolchain is ready, run nothing
  --remove-chroot   delete the chroot; refuses while a run uses it or while
                    anything is mounted below it
  -h, --help        this text

Environment:
  ROAM_SWIFT_CHROOT   chroot directory (default: \${XDG_CACHE_HOME:-\$HOME/.cache}/roam-shm/swift-chroot;
                      a lock file sits next to it, at <dir>.lock)
  ROAM_SWIFT_MODE     auto (default), native or chroot
  ROAM_SWIFT_MIRROR   Debian mirror URL (default: the host's apt sources)
  ROAM_SWIFT_EXTRA_PACKAGES  more Debian packages for the chroot
  ROAM_SWIFT_PASS_ENV more variable names to copy into the chroot
  ROAM_SWIFT_NO_UNSHARE=1  do not use a private mount namespace (see below)

Inside the chroot:
  - the repository, /tmp and DIR (if outside both) are bind-mounted at the
    same absolute paths, so paths such as \$REPO/target/debug/libx.a mean the
    same file inside and outside, and Unix sockets under /tmp connect host
    and chroot processes;
  - /dev is rbind-mounted, so /dev/shm (POSIX shared memory) is the host's;
    /proc and /sys are mounted too;
  - the environment is cleared except PATH, LANG=C.UTF-8, HOME (a cache
    directory inside the chroot, /var/cache/roam-swift/home*, so SwiftPM
    caches persist) and: ${PASS_ENV[*]}.

Mounts live in a private mount namespace (unshare --mount) made for each
run: the host never sees them and they vanish when the command exits, even
on kill -9, so runs cannot unmount each other's mounts. Without unshare
(ROAM_SWIFT_NO_UNSHARE=1 or unshare failing) mounts are made on the host,
removed by an EXIT/INT/TERM trap in reverse order, and runs are serialized
by the lock. Setup is serialized by the same lock (flock).

The exit status is the command's. One line on stderr says which toolchain
is used; setup steps are logged with a [swift-toolchain] prefix.
EOF
}

# --- helpers ----------------------------------------------------------------

# Strict descendants of $1 that are mount points in this mount namespace,
# deepest first.
mounts_under() {
  findmnt -rn -o TARGET | awk -v d="$1" 'index($0, d "/") == 1' | sort -r
}

# The Debian mirror the host's apt uses for its own release (deb822 .sources
# first, then one-line .list files).
host_mirror() {
  if [[ -n ${ROAM_SWIFT_MIRROR:-} ]]; then
    printf '%s\n' "$ROAM_SWIFT_MIRROR"
    return
  fi
  local id codename mirror
  id=$(. /etc/os-release && echo "${ID:-}")
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [[ $id == debian && -n $codename ]] ||
    die "not a Debian host ($id); set ROAM_SWIFT_MIRROR to a Debian mirror URL"
  shopt -s nullglob
  local sources=(/etc/apt/sources.list.d/*.sources) lists=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list)
  shopt -u nullglob
  mirror=""
  if [[ ${#sources[@]} -gt 0 ]]; then
    mirror=$(awk -v want="$codename" '
      function flush() {
        if (!found && types ~ /(^|[ \t])deb([ \t]|$)/ && enabled != "no" &&
            (" " suites " ") ~ ("[ \t]" want "[ \t]") && uris != "") {
          split(uris, u, /[ \t]+/); print u[1]; found = 1
        }
        types = uris = suites = enabled = ""
      }
      FNR == 1 { flush() }
      /^[ \t]*$/ { flush(); next }
      /^[ \t]*#/ { next }
      /^[A-Za-z-]+:/ {
        key = tolower($0); sub(/:.*/, "", key)
        val = $0; sub(/^[^:]*:[ \t]*/, "", val)
        if (key == "types") types = val
        else if (key == "uris") uris = val
        else if (key == "suites") suites = val
        else if (key == "enabled") enabled = tolower(val)
      }
      END { flush() }' "${sources[@]}")
  fi
  if [[ -z $mirror ]]; then
    local f
    for f in "${lists[@]}"; do
      [[ -r $f ]] || continue
      mirror=$(sed -E -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" |
        awk -v want="$codename" '$1 == "deb" && $3 == want { print $2; exit }')
      [[ -n $mirror ]] && break
    done
  fi
  [[ -n $mirror ]] ||
    die "no Debian mirror for '$codename' in /etc/apt/sources*; set ROAM_SWIFT_MIRROR"
  printf '%s\n' "$mirror"
}

chroot_ready() {
  [[ -f $MARKER && ( -L $CHROOT/usr/bin/swift || -x $CHROOT/usr/bin/swift ) ]] &&
    grep -qxF "recipe: $RECIPE" "$MARKER" &&
    [[ -z $(mounts_under "$CHROOT") ]]
}

# debootstrap deletes <dir>/debootstrap as its very last step.
debootstrap_complete() {
  [[ -x $CHROOT/usr/bin/apt-get && -f $CHROOT/var/lib/dpkg/status && ! -e $CHROOT/debootstrap ]]
}

# Delete the chroot, but never through a mount point (a bind-mounted /dev,
# /tmp or the repository below it would be deleted on the host too;
# rm --one-file-system does not stop at bind mounts of the same filesystem).
safe_remove_chroot() {
  local m
  m=$(mounts_under "$CHROOT")
  if [[ -n $m ]]; then
    log "refusing to delete $CHROOT: these are mounted below it:"
    printf '  %s\n' "${m//$'\n'/$'\n  '}" >&2
    die "unmount them first (umount -R <path>) and retry"
  fi
  rm -f -- "$MARKER" # first: a half-deleted chroot must never look complete
  run rm -rf --one-file-system -- "$CHROOT"
}

# --- mounts (run inside the private namespace, or on the host as fallback) --

MOUNTED=()

do_mount() { # do_mount TARGET mount-args...
  local target=$1
  shift
  mkdir -p -- "$target"
  mount "$@" "$target"
  MOUNTED+=("$target")
}

cleanup_mounts() {
  local i t
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
    t=${MOUNTED[i]}
    umount -R -- "$t" 2>/dev/null || umount -R -l -- "$t" 2>/dev/null ||
      log "warning: could not unmount $t"
  done
  MOUNTED=()
  # Leftovers, e.g. from an interrupted debootstrap (it mounts proc and sys).
  for t in $(mounts_under "$CHROOT"); do
    log "unmounting leftover $t"
    umount -R -l -- "$t" 2>/dev/null || log "warning: could not unmount $t"
  done
}

install_traps() {
  trap cleanup_mounts EXIT
  trap 'cleanup_mounts; exit 130' INT
  trap 'cleanup_mounts; exit 143' TERM
}

mount_system() {
  do_mount "$CHROOT/proc" -t proc proc
  # --make-rslave: unmounting the copy must never propagate to the host's
  # /dev (/dev/pts), which it would if the host's /dev were shared.
  do_mount "$CHROOT/dev" --rbind --make-rslave /dev
  do_mount "$CHROOT/sys" --rbind --make-rslave /sys
}

in_chroot() {
  chroot "$CHROOT" /usr/bin/env -i PATH="$CHROOT_PATH" HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive "$@"
}

# --- the two phases (called inside the private namespace) -------------------

do_setup() {
  install_traps
  local mirror=$ROAM_SWIFT_MIRROR started=$SECONDS
  cleanup_mounts # host fallback: nothing may be mounted while we hold the lock
  rm -f -- "$MARKER" # the chroot is about to change: not ready until verified
  if [[ -e $CHROOT ]] && ! debootstrap_complete; then
    log "$CHROOT holds an unfinished debootstrap: starting it over"
    safe_remove_chroot
  fi
  if ! debootstrap_complete; then
    log "creating Debian $SUITE chroot in $CHROOT from $mirror (~30 s)"
    mkdir -p -- "$(dirname -- "$CHROOT")"
    run debootstrap --variant=minbase "$SUITE" "$CHROOT" "$mirror" >"$CHROOT.debootstrap.log" 2>&1 || {
      tail -n 20 "$CHROOT.debootstrap.log" >&2
      die "debootstrap failed (full log: $CHROOT.debootstrap.log)"
    }
    log "debootstrap done in $((SECONDS - started)) s"
  fi
  cp -L --remove-destination /etc/resolv.conf "$CHROOT/etc/resolv.conf" 2>/dev/null || true
  mount_system
  local aptlog=$CHROOT/var/log/roam-swift-apt.log
  log "installing ${PACKAGES[*]} in the chroot (~440 MB, ~1 min; log: $aptlog)"
  # dpkg --configure -a: finish what an interrupted earlier run left.
  if ! { in_chroot dpkg --configure -a &&
    in_chroot apt-get update -q &&
    in_chroot apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" &&
    in_chroot apt-get clean; } >"$aptlog" 2>&1; then
    tail -n 20 "$aptlog" >&2
    die "apt-get in the chroot failed (log: $aptlog)"
  fi
  local version
  version=$(in_chroot swift --version 2>&1 | grep -m1 'Swift version') ||
    die "swift --version does not work inside $CHROOT"
  printf 'recipe: %s\nswift: %s\nmirror: %s\ncreated: %s\n' \
    "$RECIPE" "$version" "$mirror" "$(date -u +%FT%TZ)" >"$MARKER.tmp"
  mv -f -- "$MARKER.tmp" "$MARKER"
  log "chroot ready in $((SECONDS - started)) s: $version"
}

do_run() { # do_run WORKDIR CMD...
  local workdir=$1
  shift
  install_traps
  [[ ${IN_PRIVATE_NS:-0} == 1 ]] || cleanup_mounts # host fallback: stale ones
  mount_system
  # Bind mounts at identical paths; plain --bind (not --rbind) so the
  # repository does not drag the chroot's own mounts (it lives in target/)
  # back inside.
  local covered=() dir c skip
  for dir in /tmp "$REPO" "$workdir"; do
    skip=0
    for c in "${covered[@]}"; do
      [[ $dir == "$c" || $dir == "$c"/* ]] && skip=1
    done
    [[ $skip == 1 ]] && continue
    do_mount "$CHROOT$dir" --bind --make-private "$dir"
    covered+=("$dir")
  done

  local home=/var/cache/roam-swift/home userspec=()
  if [[ -n ${SUDO_UID:-} && ${SUDO_UID} != 0 ]]; then
    home=/var/cache/roam-swift/home-$SUDO_UID
    userspec=(--userspec="$SUDO_UID:${SUDO_GID:-$SUDO_UID}")
  fi
  mkdir -p -- "$CHROOT$home"
  [[ ${#userspec[@]} -eq 0 ]] || chown "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$CHROOT$home"

  local envs=(PATH="$CHROOT_PATH" HOME="$home" LANG=C.UTF-8) name pat extra
  read -r -a extra <<<"${ROAM_SWIFT_PASS_ENV:-}"
  while IFS= read -r name; do
    [[ $name == ROAM_SWIFT__* ]] && continue
    for pat in "${PASS_ENV[@]}" "${extra[@]}"; do
      # shellcheck disable=SC2053 # $pat is a glob on purpose
      if [[ $name == $pat ]]; then
        envs+=("$name=${!name}")
        break
      fi
    done
  done < <(compgen -e)

  # shellcheck disable=SC2016 # expanded by the inner bash
  local cmd=(chroot "${userspec[@]}" "$CHROOT" /usr/bin/env -i "${envs[@]}"
    /bin/bash -c 'cd -- "$1" && shift && exec "$@"' roam-swift "$workdir" "$@")
  if [[ ${IN_PRIVATE_NS:-0} == 1 ]]; then
    trap - EXIT INT TERM # the namespace, and its mounts, die with the command
    exec "${cmd[@]}"
  fi
  # Host mounts: run the command as a child so the EXIT trap can unmount
  # afterwards, and pass INT/TERM on to it (a background child ignores INT).
  local child status=0
  "${cmd[@]}" {LOCK_FD}>&- &
  child=$!
  trap 'kill -TERM "$child" 2>/dev/null || true' INT TERM
  while :; do
    status=0
    wait "$child" || status=$?
    kill -0 "$child" 2>/dev/null || break # else wait was cut short by a signal
  done
  exit "$status" # the EXIT trap unmounts
}

# --- main -------------------------------------------------------------------

resolve_chroot() {
  CHROOT=$(readlink -m -- "${ROAM_SWIFT_CHROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/roam-shm/swift-chroot}")
  [[ $CHROOT != / ]] || die "ROAM_SWIFT_CHROOT must not be /"
  MARKER=$CHROOT/.roam-swift-ready
  LOCK=$CHROOT.lock
}

# Internal re-entry in a private mount namespace (see enter_private_ns).
if [[ -n ${ROAM_SWIFT__INTERNAL:-} ]]; then
  phase=$ROAM_SWIFT__INTERNAL
  unset ROAM_SWIFT__INTERNAL
  resolve_chroot
  case $phase in
    setup) do_setup ;;
    run) do_run "$@" ;;
    *) die "bad internal phase $phase" ;;
  esac
  exit 0
fi

orig_args=("$@")
print_mode=0 setup_only=0 remove=0 workdir=$REPO
while [[ $# -gt 0 ]]; do
  case $1 in
    --print-mode) print_mode=1 ;;
    --setup-only) setup_only=1 ;;
    --remove-chroot) remove=1 ;;
    -C | --cd)
      [[ $# -ge 2 ]] || die "$1 needs a directory"
      workdir=$2
      shift
      ;;
    --cd=*) workdir=${1#--cd=} ;;
    -h | --help)
      usage
      exit 0
      ;;
    --)
      shift
      break
      ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
  shift
done
workdir=$(cd -- "$workdir" && pwd -P) || die "no such directory: $workdir"

case ${ROAM_SWIFT_MODE:-auto} in
  native | chroot) mode=$ROAM_SWIFT_MODE ;;
  auto) if command -v swift >/dev/null 2>&1; then mode=native; else mode=chroot; fi ;;
  *) die "ROAM_SWIFT_MODE must be auto, native or chroot" ;;
esac
if [[ $print_mode == 1 ]]; then
  echo "$mode"
  exit 0
fi
if [[ $remove == 0 && $setup_only == 0 && $# -eq 0 ]]; then
  usage >&2
  exit 2
fi

if [[ $mode == native ]]; then
  [[ $remove == 0 ]] || die "--remove-chroot: mode is native (swift is on PATH)"
  log "native toolchain: $(command -v swift) ($(swift --version 2>&1 | grep -m1 'Swift version' || echo 'version unknown'))${*:+; running in $workdir}"
  [[ $setup_only == 1 ]] && exit 0
  cd -- "$workdir"
  exec "$@"
fi

need_root_or_sudo "$SCRIPT" "${orig_args[@]}"
for tool in unshare flock findmnt chroot; do
  command -v "$tool" >/dev/null || die "needs $tool (util-linux / coreutils)"
done
resolve_chroot
mkdir -p -- "$(dirname -- "$CHROOT")"
exec {LOCK_FD}>>"$LOCK"

if [[ $remove == 1 ]]; then
  flock -n -x "$LOCK_FD" || die "$CHROOT is in use by another run; not deleting it"
  if [[ -e $CHROOT ]]; then safe_remove_chroot; else log "no chroot at $CHROOT"; fi
  exit 0
fi

IN_PRIVATE_NS=0
if [[ ${ROAM_SWIFT_NO_UNSHARE:-0} != 1 ]] && unshare --mount --propagation private true 2>/dev/null; then
  IN_PRIVATE_NS=1
fi
export IN_PRIVATE_NS

# Setup in a fresh private mount namespace (re-executing this script), so
# mounts made by debootstrap and for apt-get vanish even if it is killed; or
# in a subshell with trap-based unmounting when namespaces are unavailable.
run_setup() {
  if [[ $IN_PRIVATE_NS == 1 ]]; then
    ROAM_SWIFT_CHROOT=$CHROOT ROAM_SWIFT__INTERNAL=setup \
      unshare --mount --propagation private -- "$BASH" "$SCRIPT"
  else
    (do_setup)
  fi
}

# Shared lock while checking/using; exclusive to build. Runs hold the shared
# lock until the command ends (the fd is inherited), so --remove-chroot and
# a rebuild wait for them.
flock -s "$LOCK_FD"
if ! chroot_ready; then
  flock -u "$LOCK_FD"
  flock -x "$LOCK_FD"
  # With the exclusive lock, host mounts below the chroot are stale (from a
  # killed host-mode run or by hand): private-namespace runs are invisible.
  cleanup_mounts
  if ! chroot_ready; then
    apt_install_if_missing debootstrap
    ROAM_SWIFT_MIRROR=$(host_mirror)
    export ROAM_SWIFT_MIRROR
    run_setup
    chroot_ready || die "setup finished but $CHROOT is not ready"
  fi
  [[ $IN_PRIVATE_NS == 0 ]] || flock -s "$LOCK_FD"
elif [[ $IN_PRIVATE_NS == 0 ]]; then
  flock -u "$LOCK_FD"
  flock -x "$LOCK_FD" # host mounts at fixed paths: one run at a time
fi

version=$(sed -n 's/^swift: //p' "$MARKER")
ns_note="private mount namespace"
[[ $IN_PRIVATE_NS == 1 ]] || ns_note="host mounts (no unshare), serialized"
if [[ $setup_only == 1 ]]; then
  log "chroot $CHROOT ready ($SUITE, $version)"
  exit 0
fi
printf -v quoted '%q ' "$@"
log "chroot $CHROOT ($SUITE, $version; $ns_note); running in $workdir: ${quoted% }"
if [[ $IN_PRIVATE_NS == 1 ]]; then
  ROAM_SWIFT_CHROOT=$CHROOT ROAM_SWIFT__INTERNAL=run \
    exec unshare --mount --propagation private -- "$BASH" "$SCRIPT" "$workdir" "$@"
fi
do_run "$workdir" "$@" # host mounts; exits with the command's status
