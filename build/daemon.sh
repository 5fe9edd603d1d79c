# build/daemon.sh: steps that build the tgfront daemon. Sourced by build.sh
# (POSIX sh, set -eu); every function assumes the current directory is the
# project root and reports its own failure before returning non-zero.
#
# Output layout (all under out/, which git ignores):
#   out/src/bearssl-*/     Debian's BearSSL source package, unpacked
#   out/musl/              static musl build: libbearssl.a, tgfront, unit-tests
#   out/asan/              clang ASan+UBSan build (glibc), same targets
#   out/arm64/             static aarch64 musl build (cross-compiled), same
#                          targets as out/musl/
#   out/fuzz/              libFuzzer targets built from fuzz/fuzz_*.c

DAEMON_SRC_LIST=/etc/apt/sources.list.d/tgfront-deb-src.sources

daemon_die() {
    echo "build: error: $*" >&2
    exit 1
}

daemon_say() {
    echo "build: $*" >&2
}

daemon_jobs() {
    n=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
    echo "${n:-1}"
}

# --- prerequisites ---------------------------------------------------------

# Prints the Debian package names for the missing tools, one per line.
daemon_missing_packages() {
    command -v musl-gcc >/dev/null 2>&1 || echo musl-tools
    command -v dpkg-source >/dev/null 2>&1 || echo dpkg-dev
    command -v file >/dev/null 2>&1 || echo file
    command -v make >/dev/null 2>&1 || echo make
    command -v ar >/dev/null 2>&1 || echo binutils
    command -v strip >/dev/null 2>&1 || echo binutils
    # clang only for the sanitizer and fuzz builds (not in the image builder).
    [ "${DAEMON_NEED_CLANG:-0}" = 1 ] || return 0
    if command -v clang >/dev/null 2>&1; then
        # The sanitizer and libFuzzer runtimes are a separate package that
        # --no-install-recommends leaves out.
        rt=$(clang -print-file-name="libclang_rt.asan-$(uname -m).a" 2>/dev/null)
        [ -e "$rt" ] || echo libclang-rt-dev
    else
        echo clang
        echo libclang-rt-dev
    fi
    return 0
}

daemon_is_debian_like() {
    [ -r /etc/debian_version ] && command -v apt-get >/dev/null 2>&1
}

# apt-get install, running apt-get update only when the first try fails
# (a fresh container has no package lists; a configured machine needs none).
daemon_apt_install() {
    [ "$(id -u)" = 0 ] || daemon_die "installing $* needs root (run as root or install them yourself)"
    if DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1; then
        return 0
    fi
    daemon_say "apt-get install $* failed; running apt-get update and retrying"
    apt-get update >/dev/null || daemon_die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" \
        || daemon_die "apt-get install $* failed"
}

daemon_prereqs() {
    missing=$(daemon_missing_packages | sort -u | tr '\n' ' ')
    [ -n "${missing% }" ] || return 0
    if ! daemon_is_debian_like; then
        daemon_die "missing tools; install the equivalents of these Debian packages: $missing"
    fi
    daemon_say "installing $missing"
    # shellcheck disable=SC2086 # word splitting of the package list is wanted
    daemon_apt_install $missing
    missing=$(daemon_missing_packages | sort -u | tr '\n' ' ')
    [ -z "${missing% }" ] || daemon_die "still missing after apt-get install: $missing"
}

# --- aarch64 cross toolchain -------------------------------------------------

# Debian packages the aarch64 cross build needs, one per line: the cross gcc,
# musl for arm64 (multiarch; its aarch64-linux-musl-gcc wraps the cross gcc
# with musl's specs file) and qemu-user-static to run the unit tests
# (DAEMON_ARM64_QEMU=0: not wanted, as for the image, which only builds).
daemon_arm64_missing() {
    command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || echo gcc-aarch64-linux-gnu
    command -v aarch64-linux-gnu-strip >/dev/null 2>&1 || echo binutils-aarch64-linux-gnu
    command -v aarch64-linux-musl-gcc >/dev/null 2>&1 || echo musl-dev:arm64
    [ -f /usr/lib/aarch64-linux-musl/libc.a ] || echo musl-dev:arm64
    [ "${DAEMON_ARM64_QEMU:-1}" = 0 ] || command -v qemu-aarch64-static >/dev/null 2>&1 || echo qemu-user-static
    return 0
}

# musl-dev:arm64 is an arm64 package: dpkg must accept that architecture.
# The machine's own apt sources serve it (no entry is added); apt-get update
# runs from daemon_apt_install when the arm64 lists are not there yet.
daemon_arm64_multiarch() {
    if dpkg --print-foreign-architectures | grep -qx arm64; then
        return 0
    fi
    [ "$(id -u)" = 0 ] || daemon_die "'dpkg --add-architecture arm64' needs root"
    daemon_say "dpkg --add-architecture arm64 (for musl-dev:arm64)"
    dpkg --add-architecture arm64 || daemon_die "dpkg --add-architecture arm64 failed"
    apt-get update >/dev/null || daemon_die "apt-get update failed after adding arm64"
}

