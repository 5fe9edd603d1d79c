#!/bin/sh
# bench/run.sh [TGFRONT_BIN] [bench.py flags]: runs bench/bench.py inside a
# network namespace that has only loopback. Prints figures; asserts nothing.
set -eu
cd "$(dirname "$0")/.."
bin=${1:-out/musl/tgfront}
[ $# -gt 0 ] && shift
[ -x "$bin" ] || { echo "bench: $bin missing: run ./build.sh daemon first" >&2; exit 1; }
ns=tgf-bench-$$
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT INT TERM
ip netns exec "$ns" ip link set lo up
# Thousands of idle connections need descriptors for client, daemon and sink.
ulimit -n 65536 2>/dev/null || true
ip netns exec "$ns" /usr/bin/python3 bench/bench.py "$(realpath "$bin")" "$@"
