#!/bin/sh
# Runs the integration suite inside a fresh network namespace that has only
# loopback, so nothing can leak to or depend on the real network.
# Usage: tests/integration/run.sh [pytest args and paths...]
#   (no paths: the whole suite in tests/integration)
# Env: TGFRONT_BIN (default out/musl/tgfront), PYTHON (default /usr/bin/python3)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
tgf_paths
tgf_need_pytest run.sh
tgf_need_bin run.sh
# The WEB proxy's tests need the image's Caddy (test_web_caddy.py: fetched
# as build/image.sh does, cached in out/cache/caddy/) and Debian's Chromium
# (test_web_chromium.py); under this script they fail, not skip, without.
command -v chromium >/dev/null 2>&1 || tgf_apt_install run.sh chromium
# test_ops.py checks a scrape and the Grafana dashboard's queries with
# promtool (Debian's prometheus package).
command -v promtool >/dev/null 2>&1 || tgf_apt_install run.sh prometheus
if [ -z "${CADDY_BIN:-}" ]; then
    command -v dpkg-deb >/dev/null 2>&1 || tgf_apt_install run.sh dpkg
    (cd "$here/../.." && . ./build/image.sh && image_caddy_fetch)
    CADDY_BIN=$(cd "$here/../.." && pwd)/out/cache/caddy/usr/bin/caddy
fi

tgf_has_path "$@" || set -- "$@" "$here"

tgf_netns_up tgf-it
tgf_pytest_in_netns CADDY_BIN="$CADDY_BIN" TGF_REQUIRE_WEB_DEPS=1 -- "$@"
exit "$status"
