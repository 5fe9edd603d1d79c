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
. "$here/../lib.sh"
tgf_paths
tgf_need_bin run.sh
tgf_need_pytest run.sh

# The flood test needs about 16,000 descriptors in the daemon and 8,000 in
# the client; say so up front rather than failing with EMFILE later.
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt 17000 ]; then
    echo "run.sh: hard descriptor limit $hard is below 17000; the flood test will not fit" >&2
fi

tgf_netns_up tgf-stress
tgf_has_path "$@" || set -- "$@" "$here"
tgf_pytest_in_netns -- "$@"
exit "$status"