daemon_arm64_prereqs() {
    missing=$(daemon_arm64_missing | sort -u | tr '\n' ' ')
    [ -n "${missing% }" ] || return 0
    daemon_is_debian_like \
        || daemon_die "missing tools; install the equivalents of these Debian packages: $missing"
    case " $missing" in *":arm64 "*) daemon_arm64_multiarch ;; esac
    daemon_say "installing $missing"
    # shellcheck disable=SC2086 # word splitting of the package list is wanted
    daemon_apt_install $missing
    missing=$(daemon_arm64_missing | sort -u | tr '\n' ' ')
    [ -z "${missing% }" ] || daemon_die "still missing after apt-get install: $missing"
}

# --- BearSSL source --------------------------------------------------------

daemon_bearssl_dir() {
    for d in out/src/bearssl-*; do
        if [ -f "$d/inc/bearssl.h" ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

daemon_have_bearssl_sources_index() {
    apt-cache showsrc bearssl 2>/dev/null | grep -q '^Package:'
}

# deb822 stanzas ('Types: deb') -> 'Types: deb-src' stanzas with the same
# URIs, Components and Signed-By (kept verbatim: it may be an inline key).
# shellcheck disable=SC2016 # awk program: $ is awk's, not the shell's
DAEMON_AWK_DEB822='
function has_word(list, w,   n, i, a) {
    n = split(list, a, /[ \t]+/)
    for (i = 1; i <= n; i++) if (a[i] == w) return 1
    return 0
}
function keep_suites(list,   n, i, a, out) {
    out = ""
    n = split(list, a, /[ \t]+/)
    for (i = 1; i <= n; i++)
        if (a[i] == codename || index(a[i], codename "-") == 1) out = out " " a[i]
    return out
}
function flush(   suites) {
    if (seen && tolower(val["enabled"]) != "no" && has_word(val["types"], "deb")) {
        suites = keep_suites(val["suites"])
        if (suites != "" && val["uris"] != "" && val["components"] != "") {
            print "Types: deb-src"
            print "URIs: " val["uris"]
            print "Suites:" suites
            print "Components: " val["components"]
            if (raw["signed-by"] != "") print raw["signed-by"]
            print ""
        }
    }
    seen = 0; key = ""
    split("", val); split("", raw)
}
/^#/ { next }
/^[ \t]*$/ { flush(); next }
/^[ \t]/ {
    if (key != "") {
        v = $0; sub(/^[ \t]+/, "", v); sub(/[ \t]+$/, "", v)
        val[key] = val[key] (val[key] == "" ? "" : " ") v
        raw[key] = raw[key] "\n" $0
    }
    next
}
/^[A-Za-z][A-Za-z0-9-]*:/ {
    seen = 1
    key = tolower(substr($0, 1, index($0, ":") - 1))
    v = substr($0, index($0, ":") + 1); sub(/^[ \t]+/, "", v); sub(/[ \t]+$/, "", v)
    val[key] = v
    raw[key] = $0
}
END { flush() }
'

# One-line entries ('deb [signed-by=...] URI suite component...') -> deb822.
# shellcheck disable=SC2016 # awk program
DAEMON_AWK_LIST='
$1 != "deb" { next }
{
    i = 2; signed = ""
    if (substr($2, 1, 1) == "[") {
        for (; i <= NF; i++) {
            o = $i; gsub(/[][]/, "", o)
            if (index(o, "signed-by=") == 1) signed = substr(o, 11)
            if (index($i, "]") > 0) { i++; break }
        }
    }
    uri = $i; suite = $(i + 1); comps = ""
    for (j = i + 2; j <= NF && substr($j, 1, 1) != "#"; j++) comps = comps " " $j
    if (uri == "" || comps == "") next
    if (suite != codename && index(suite, codename "-") != 1) next
    print "Types: deb-src"
    print "URIs: " uri
    print "Suites: " suite
    print "Components:" comps
    if (signed != "") print "Signed-By: " signed
    print ""
}
'

# Writes deb-src stanzas mirroring the machine's own 'deb' entries, limited to
# suites of this release (codename, codename-updates, ...): third-party
# repositories seldom publish source indices and would break apt-get update.
daemon_derive_deb_src() {
    # shellcheck disable=SC1091 # the machine's own file
    codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
    [ -n "$codename" ] || daemon_die "cannot read VERSION_CODENAME from /etc/os-release"
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        [ "$f" = "$DAEMON_SRC_LIST" ] && continue
        awk -v codename="$codename" "$DAEMON_AWK_DEB822" "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk -v codename="$codename" "$DAEMON_AWK_LIST" "$f"
    done
}

daemon_add_deb_src() {
    [ "$(id -u)" = 0 ] || daemon_die "adding a deb-src entry needs root (or unpack BearSSL's source into out/src/bearssl-<version>/ yourself)"
    stanzas=$(daemon_derive_deb_src)
    [ -n "$stanzas" ] || daemon_die "no 'deb' entry for this release in /etc/apt to derive a deb-src entry from"
    {
        echo "# Written by tgfront build/daemon.sh: source indices for 'apt-get source bearssl',"
        echo "# derived from this machine's own deb entries."
        echo "$stanzas"
    } >"$DAEMON_SRC_LIST"
    daemon_say "wrote $DAEMON_SRC_LIST; running apt-get update"
    apt-get update >/dev/null || daemon_die "apt-get update failed after adding $DAEMON_SRC_LIST"
}

daemon_bearssl_source() {
    if dir=$(daemon_bearssl_dir); then
        daemon_say "reusing BearSSL source in $dir"
        return 0
    fi
    if ! daemon_have_bearssl_sources_index; then
        if [ -f "$DAEMON_SRC_LIST" ]; then
            apt-get update >/dev/null || daemon_die "apt-get update failed"
        fi
        daemon_have_bearssl_sources_index || daemon_add_deb_src
        daemon_have_bearssl_sources_index \
            || daemon_die "apt knows no source package 'bearssl' even after adding deb-src entries"
    fi
    mkdir -p out/src
    daemon_say "fetching Debian's BearSSL source package into out/src"
    (cd out/src && apt-get source bearssl >/dev/null 2>&1) \
        || (cd out/src && apt-get source bearssl) \
        || daemon_die "apt-get source bearssl failed"
    daemon_bearssl_dir >/dev/null || daemon_die "apt-get source bearssl left no out/src/bearssl-*/inc/bearssl.h"
}

# --- BearSSL library -------------------------------------------------------

# $1 = output library, $2 = compiler, remaining = compiler flags.
# Compiles inc/ + src/**/*.c straight into an archive; BearSSL needs no
# configure step and its file names are unique across directories.
daemon_compile_bearssl() {
    lib=$1
    cc=$2
    shift 2
    [ -f "$lib" ] && return 0
    src=$(daemon_bearssl_dir) || daemon_die "BearSSL source missing"
    objdir=${lib%/*}/bearssl-obj
    rm -rf "$objdir"
    mkdir -p "$objdir"
    root=$(pwd)
    daemon_say "compiling BearSSL with $cc into $lib"
    (cd "$src/src" && find . -name '*.c' | sort) >"$objdir/files"
    dups=$(sed 's#.*/##' "$objdir/files" | sort | uniq -d)
    [ -z "$dups" ] || daemon_die "BearSSL has duplicate source names ($dups); cannot flatten objects"
    # xargs -P compiles in parallel; one compiler run per batch of files.
    (cd "$objdir" && sed "s#^\./#$root/$src/src/#" files \
        | xargs -P "$(daemon_jobs)" -n 16 "$cc" "$@" -I"$root/$src/inc" -I"$root/$src/src" -c) \
        || daemon_die "compiling BearSSL with $cc failed"
    rm -f "$lib.tmp"
    ar rcs "$lib.tmp" "$objdir"/*.o || daemon_die "ar failed for $lib"
    mv "$lib.tmp" "$lib"
    rm -rf "$objdir"
}

daemon_bearssl_musl() {
    mkdir -p out/musl
    daemon_compile_bearssl out/musl/libbearssl.a musl-gcc -O2 -fno-pic
}

daemon_bearssl_arm64() {
    mkdir -p out/arm64
    daemon_compile_bearssl out/arm64/libbearssl.a aarch64-linux-musl-gcc -O2 -fno-pic
}

daemon_bearssl_asan() {
    mkdir -p out/asan
    daemon_compile_bearssl out/asan/libbearssl.a clang -O1 -g \
        -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
}

# --- daemon, tests, fuzz targets -------------------------------------------

# $1 = profile (musl, asan, fuzz); remaining = make targets.
daemon_make() {
    profile=$1
    shift
    inc=$(daemon_bearssl_dir)/inc || daemon_die "BearSSL source missing"
    make -j"$(daemon_jobs)" PROFILE="$profile" BEARSSL_INC="$inc" "$@" \
        || daemon_die "make PROFILE=$profile $* failed"
}

daemon_need_main() {
    [ -f src/main.c ] || daemon_die "src/main.c does not exist yet; only './build.sh unit' works without it"
}

# Checks what the image relies on: a static binary well under 1 MB.
# $1 = binary (default out/musl/tgfront), $2 = what file(1) must name as the
# machine (default: no check).
daemon_check_binary() {
    bin=${1:-out/musl/tgfront}
    machine=${2:-}
    desc=$(file -b "$bin") || daemon_die "file $bin failed"
    case $desc in
        *"statically linked"*|*"static-pie linked"*) ;;
        *) daemon_die "$bin is not statically linked: $desc" ;;
    esac
    case $desc in
        *"$machine"*) ;;
        *) daemon_die "$bin is not built for $machine: $desc" ;;
    esac
    size=$(wc -c <"$bin" | tr -d ' ')
    [ "$size" -lt 1048576 ] || daemon_die "$bin is $size bytes; the limit is 1 MiB"
    daemon_say "$bin: $size bytes, $desc"
}

# --- QR code generator source ------------------------------------------------

daemon_qrcodegen_dir() {
    for d in out/src/QR-Code-generator-*/c; do
        if [ -f "$d/qrcodegen.c" ] && [ -f "$d/qrcodegen.h" ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

# Debian's qr-code-generator source package (Nayuki's QR Code generator; its
# C library is two files). Only the upstream tarball is needed: when apt
# cannot fetch the Debian part, the tarball apt already verified against the
# signed Sources index is checked against the .dsc again and unpacked.
daemon_qrcodegen_source() {
    daemon_qrcodegen_dir >/dev/null && return 0
    daemon_have_bearssl_sources_index || daemon_bearssl_source
    mkdir -p out/src
    daemon_say "fetching Debian's qr-code-generator source package into out/src"
    (cd out/src && apt-get source qr-code-generator >/dev/null 2>&1) || true
    if ! daemon_qrcodegen_dir >/dev/null; then
        dsc=$(ls out/src/qr-code-generator_*.dsc 2>/dev/null | tail -n 1)
        orig=$(ls out/src/qr-code-generator_*.orig.tar.* 2>/dev/null | tail -n 1)
        [ -n "$dsc" ] && [ -n "$orig" ] || daemon_die "apt-get source qr-code-generator failed"
        want=$(awk -v f="${orig##*/}" '/^Checksums-Sha256:/ { on = 1; next } /^[^ ]/ { on = 0 }
            on && $3 == f { print $1 }' "$dsc")
        have=$(sha256sum "$orig" | cut -d' ' -f1)
        [ -n "$want" ] && [ "$want" = "$have" ] || daemon_die "$orig does not match the sha256 in $dsc"
        tar -C out/src -xf "$orig" || daemon_die "cannot unpack $orig"
    fi
    daemon_qrcodegen_dir >/dev/null || daemon_die "qr-code-generator source has no c/qrcodegen.c"
}

daemon_setup() {
    daemon_prereqs
    daemon_bearssl_source
    daemon_qrcodegen_source
}

daemon_build() {
    daemon_setup
    daemon_need_main
    daemon_bearssl_musl
    daemon_make musl all
    daemon_check_binary
}

daemon_unit() {
    daemon_setup
    daemon_bearssl_musl
    daemon_make musl unit
    sh tests/unit/harness/selftest.sh musl-gcc out/musl \
        || daemon_die "the unit harness's self-test failed (tests/unit/harness/selftest.sh)"
    daemon_say "running out/musl/unit-tests"
    out/musl/unit-tests || daemon_die "unit tests failed (out/musl/unit-tests)"
}

# Static aarch64 daemon and unit tests (out/arm64/), cross-compiled; the unit
# tests run under qemu-user in tests/arm64/run.sh, not here. Arguments: the
# make targets (default: all unit; the image needs only all).
daemon_arm64() {
    [ $# -gt 0 ] || set -- all unit
    daemon_setup
    daemon_arm64_prereqs
    daemon_need_main
    daemon_bearssl_arm64
    daemon_make arm64 "$@"
    daemon_check_binary out/arm64/tgfront "ARM aarch64"
}

# ASan+UBSan build of the unit tests (run) and of the daemon (when main.c exists).
daemon_asan() {
    DAEMON_NEED_CLANG=1
    daemon_setup
    daemon_bearssl_asan
    if [ -f src/main.c ]; then
        daemon_make asan all unit
    else
        daemon_say "src/main.c missing: building only the ASan unit tests"
        daemon_make asan unit
    fi
    sh tests/unit/harness/selftest.sh clang out/asan \
        || daemon_die "the unit harness's self-test failed under clang (tests/unit/harness/selftest.sh)"
    daemon_say "running out/asan/unit-tests"
    out/asan/unit-tests || daemon_die "unit tests failed under ASan/UBSan (out/asan/unit-tests)"
}

daemon_fuzz() {
    DAEMON_NEED_CLANG=1
    daemon_setup
    daemon_bearssl_asan
    daemon_make fuzz fuzz
    for f in out/fuzz/fuzz_*; do
        [ -f "$f" ] && daemon_say "fuzz target: $f"
    done
    return 0
}
