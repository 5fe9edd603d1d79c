# shellcheck shell=sh
# shellcheck disable=SC2034,SC2153 # IMAGE_OUT comes from build/image.sh, which reads the variables set here
# build/image-arch.sh: the image's architecture. Sourced by build/image.sh
# (POSIX sh, set -eu); sets variables and defines functions only.
#
# IMAGE_ARCH is Debian's name for the image's architecture: this machine's
# (dpkg --print-architecture) unless the caller sets it (`./build.sh image
# arm64`, IMAGE_ARCH=arm64, or the Dockerfile's TARGETARCH). For this machine's
# architecture nothing changes: the installed s6, execline and busybox-static
# and ldd. For another one ("foreign"; arm64 on an amd64 machine is the one
# supported) no code of that architecture runs during the build:
#   - the daemon is the cross-built out/arm64/tgfront (daemon_arm64);
#   - s6, execline, busybox-static, libc6 and the libraries they depend on
#     come from the machine's own apt sources as arm64 packages
#     (dpkg --add-architecture arm64; apt-get download checks them against
#     the signed lists) and are unpacked with dpkg-deb under
#     out/cache/ARCH/, not installed;
#   - Caddy is Debian testing's package for that architecture (build/image.sh);
#   - each binary's libraries are found from its ELF NEEDED entries and
#     program interpreter (readelf reads any architecture) instead of ldd,
#     which would run the loader;
#   - busybox's applet list comes from this machine's busybox-static, which
#     must be the same Debian version (same configuration).
# Foreign results are named apart: out/rootfs-ARCH/, tag tgfront:ARCH, and
# ./build.sh image also writes out/tgfront-ARCH.tar.gz (for docker/podman
# load on the ARM machine).

IMAGE_HOST_ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)
IMAGE_ARCH=${IMAGE_ARCH:-$IMAGE_HOST_ARCH}
if [ "$IMAGE_ARCH" = "$IMAGE_HOST_ARCH" ]; then
    IMAGE_DAEMON=$IMAGE_OUT/musl/tgfront
    IMAGE_ROOT=${IMAGE_ROOT:-$IMAGE_OUT/rootfs}
    IMAGE_TAG=${IMAGE_TAG:-tgfront:latest}
else
    IMAGE_DAEMON=$IMAGE_OUT/$IMAGE_ARCH/tgfront
    IMAGE_ROOT=${IMAGE_ROOT:-$IMAGE_OUT/rootfs-$IMAGE_ARCH}
    IMAGE_TAG=${IMAGE_TAG:-tgfront:$IMAGE_ARCH}
fi
IMAGE_ARCH_STAGE=$IMAGE_OUT/cache/$IMAGE_ARCH
# The foreign packages the image takes binaries from; their dependencies are
# added by apt-cache depends.
IMAGE_ARCH_PKGS="s6 execline busybox-static libc6"

image_arch_is_host() {
    [ "$IMAGE_ARCH" = "$IMAGE_HOST_ARCH" ]
}

# Sets IMAGE_ARCH_TRIPLET (Debian's multiarch library directory) and
# IMAGE_ARCH_MACHINE (readelf's name for the machine); dies for any
# architecture the image is not built for.
image_arch_check() {
    case $IMAGE_ARCH in
        amd64) IMAGE_ARCH_TRIPLET=x86_64-linux-gnu IMAGE_ARCH_MACHINE="Advanced Micro Devices X86-64" ;;
        arm64) IMAGE_ARCH_TRIPLET=aarch64-linux-gnu IMAGE_ARCH_MACHINE=AArch64 ;;
        *) image_die "unsupported image architecture '$IMAGE_ARCH' (amd64 or arm64)" ;;
    esac
    image_arch_is_host || [ "$IMAGE_ARCH" = arm64 ] ||
        image_die "an $IMAGE_ARCH image can only be built on an $IMAGE_ARCH machine (the cross build is for arm64)"
}

