#!/bin/sh
# tests/run-all.sh: every test of the project, as CI runs it (.ci/run calls
# this). Installs what it needs on Debian, builds, then runs each suite:
#   unit (musl), unit (ASan+UBSan), arm64 (cross-built unit tests under
#   qemu-user, AES on and off), integration (musl), integration (ASan),
#   interop (mtcute), fuzz smoke, image smoke, the image's WEB proxy mode,
#   and the arm64 image's smoke under emulation (cross-built image,
#   qemu-user via binfmt_misc).
# Each suite prints its own runner's summary; the last line counts suites.
# TGF_SKIP="image interop" skips suites by name (for quick local runs only).
set -eu

cd "$(dirname "$0")/.."
ROOT=$(pwd)
LOG_DIR=$ROOT/out/test-logs
mkdir -p "$LOG_DIR"

passed=0
failed=0
failed_names=""

skipped() {
    case " ${TGF_SKIP:-} " in *" $1 "*) return 0 ;; esac
    return 1
}

suite() {
    name=$1
    shift
    if skipped "$name"; then
        echo "=== suite $name: skipped (TGF_SKIP)"
        return 0
    fi
    echo "=== suite $name: $*"
    start=$(date +%s)
    # The output goes to the terminal and to the suite's log, whose failure
    # lines are repeated at the end (CI shows the head and tail of a run).
    log=$LOG_DIR/suite-$name.log
    rm -f "$LOG_DIR/suite-$name.rc"
    { "$@" && echo 0 >"$LOG_DIR/suite-$name.rc" || echo $? >"$LOG_DIR/suite-$name.rc"; } 2>&1 | tee "$log"
    if [ "$(cat "$LOG_DIR/suite-$name.rc" 2>/dev/null)" = 0 ]; then
        passed=$((passed + 1))
        echo "=== suite $name: ok ($(( $(date +%s) - start )) s)"
    else
        failed=$((failed + 1))
        failed_names="$failed_names $name"
        echo "=== suite $name: FAILED ($(( $(date +%s) - start )) s)"
    fi
}

build_all() {
    ./build.sh daemon
}

integration() {
    TGFRONT_BIN=$1 sh tests/integration/run.sh
}

fuzz_smoke() {
    ./build.sh fuzz && sh fuzz/run-smoke.sh "${FUZZ_SECONDS:-10}"
}

suite build build_all
suite unit ./build.sh unit
suite unit-asan ./build.sh asan
suite arm64 sh tests/arm64/run.sh
suite integration integration "$ROOT/out/musl/tgfront"
suite integration-asan integration "$ROOT/out/asan/tgfront"
suite stress sh tests/stress/run.sh
suite probes sh tests/probes/run.sh
suite interop sh tests/interop/run.sh
suite fuzz fuzz_smoke
suite image sh ci/smoke.sh
# The WEB proxy mode through the image's :443 (the image suite built it).
suite image-web sh ci/web-smoke.sh
suite image-arm64 env IMAGE_ARCH=arm64 sh ci/smoke.sh

if [ "$failed" -ne 0 ]; then
    for name in $failed_names; do
        echo "=== what failed in suite $name (from $LOG_DIR/suite-$name.log):"
        grep -E '(^|[^a-z_])(FAIL|FAILED|not ok|Error|ERROR)([^a-z_]|$)' "$LOG_DIR/suite-$name.log" | tail -n 25 | cut -c1-400
    done
    echo "failed suites:$failed_names"
fi
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
