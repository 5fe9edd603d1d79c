#!/bin/sh
# Checks the unit harness itself: builds unit_main.c with bad_tests.c (tests
# that must fail) and asserts what the runner prints and returns. A harness
# that let a test pass by checking nothing would make every suite weaker.
#   sh tests/unit/harness/selftest.sh CC OUTDIR
set -eu

cc=${1:?usage: selftest.sh CC OUTDIR}
out=${2:?usage: selftest.sh CC OUTDIR}
here=$(dirname "$0")
bin=$out/unit-harness-selftest
fails=0

die() {
    echo "harness selftest: error: $*" >&2
    exit 1
}

# $1 = description, $2 = file, $3 = fixed string that must be in it.
expect_line() {
    if grep -qF -- "$3" "$2"; then
        return 0
    fi
    echo "harness selftest: FAIL: $1: no line with '$3' in:" >&2
    sed 's/^/    /' "$2" >&2
    fails=$((fails + 1))
}

# $1 = description, $2 = wanted exit status, $3 = actual.
expect_status() {
    [ "$2" = "$3" ] && return 0
    echo "harness selftest: FAIL: $1: exit status $3, want $2" >&2
    fails=$((fails + 1))
}

build() {
    mkdir -p "$out"
    "$cc" -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -I"$here/.." \
        -o "$bin" "$here/../unit_main.c" "$here/bad_tests.c" \
        || die "compiling the harness self-test with $cc failed"
}

# $1 = name suffix; runs the binary with the remaining arguments.
run() {
    name=$1
    shift
    rc=0
    "$bin" "$@" >"$out/selftest-$name.out" 2>&1 || rc=$?
}

check_all() {
    run all
    expect_status "failing tests" 1 "$rc"
    f=$out/selftest-all.out
    expect_line "empty test" "$f" "FAIL selftest_checks_nothing (ran no check)"
    expect_line "short buffers: offset" "$f" "bytes differ from offset 17"
    expect_line "short buffers: got" "$f" "000010  10 11"
    expect_line "short buffers: want" "$f" "000010  10 ee"
    expect_line "long buffers: offset" "$f" "4096 bytes differ from offset 3000"
    expect_line "long buffers: window" "$f" "(bytes 2960..3088 of 4096)"
    expect_line "long buffers: the byte" "$f" "000bb0  00 00 00 00 00 00 00 00 5a"
    expect_line "FAIL formats" "$f" "case 7 of seven"
    expect_line "CHECK_MSG formats" "$f" "sum was 2"
    expect_line "passing test" "$f" "ok   selftest_passes"
    expect_line "summary" "$f" "1 passed, 5 failed"
}

check_filters() {
    run pass selftest_passes
    expect_status "filter selecting a passing test" 0 "$rc"
    expect_line "filter summary" "$out/selftest-pass.out" "1 passed, 0 failed"
    run none no_such_test
    expect_status "filter selecting nothing" 1 "$rc"
    expect_line "filter selecting nothing" "$out/selftest-none.out" "no test matches 'no_such_test'"
    run args a b
    expect_status "two arguments" 2 "$rc"
}

build
check_all
check_filters
if [ "$fails" -ne 0 ]; then
    echo "harness selftest: $fails expectation(s) failed" >&2
    exit 1
fi
echo "harness selftest: ok"