# Builds the daemon the image takes (build.sh's rootfs and image targets;
# needs build/daemon.sh): the native static build, or the aarch64 cross
# build without its unit tests and without qemu.
image_arch_daemon() {
    image_arch_check
    if image_arch_is_host; then
        daemon_build
    else
        # shellcheck disable=SC2034 # read by build/daemon.sh
        DAEMON_ARM64_QEMU=0
        daemon_arm64 all
    fi
}

# The cross toolchain, for the Dockerfile's cached prerequisites layer.
image_arch_daemon_prereqs() {
    image_arch_check
    image_arch_is_host && return 0
    # shellcheck disable=SC2034 # read by build/daemon.sh
    DAEMON_ARM64_QEMU=0
    daemon_arm64_prereqs
}

# --- foreign packages --------------------------------------------------------

image_arch_multiarch() {
    dpkg --print-foreign-architectures | grep -qx "$IMAGE_ARCH" && return 0
    [ "$(id -u)" = 0 ] || image_die "'dpkg --add-architecture $IMAGE_ARCH' needs root"
    image_say "dpkg --add-architecture $IMAGE_ARCH (for Debian's $IMAGE_ARCH packages)"
    dpkg --add-architecture "$IMAGE_ARCH" || image_die "dpkg --add-architecture $IMAGE_ARCH failed"
    apt-get update >/dev/null || image_die "apt-get update failed after adding $IMAGE_ARCH"
}

# Package names (with :ARCH) of IMAGE_ARCH_PKGS and everything they depend on.
image_arch_closure() {
    set --
    for p in $IMAGE_ARCH_PKGS; do
        set -- "$@" "$p:$IMAGE_ARCH"
    done
    apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances "$@" 2>/dev/null |
        awk '/^[a-z0-9]/ { n = $1; if (n !~ /:/) n = n ":'"$IMAGE_ARCH"'"; print n }' | sort -u
}

# Fetches and unpacks the closure: out/cache/ARCH/pkg/NAME/ per package and
# out/cache/ARCH/root/ with all of them (where libraries are looked up).
# Reused while the versions in out/cache/ARCH/stamp are the candidates.
image_arch_fetch() {
    if ! apt-cache show "s6:$IMAGE_ARCH" >/dev/null 2>&1; then
        apt-get update >/dev/null || image_die "apt-get update failed"
    fi
    want=
    for p in $(image_arch_closure); do
        v=$(apt-cache policy "$p" | sed -n 's/^  Candidate: //p')
        case $v in ''|'(none)') image_die "apt has no candidate for $p" ;; esac
        want="$want $p=$v"
    done
    [ -n "$want" ] || image_die "apt-cache depends found nothing for $IMAGE_ARCH_PKGS ($IMAGE_ARCH)"
    stage=$IMAGE_ARCH_STAGE
    if [ -d "$stage/root" ] && [ "$(cat "$stage/stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    image_say "fetching Debian's $IMAGE_ARCH packages:$want"
    rm -rf "$stage"
    mkdir -p "$stage/debs" "$stage/pkg" "$stage/root"
    # shellcheck disable=SC2086 # one word per package
    (cd "$stage/debs" && apt-get download $want >"../download.log" 2>&1) ||
        { cat "$stage/download.log" >&2; image_die "apt-get download of the $IMAGE_ARCH packages failed"; }
    for deb in "$stage"/debs/*.deb; do
        name=$(dpkg-deb -f "$deb" Package) || image_die "cannot read $deb"
        dpkg-deb -x "$deb" "$stage/pkg/$name" || image_die "cannot unpack $deb"
        dpkg-deb -x "$deb" "$stage/root" || image_die "cannot unpack $deb"
    done
    echo "$want" >"$stage/stamp"
}

image_arch_pkg_version() {
    sed -n "s/.* $1:$IMAGE_ARCH=\([^ ]*\).*/\1/p" "$IMAGE_ARCH_STAGE/stamp"
}

