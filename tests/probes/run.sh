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
. "$here/../lib.sh"
tgf_paths

need_pkgs() {
    tgf_need_pytest probes
    command -v dpkg-deb >/dev/null 2>&1 || tgf_apt_install probes dpkg
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
tgf_need_bin probes
tgf_netns_up tgf-probe
tgf_pytest_in_netns CADDY_BIN="$caddy" -- "$here" "$@"
exit "$status"
