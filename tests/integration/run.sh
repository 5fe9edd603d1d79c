#!/bin/sh
# Runs the integration suite inside a fresh network namespace that has only
# loopback, so nothing can leak to or depend on the real network.
# Usage: tests/integration/run.sh [pytest args and paths...]
#   (no arguments: the whole suite in tests/integration)
# Env: TGFRONT_BIN (default out/musl/tgfront), PYTHON (default /usr/bin/python3)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-/usr/bin/python3}
bin=${TGFRONT_BIN:-$root/out/musl/tgfront}
case "$bin" in /*) ;; *) bin=$root/$bin ;; esac

need_pkgs() {
    missing=""
    "$python" -c 'import pytest' 2>/dev/null || missing="$missing python3-pytest"
    "$python" -c 'import cryptography' 2>/dev/null || missing="$missing python3-cryptography"
    if [ -n "$missing" ]; then
        echo "installing:$missing" >&2
        # shellcheck disable=SC2086 # a list of package names
        DEBIAN_FRONTEND=noninteractive apt-get install -y $missing >&2 || {
            apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y $missing >&2
        } || {
            echo "run.sh: cannot install$missing" >&2
            exit 2
        }
    fi
}

check_bin() {
    if [ ! -x "$bin" ]; then
        echo "run.sh: daemon binary $bin not found; build it first (./build.sh) or set TGFRONT_BIN" >&2
        exit 2
    fi
}

need_pkgs
check_bin

ns="tgf-it-$$"
cleanup() { ip netns delete "$ns" 2>/dev/null || true; }
trap cleanup EXIT INT TERM
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up

# Options alone (-q, -k NAME) still run this suite, not every tests/ folder.
has_path=0
for a in "$@"; do
    case "$a" in -*) ;; *) [ -e "$a" ] && has_path=1 ;; esac
done
[ "$has_path" -eq 1 ] || set -- "$@" "$here"
status=0
ip netns exec "$ns" env TGFRONT_BIN="$bin" PYTHONDONTWRITEBYTECODE=1 \
    "$python" -m pytest -q -p no:cacheprovider --rootdir "$here" "$@" || status=$?
exit "$status"