# This machine's tools (readelf, dpkg-deb, its busybox-static for the applet
# list, CA certificates) and the foreign packages.
image_arch_prereqs() {
    image_is_debian_like || image_die "an $IMAGE_ARCH image needs Debian's apt and dpkg"
    missing=
    for p in busybox-static ca-certificates libcap2-bin; do
        dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
    done
    command -v readelf >/dev/null 2>&1 || missing="$missing binutils"
    command -v file >/dev/null 2>&1 || missing="$missing file"
    # shellcheck disable=SC2086 # one word per package
    [ -z "$missing" ] || { image_say "installing$missing"; image_apt_install $missing; }
    image_arch_multiarch
    image_arch_fetch
}

# --- ELF files without running them -----------------------------------------

# Prints "interp:PATH" and "needed:SONAME" words for an ELF file.
image_arch_elf_deps() {
    LC_ALL=C readelf -lW "$1" 2>/dev/null |
        sed -n 's/.*Requesting program interpreter: \([^]]*\)\].*/interp:\1/p'
    LC_ALL=C readelf -dW "$1" 2>/dev/null |
        sed -n 's/.*(NEEDED).*Shared library: \[\([^]]*\)\].*/needed:\1/p'
}

# image_arch_realpath ROOT PATH: PATH with its symlinks followed inside ROOT
# (an absolute link target means ROOT/target, not this machine's file).
image_arch_realpath() {
    r=$1 p=$2 n=0
    while [ -L "$r$p" ]; do
        t=$(readlink "$r$p")
        case $t in
            /*) p=$t ;;
            *) p=$(dirname "$p")/$t ;;
        esac
        n=$((n + 1))
        [ $n -lt 20 ] || image_die "symlink loop at $r$p"
    done
    echo "$p"
}

# image_arch_find_lib ROOT SONAME: the library's path in the image (the
# loader's default directories, as Debian's glibc searches them).
image_arch_find_lib() {
    for d in "/lib/$IMAGE_ARCH_TRIPLET" "/usr/lib/$IMAGE_ARCH_TRIPLET" /lib /usr/lib; do
        if [ -e "$1$d/$2" ]; then
            echo "$d/$2"
            return 0
        fi
    done
    return 1
}

# image_arch_install_elf SRC DEST ROOT: build/image.sh's image_install_elf for
# a foreign binary: copies SRC to ROOT/DEST, then its interpreter and every
# library it needs, transitively, from the unpacked packages.
image_arch_install_elf() {
    src=$1 dest=$2 root=$3
    stage=$IMAGE_ARCH_STAGE/root
    mkdir -p "$root/$(dirname "$dest")"
    cp -L "$src" "$root/$dest"
    set -- "$root/$dest"
    while [ $# -gt 0 ]; do
        f=$1
        shift
        for dep in $(image_arch_elf_deps "$f"); do
            case $dep in
                interp:*) p=${dep#interp:} ;;
                needed:*)
                    p=$(image_arch_find_lib "$stage" "${dep#needed:}") ||
                        image_die "$src needs ${dep#needed:}, which no unpacked $IMAGE_ARCH package has"
                    ;;
            esac
            [ -e "$root$p" ] && continue
            real=$(image_arch_realpath "$stage" "$p")
            [ -f "$stage$real" ] || image_die "$src needs $p, missing from the $IMAGE_ARCH packages"
            # The file at its real path and the name as a (relative) link to it, as
            # the package has it: the loader reached as the interpreter and
            # as libc's NEEDED entry is then one file.
            mkdir -p "$root$(dirname "$p")" "$root$(dirname "$real")"
            if [ ! -e "$root$real" ]; then
                cp "$stage$real" "$root$real"
                set -- "$@" "$root$real"
            fi
            [ "$real" = "$p" ] || ln -sr "$root$real" "$root$p"
        done
    done
}

# build/image.sh's image_add_skaware for the foreign packages.
image_arch_add_skaware() {
    root=$1
    pkg=$IMAGE_ARCH_STAGE/pkg
    for b in "$pkg"/s6/usr/bin/*; do
        [ -f "$b" ] && image_arch_install_elf "$b" "/usr/bin/${b##*/}" "$root"
    done
    for b in "$pkg"/execline/usr/lib/execline/bin/*; do
        [ -f "$b" ] && image_arch_install_elf "$b" "/usr/lib/execline/bin/${b##*/}" "$root"
    done
    # The package's /usr/bin/execlineb wrapper script, as for this machine.
    cp "$pkg/execline/usr/bin/execlineb" "$root/usr/bin/execlineb"
}

