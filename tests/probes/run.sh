#!/bin/sh
# Runs the differential probe suite (issue 6) inside a fresh network
# namespace that has only loopback: a stock Caddy and tgfront fronting the
# same Caddy site, every probe sent to both, a table of what a prober sees.
# Usage: tests/probes/run.sh [pytest args]
# Env: TGFRONT_BIN (default out/musl/tgfront), CADDY_BIN (default: the image's
#      Caddy, fetched like build/image.sh does into out/cache/caddy/),
#      PYTHON (default /usr/bin/python3), PROBES (substrings: run only those),
#      PROBE_SEED (random payloads).
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
    command -v dpkg-deb >/dev/null 2>&1 || missing="$missing dpkg"
    command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
    [ -n "$missing" ] || return 0
    echo "installing:$missing" >&2
    # shellcheck disable=SC2086 # a list of package names
    DEBIAN_FRONTEND=noninteractive apt-get install -y $missing >&2 || {
        apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y $missing >&2
    } || {
        echo "probes: cannot install$missing" >&2
        exit 2
    }
}

# The same Caddy the image ships: build/image.sh's image_caddy_fetch (Debian
# testing's package, cached in out/cache/caddy/).
find_caddy() {
    if [ -n "${CADDY_BIN:-}" ]; then
        caddy=$CADDY_BIN
    else
        (cd "$root" && . ./build/image.sh && image_caddy_fetch)
        caddy=$root/out/cache/caddy/usr/bin/caddy
    fi
    [ -x "$caddy" ] || { echo "probes: no caddy at $caddy" >&2; exit 2; }
}

need_pkgs
find_caddy
if [ ! -x "$bin" ]; then
    echo "probes: daemon binary $bin not found; build it first (./build.sh daemon) or set TGFRONT_BIN" >&2
    exit 2
fi

ns="tgf-probe-$$"
cleanup() { ip netns delete "$ns" 2>/dev/null || true; }
trap cleanup EXIT INT TERM
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up

status=0
ip netns exec "$ns" env TGFRONT_BIN="$bin" CADDY_BIN="$caddy" PYTHONDONTWRITEBYTECODE=1 \
    "$python" -m pytest -q -p no:cacheprovider --rootdir "$here" "$here" "$@" || status=$?
exit "$status"
