#!/bin/sh
# bench/run.sh [--quick] [--only SECTIONS] [--results PATH]: the benchmark
# (bench/bench.py) inside a network namespace that has only loopback; with
# --web [--mib N], the WEB proxy mode next to the FakeTLS path
# (bench/web_bench.py; prints, writes nothing). Uses
# out/musl/tgfront and out/musl/tgload (./build.sh bench builds both; set
# TGFRONT_BIN / TGLOAD_BIN for others). Prints a table and writes
# bench/RESULTS.md; it never fails on a number.
set -eu
cd "$(dirname "$0")/.."
bin=${TGFRONT_BIN:-out/musl/tgfront}
load=${TGLOAD_BIN:-out/musl/tgload}
for f in "$bin" "$load"; do
    [ -x "$f" ] || { echo "bench: $f missing: run ./build.sh bench first" >&2; exit 1; }
done
ns=tgf-bench-$$
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT INT TERM
ip netns exec "$ns" ip link set lo up
# Thousands of idle connections need descriptors for client, daemon and sink.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
script=bench/bench.py
if [ "${1:-}" = --web ]; then
    # WEB proxy mode next to the FakeTLS path, one stream each way.
    shift
    script=bench/web_bench.py
fi
ip netns exec "$ns" /usr/bin/python3 "$script" "$(realpath "$bin")" "$(realpath "$load")" "$@"