# busybox-static from the foreign package; the applet links from this
# machine's busybox-static, which must be the same Debian version (a binNMU
# suffix +bN aside): the same configuration has the same applets.
image_arch_add_busybox() {
    root=$1
    ours=$(dpkg-query -W -f '${Version}' busybox-static 2>/dev/null || true)
    theirs=$(image_arch_pkg_version busybox-static)
    [ "${ours%+b[0-9]*}" = "${theirs%+b[0-9]*}" ] ||
        image_die "the applet list comes from this machine's busybox-static ($ours), but the $IMAGE_ARCH package is $theirs: update one of them"
    mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin"
    cp "$IMAGE_ARCH_STAGE/pkg/busybox-static/bin/busybox" "$root/bin/busybox"
    /bin/busybox --list-full | while read -r path; do
        [ -e "$root/$path" ] || [ -L "$root/$path" ] || ln -s /bin/busybox "$root/$path"
    done
}

# build/image.sh's image_check_root for a foreign root: every ELF file is for
# IMAGE_ARCH, finds its interpreter and libraries in the root, and
# /usr/bin/tgfront and /bin/busybox are static.
image_arch_check_root() {
    root=$1
    n=0
    # shellcheck disable=SC2044 # the root's paths have no blanks; a pipe
    # into while would lose n and image_die's exit.
    for f in $(find "$root" -type f); do
        machine=$(LC_ALL=C readelf -hW "$f" 2>/dev/null | sed -n 's/^ *Machine: *//p')
        [ -n "$machine" ] || continue
        n=$((n + 1))
        [ "$machine" = "$IMAGE_ARCH_MACHINE" ] || image_die "${f#"$root"} is for $machine, not $IMAGE_ARCH"
        for dep in $(image_arch_elf_deps "$f"); do
            case $dep in
                interp:*) [ -e "$root${dep#interp:}" ] || image_die "${f#"$root"}: interpreter ${dep#interp:} missing from the image root" ;;
                needed:*) image_arch_find_lib "$root" "${dep#needed:}" >/dev/null ||
                    image_die "${f#"$root"} needs ${dep#needed:}, missing from the image root" ;;
            esac
        done
    done
    for f in /usr/bin/tgfront /bin/busybox; do
        [ -z "$(image_arch_elf_deps "$root$f")" ] || image_die "$f is not statically linked"
    done
    image_say "$n ELF files in $root, all $IMAGE_ARCH_MACHINE, none missing a library"
}

# --- build options and the archive --------------------------------------------

# Options for `ENGINE build`: the target platform when foreign, and the build
# platform, which podman 4 does not set itself (the Dockerfile's builder stage
# is FROM --platform=$BUILDPLATFORM; BuildKit sets the same value).
image_arch_build_opts() {
    echo "--build-arg BUILDPLATFORM=linux/$IMAGE_HOST_ARCH"
    image_arch_is_host || echo "--platform linux/$IMAGE_ARCH"
}

# A foreign image is for another machine: out/tgfront-ARCH.tar.gz (a
# docker-archive, gzipped) for `docker load -i` or `gunzip -c | podman load`
# there (podman 4.3's load does not read gzip). IMAGE_SAVE=0 skips it,
# IMAGE_SAVE=1 writes one for this machine's architecture too.
image_arch_save() {
    if image_arch_is_host; then
        [ "${IMAGE_SAVE:-0}" = 1 ] || return 0
    else
        [ "${IMAGE_SAVE:-1}" = 1 ] || return 0
    fi
    archive=$IMAGE_OUT/tgfront-$IMAGE_ARCH.tar.gz
    $ENGINE save "$IMAGE_TAG" | gzip -c >"$archive.tmp" || image_die "$ENGINE save $IMAGE_TAG failed"
    mv "$archive.tmp" "$archive"
    image_say "saved $IMAGE_TAG to $archive ($(wc -c <"$archive" | tr -d ' ') bytes; load it with docker load -i, or gunzip -c | podman load)"
}
