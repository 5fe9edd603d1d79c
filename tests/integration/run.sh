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

tgf_has_path "$@" || set -- "$@" "$here"

tgf_netns_up tgf-it
tgf_pytest_in_netns -- "$@"
exit "$status"
