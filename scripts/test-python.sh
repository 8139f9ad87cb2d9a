#!/usr/bin/env bash
# Build and test the Python package (roam_shm): venv, build+install, pytest, mypy
# --strict, stubtest. Prints each step; non-zero exit on any failure; ends with
# pytest's own summary line.
#
#   scripts/test-python.sh            # build (maturin develop) + all checks
#   scripts/test-python.sh --wheel    # also verify `pip install .` in a fresh venv
#   scripts/test-python.sh -- -k kill # extra arguments go to pytest
#
# The venv lives in target/py-venv and is reused. The test run installs the package
# with `maturin develop` (debug build, incremental: seconds once warm); `pip install .`
# builds a release wheel from scratch in an isolated build env (minutes on 2 cores),
# so it is verified by --wheel (CI: ROAM_PY_WHEEL=1) in a throwaway venv.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh

# Pinned tool versions (the build backend's maturin is pinned in pyproject.toml).
MATURIN=maturin==1.16.0
PYTEST=pytest==9.2.0
PYTEST_TIMEOUT=pytest-timeout==2.4.0
MYPY=mypy==2.4.1

WHEEL=${ROAM_PY_WHEEL:-0}
PYTEST_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --wheel) WHEEL=1 ;;
    --) shift; PYTEST_ARGS=("$@"); break ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
  shift
done

PYTHON=${PYTHON:-python3}
VENV=target/py-venv
command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
  || die "Python >= 3.11 is required"

elapsed() { local s=$1; printf '%ss' "$((SECONDS - s))"; }

t=$SECONDS
if [ ! -x "$VENV/bin/python" ]; then
  run "$PYTHON" -m venv "$VENV"
fi
run "$VENV/bin/pip" install -q --disable-pip-version-check "$MATURIN" "$PYTEST" "$PYTEST_TIMEOUT" "$MYPY"
log "venv ready ($(elapsed $t))"

# The Rust CLI for the cross-language tests.
t=$SECONDS
run cargo build -q -p roam-shm-cli
export ROAM_SHM_CLI=${ROAM_SHM_CLI:-$PWD/target/debug/roam-shm}
log "CLI built ($(elapsed $t)): $ROAM_SHM_CLI"

t=$SECONDS
run env VIRTUAL_ENV="$PWD/$VENV" "$VENV/bin/maturin" develop -q
log "package built and installed with maturin develop ($(elapsed $t))"

if [ "$WHEEL" = 1 ]; then
  t=$SECONDS
  fresh=$(mktemp -d /tmp/roam-py-wheel.XXXXXX)
  trap 'rm -rf "$fresh"' EXIT
  run "$PYTHON" -m venv "$fresh/venv"
  run "$fresh/venv/bin/pip" install -q --disable-pip-version-check .
  run "$fresh/venv/bin/python" -c \
    'import roam_shm, importlib.metadata as m; assert not roam_shm.DEBUG_BUILD, "pip install . built a debug extension"; print("installed", roam_shm.__version__, m.version("roam-shm"), "(release build)")'
  log "pip install . in a fresh venv ($(elapsed $t))"
fi

status=0
t=$SECONDS
log "+ mypy --strict (package and tests)"
"$VENV/bin/python" -m mypy --strict bindings/python/python/roam_shm bindings/python/tests \
  bindings/python/bench || status=1
log "+ stubtest"
"$VENV/bin/python" -m mypy.stubtest roam_shm \
  --allowlist bindings/python/stubtest-allowlist.txt || status=1
log "type checks done ($(elapsed $t))"

t=$SECONDS
set +e
run "$VENV/bin/python" -m pytest bindings/python/tests -p no:cacheprovider "${PYTEST_ARGS[@]}"
rc=$?
set -e
# Nothing is printed after pytest on success, so its summary line stays the last one.
if [ $rc -eq 5 ]; then
  die "pytest collected no tests (exit code 5)"
elif [ $rc -ne 0 ] || [ $status -ne 0 ]; then
  die "Python checks failed (pytest exit code $rc, type checks $([ $status -eq 0 ] && echo passed || echo failed); pytest took $(elapsed $t))"
fi
