#!/bin/sh
# Runs the load and fault suite (issue 6) inside a fresh network namespace
# that has only loopback, like tests/integration/run.sh.
# Usage: tests/stress/run.sh [pytest args and paths...]
#   (no arguments: the whole suite in tests/stress)
# Env: TGFRONT_BIN (default out/musl/tgfront), PYTHON (default /usr/bin/python3)
# Needs root (network namespace) and a hard RLIMIT_NOFILE of about 20,000:
# the tests raise their own soft limits and set the daemon's.
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

if [ ! -x "$bin" ]; then
    echo "run.sh: daemon binary $bin not found; build it first (./build.sh) or set TGFRONT_BIN" >&2
    exit 2
fi
need_pkgs

# The flood test needs about 16,000 descriptors in the daemon and 8,000 in
# the client; say so up front rather than failing with EMFILE later.
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt 17000 ]; then
    echo "run.sh: hard descriptor limit $hard is below 17000; the flood test will not fit" >&2
fi

ns="tgf-stress-$$"
cleanup() { ip netns delete "$ns" 2>/dev/null || true; }
trap cleanup EXIT INT TERM
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up

[ "$#" -gt 0 ] || set -- "$here"
status=0
ip netns exec "$ns" env TGFRONT_BIN="$bin" PYTHONDONTWRITEBYTECODE=1 \
    "$python" -m pytest -q -p no:cacheprovider --rootdir "$here" "$@" || status=$?
exit "$status"
