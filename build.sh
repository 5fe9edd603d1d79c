#!/bin/sh
# build.sh: the one entry point for building tgfront. Output goes to out/.
#
#   ./build.sh            everything: daemon, then rootfs and image when
#                         build/image.sh is present
#   ./build.sh daemon     static musl daemon: out/musl/tgfront
#   ./build.sh unit       build and run the unit tests (out/musl/unit-tests)
#   ./build.sh asan       ASan+UBSan build in out/asan/, runs its unit tests
#   ./build.sh arm64      static aarch64 daemon and unit tests in out/arm64/
#                         (cross-compiled; tests/arm64/run.sh runs them)
#   ./build.sh fuzz       libFuzzer targets from fuzz/fuzz_*.c into out/fuzz/
#   ./build.sh rootfs [ARCH]  image root (needs build/image.sh)
#   ./build.sh image [ARCH]   container image (needs build/image.sh); ARCH
#                         (or IMAGE_ARCH) arm64 on amd64: cross-built, tagged
#                         tgfront:arm64, saved as out/tgfront-arm64.tar.gz
#   ./build.sh demo       build the image and run it on ports 80/443 with
#                         DOMAIN=localhost and Caddy's internal CA
#
# Steps live in build/daemon.sh (daemon_* functions) and build/image.sh
# (image_rootfs and image_build), which this script sources.
set -eu

cd "$(dirname "$0")"

. ./build/daemon.sh
# rootfs and image take the image's architecture (Debian's name) as a second
# word; build/image.sh reads it from IMAGE_ARCH when it is sourced.
case ${1:-} in
    rootfs|image) [ -z "${2:-}" ] || IMAGE_ARCH=$2 ;;
esac
HAVE_IMAGE=0
if [ -f build/image.sh ]; then
    # shellcheck disable=SC1091 # optional, written separately
    . ./build/image.sh
    HAVE_IMAGE=1
fi

usage() {
    sed -n '3,18s/^# \{0,1\}//p' "$0" >&2
}

need_image() {
    if [ "$HAVE_IMAGE" != 1 ]; then
        echo "build: error: build/image.sh is missing; cannot build '$1'" >&2
        exit 1
    fi
}

main() {
    target=${1:-all}
    case $target in
        all)
            daemon_build
            if [ "$HAVE_IMAGE" = 1 ]; then
                image_rootfs
                image_build
            else
                echo "build: build/image.sh not present; built the daemon only" >&2
            fi
            ;;
        daemon) daemon_build ;;
        unit) daemon_unit ;;
        asan) daemon_asan ;;
        arm64) daemon_arm64 ;;
        fuzz) daemon_fuzz ;;
        rootfs)
            need_image rootfs
            image_arch_daemon
            image_rootfs
            ;;
        image)
            need_image image
            image_arch_daemon
            image_rootfs
            image_build
            ;;
        demo)
            need_image demo
            image_engine_ensure
            daemon_build
            image_rootfs
            image_build
            image_demo
            ;;
        -h|--help|help) usage ;;
        *)
            usage
            echo "build: error: unknown target '$target'" >&2
            exit 2
            ;;
    esac
}

main "$@"
