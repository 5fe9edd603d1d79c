#!/bin/sh
# tests/arm64/run.sh: the aarch64 build under qemu-user. Cross-builds
# out/arm64/ (./build.sh arm64), then runs the unit tests twice under
# qemu-aarch64-static -cpu max: once with the ARMv8 AES instructions
# (the pick must be "armv8") and once forced to BearSSL's constant-time code
# with TGFRONT_AES=soft (the pick must be "ct64"). qemu 7.2 has no CPU model
# without AES (every -cpu sets HWCAP_AES and none takes aes=off), so the
# variable stands in for such a CPU: it clears the same decision.
# TGF_EXPECT_AES makes the unit test crypto_aes_impl_is_expected fail when the
# pick is not the one wanted, and the daemon's `version` line is checked too.
# Then the integration suite's tests of what the binary does on the wire run
# against the aarch64 daemon through out/arm64/tgfront-qemu (ARM64_TESTS:
# relaying, fronting, edges, probing, record shaping, fast mode, named
# secrets and reload, workers, the WEB proxy's relay; ARM64_INTEGRATION=0
# skips them). Left to the native run: the CLI, check-config, doctor,
# operations, start-up, limits, lifecycle and soak tests and the WEB proxy
# behind Caddy and in Chromium, which test configuration and
# architecture-independent logic or are mostly waiting, and would not fit
# CI's time under emulation.
# Ends with "N passed, N failed": both runs' unit tests, the two version
# checks, and the integration suite counted as one when it runs.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

QEMU=${QEMU:-qemu-aarch64-static}
LIMIT=${ARM64_TIMEOUT:-600}   # seconds per run; one run takes a few
total_pass=0
total_fail=0
runs_failed=0

# $1 = expected pick, remaining = environment assignments for the run.
run_units() {
    want=$1
    shift
    log=out/arm64/unit-tests.$want.log
    echo "arm64: unit tests under $QEMU -cpu max, expecting AES '$want'"
    if env "$@" TGF_EXPECT_AES="$want" timeout "$LIMIT" \
            "$QEMU" -cpu max out/arm64/unit-tests >"$log" 2>&1; then
        rc=0
    else
        rc=$?
    fi
    grep -E 'FAIL|crypto_aes_impl:' "$log" || true
    summary=$(tail -n 1 "$log")
    echo "arm64 ($want): $summary (exit $rc, log $log)"
    case $summary in
        *" passed, "*" failed")
            p=${summary%% passed*}
            f=${summary#*passed, }
            f=${f%% failed}
            total_pass=$((total_pass + p))
            total_fail=$((total_fail + f))
            ;;
        *)
            echo "arm64: error: no summary line in $log (timeout after ${LIMIT}s or crash?)" >&2
            total_fail=$((total_fail + 1))
            ;;
    esac
    [ "$rc" -eq 0 ] || runs_failed=$((runs_failed + 1))
}

# $1 = expected pick, remaining = environment assignments.
check_version() {
    want=$1
    shift
    line=$(env "$@" "$QEMU" -cpu max out/arm64/tgfront version 2>&1) || line="(exit $?) $line"
    echo "arm64: tgfront version: $line"
    case $line in
        *"(AES: $want)"*) total_pass=$((total_pass + 1)) ;;
        *)
            echo "arm64: error: expected AES '$want' in the version line" >&2
            total_fail=$((total_fail + 1))
            ;;
    esac
}

./build.sh arm64
command -v "$QEMU" >/dev/null 2>&1 || {
    echo "arm64: error: $QEMU not found (Debian package qemu-user-static)" >&2
    exit 2
}
run_units armv8 TGFRONT_AES=
run_units ct64 TGFRONT_AES=soft
check_version armv8 TGFRONT_AES=
check_version ct64 TGFRONT_AES=soft

# A wrapper with the binary's path in it, for tests that exec TGFRONT_BIN
# (no binfmt_misc needed); exec keeps the PID, so SIGTERM reaches qemu, which
# passes it on to the daemon.
integration() {
    wrapper=$root/out/arm64/tgfront-qemu
    printf '#!/bin/sh\nexec %s -cpu max %s "$@"\n' "$QEMU" "$root/out/arm64/tgfront" >"$wrapper"
    chmod +x "$wrapper"
    echo "arm64: integration suite with TGFRONT_BIN=$wrapper"
    tests=${ARM64_TESTS:-tests/integration/test_relay.py tests/integration/test_fronting.py tests/integration/test_edges.py tests/integration/test_probing.py tests/integration/test_shaping.py tests/integration/test_fast_mode.py tests/integration/test_secrets.py tests/integration/test_workers.py tests/integration/test_web.py tests/integration/test_web_limits.py}
    # shellcheck disable=SC2086 # a list of test files
    # qemu-user runs a thread of its own in the daemon's process: the two
    # tests that count the daemon's threads stay with the native run.
    # TGF_EMULATOR_THREADS: test_workers counts that thread with the daemon's.
    if TGFRONT_BIN=$wrapper TGF_EMULATOR_THREADS=1 timeout "$LIMIT" sh tests/integration/run.sh $tests \
        -k "not one_keeps_one_thread and not default_is_cpu_count"; then
        total_pass=$((total_pass + 1))
    else
        echo "arm64: error: integration suite under qemu failed" >&2
        total_fail=$((total_fail + 1))
    fi
}
[ "${ARM64_INTEGRATION:-1}" = 0 ] || integration

[ "$runs_failed" -eq 0 ] || echo "arm64: $runs_failed run(s) exited non-zero" >&2
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ] && [ "$runs_failed" -eq 0 ]
