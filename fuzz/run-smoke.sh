#!/bin/sh
# fuzz/run-smoke.sh SECONDS: runs every built libFuzzer target (out/fuzz/)
# for SECONDS each, seeded from fuzz/corpus/<target>/ when present. New
# corpus entries go to a scratch folder, never into the tree. A crash, leak
# or sanitizer report fails the run.
set -eu

cd "$(dirname "$0")/.."
secs=${1:-10}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT INT TERM

pass=0
fail=0
for bin in out/fuzz/fuzz_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    work=$scratch/$name
    mkdir -p "$work/corpus"
    if [ -d "fuzz/corpus/$name" ]; then
        cp -r "fuzz/corpus/$name/." "$work/corpus/" 2>/dev/null || true
    fi
    if "$bin" -max_total_time="$secs" -rss_limit_mb=1024 -artifact_prefix="$work/" \
            "$work/corpus" >"$work/log" 2>&1; then
        runs=$(sed -n 's/^#\([0-9]*\)[[:space:]].*/\1/p' "$work/log" | tail -n 1)
        echo "ok   $name: ${runs:-?} inputs in ${secs} s, corpus $(ls "$work/corpus" | wc -l) files"
        pass=$((pass + 1))
    else
        echo "FAIL $name: last lines of its log:"
        tail -n 30 "$work/log"
        for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-*; do
            [ -f "$a" ] && echo "  artifact: $(od -An -tx1 "$a" | head -c 600)"
        done
        fail=$((fail + 1))
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
