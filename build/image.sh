# build/image.sh: steps that assemble the appliance image. Sourced by build.sh
# and by ci/*.sh (POSIX sh, set -eu); defines functions only. Every function
# assumes the current directory is the project root and reports its own
# failure (one line on stderr) before exiting non-zero.
#
# Entry points (the build.sh contract):
#   image_rootfs   assembles out/rootfs/: rootfs/ from the tree, out/musl/tgfront,
#                  Debian's s6 + execline binaries and exactly the shared
#                  libraries they link, busybox (static) with its applet links,
#                  Caddy (>= 2.7, Debian testing's binary package, fetched with a
#                  private apt configuration and apt's signature checks; the
#                  system's apt setup is not changed) with the libraries it
#                  links, CA certificates, config-templates/.
#                  Needs out/musl/tgfront (build.sh runs daemon_build first).
#                  IMAGE_ARCH=arm64 on an amd64 machine: the same from Debian's
#                  arm64 packages and out/arm64/tgfront, into out/rootfs-arm64/
#                  (build/image-arch.sh).
#   image_build    builds the container image from ./Dockerfile (tag
#                  $IMAGE_TAG, default tgfront:latest) with docker when
#                  `docker info` works, else podman (ci/containers.conf). Makes
#                  the Debian builder base image first when it is missing
#                  (image_base). Skipped with a note when neither engine exists.
#
# Helpers the ci/ scripts reuse: image_engine_setup (sets ENGINE), image_base,
# image_debian_mirror, image_die, image_say.
#
# Caches (reused by repeated runs): out/cache/caddy-apt/ (apt lists for
# testing), out/cache/caddy_*.deb and out/cache/caddy/ (unpacked); for another
# architecture out/cache/caddy-apt-ARCH/, out/cache/caddy-ARCH/, out/cache/ARCH/.

IMAGE_BASE=${IMAGE_BASE:-tgfront-builder-base:bookworm}
IMAGE_OUT=${IMAGE_OUT:-out}
IMAGE_CACHE=$IMAGE_OUT/cache
IMAGE_CADDY_MIN=2.7
# IMAGE_ARCH, IMAGE_DAEMON, IMAGE_ROOT, IMAGE_TAG (default tgfront:latest, or
# tgfront:ARCH for another architecture) and the image_arch_* functions.
. ./build/image-arch.sh
if image_arch_is_host; then
    IMAGE_CADDY_DIR=$IMAGE_CACHE/caddy IMAGE_CADDY_APT=$IMAGE_CACHE/caddy-apt
else
    IMAGE_CADDY_DIR=$IMAGE_CACHE/caddy-$IMAGE_ARCH IMAGE_CADDY_APT=$IMAGE_CACHE/caddy-apt-$IMAGE_ARCH
fi

image_die() {
    echo "image: error: $*" >&2
    exit 1
}

image_say() {
    echo "image: $*" >&2
}

# --- prerequisites -----------------------------------------------------------

image_is_debian_like() {
    [ -r /etc/debian_version ] && command -v apt-get >/dev/null 2>&1
}

# apt-get install, running apt-get update only when the first try fails.
image_apt_install() {
    image_is_debian_like || image_die "need the Debian packages: $* (this is not a Debian/Ubuntu system: install s6, execline, busybox (static), CA certificates and dpkg-deb yourself)"
    [ "$(id -u)" = 0 ] || image_die "installing $* needs root (run as root or install them yourself)"
    if DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1; then
        return 0
    fi
    image_say "apt-get install $* failed; running apt-get update and retrying"
    apt-get update >/dev/null || image_die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null ||
        image_die "apt-get install $* failed"
}

image_prereqs() {
    image_arch_is_host || { image_arch_prereqs; return 0; }
    missing=
    for p in s6 execline busybox-static ca-certificates libcap2-bin; do
        dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
    done
    command -v ldd >/dev/null 2>&1 || missing="$missing libc-bin"
    [ -z "$missing" ] || { image_say "installing$missing"; image_apt_install $missing; }
    [ -x /bin/busybox ] || image_die "/bin/busybox missing after installing busybox-static"
    file_out=$(LC_ALL=C ldd /bin/busybox 2>&1 || true)
    case $file_out in
        *"not a dynamic executable"*|*"statically linked"*) ;;
        *) image_die "/bin/busybox is not static (install busybox-static, not busybox)" ;;
    esac
}

# Prints the URI of the Debian archive this machine's apt uses for its own
# release (one-line and deb822 sources), so nothing here names a host.
image_debian_mirror() {
    codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
    [ -n "$codename" ] || codename=bookworm
    {
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [ -r "$f" ] || continue
            awk -v suite="$codename" '
                $1 == "deb" {
                    i = 2
                    if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                    if ($(i + 1) == suite) { print $i; exit }
                }' "$f"
        done
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -r "$f" ] || continue
            awk -v suite="$codename" '
                BEGIN { RS = ""; FS = "\n" }
                {
                    types = ""; uri = ""; suites = ""; enabled = "yes"
                    for (n = 1; n <= NF; n++) {
                        line = $n
                        if (line ~ /^#/) continue
                        key = line; sub(/:.*/, "", key); val = line; sub(/^[^:]*:[ \t]*/, "", val)
                        key = tolower(key)
                        if (key == "types") types = val
                        else if (key == "uris") uri = val
                        else if (key == "suites") suites = val
                        else if (key == "enabled") enabled = tolower(val)
                    }
                    if (enabled == "no" || (" " types " ") !~ / deb /) next
                    split(suites, s, /[ \t]+/)
                    for (k in s) if (s[k] == suite) { split(uri, u, /[ \t]+/); print u[1]; exit }
                }' "$f"
        done
    } | head -n 1
}

# --- Caddy from Debian testing -------------------------------------------------

# apt options that keep every file of the testing download under DIR.
image_caddy_apt_opts() {
    dir=$1
    echo "-o Dir::Etc::sourcelist=$dir/sources.list -o Dir::Etc::sourceparts=-" \
        "-o Dir::State::Lists=$dir/lists -o Dir::Cache=$dir/cache" \
        "-o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=" \
        "-o Acquire::Languages=none -o APT::Sandbox::User=root" \
        "-o APT::Architecture=$IMAGE_ARCH -o APT::Architectures=$IMAGE_ARCH"
}

# Version check: "2.11.4-1" >= IMAGE_CADDY_MIN.
image_caddy_version_ok() {
    dpkg --compare-versions "$1" ge "$IMAGE_CADDY_MIN"
}

image_caddy_fetch() {
    have=$(ls "$IMAGE_CACHE"/caddy_*_"$IMAGE_ARCH".deb 2>/dev/null | tail -n 1 || true)
    if [ -n "$have" ] && [ -x "$IMAGE_CADDY_DIR/usr/bin/caddy" ]; then
        return 0
    fi
    command -v dpkg-deb >/dev/null 2>&1 || image_die "dpkg-deb is needed to unpack Caddy"
    mirror=$(image_debian_mirror)
    [ -n "$mirror" ] || image_die "cannot find a Debian mirror in /etc/apt sources; Caddy >= $IMAGE_CADDY_MIN comes from Debian testing's binary package"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    [ -r "$keyring" ] || image_apt_install debian-archive-keyring
    dir=$(pwd)/$IMAGE_CADDY_APT
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    echo "deb [signed-by=$keyring] $mirror testing main" >"$dir/sources.list"
    opts=$(image_caddy_apt_opts "$dir")
    image_say "fetching caddy ($IMAGE_ARCH) from Debian testing ($mirror)"
    # shellcheck disable=SC2086 # opts is a list of words by design
    apt-get $opts update >"$dir/update.log" 2>&1 ||
        { cat "$dir/update.log" >&2; image_die "apt-get update for Debian testing failed"; }
    # shellcheck disable=SC2086
    ver=$(apt-cache $opts show --no-all-versions caddy 2>/dev/null | sed -n 's/^Version: //p' | head -n 1)
    [ -n "$ver" ] || image_die "Debian testing has no caddy package"
    image_caddy_version_ok "$ver" || image_die "Debian testing's caddy is $ver; need >= $IMAGE_CADDY_MIN"
    # shellcheck disable=SC2086
    (cd "$IMAGE_CACHE" && apt-get $opts download "caddy=$ver" >"$dir/download.log" 2>&1) ||
        { cat "$dir/download.log" >&2; image_die "apt-get download caddy=$ver failed"; }
    deb=$(ls "$IMAGE_CACHE"/caddy_*_"$IMAGE_ARCH".deb | tail -n 1)
    rm -rf "$IMAGE_CADDY_DIR"
    dpkg-deb -x "$deb" "$IMAGE_CADDY_DIR" || image_die "cannot unpack $deb"
    [ -x "$IMAGE_CADDY_DIR/usr/bin/caddy" ] || image_die "$deb has no usr/bin/caddy"
    image_say "caddy $ver unpacked"
}

# --- rootfs assembly -------------------------------------------------------------

# Copies SRC to ROOT/DEST and every shared library ldd lists for it (at the
# same absolute paths, symlinks resolved).
image_install_elf() {
    image_arch_is_host || { image_arch_install_elf "$@"; return 0; }
    src=$1 dest=$2 root=$3
    mkdir -p "$root/$(dirname "$dest")"
    cp -L "$src" "$root/$dest"
    LC_ALL=C ldd "$src" 2>/dev/null | awk '
        $2 == "=>" && $3 ~ /^\// { print $3; next }
        $1 ~ /^\// { print $1 }' | while read -r lib; do
        [ -e "$root/$lib" ] && continue
        mkdir -p "$root/$(dirname "$lib")"
        cp -L "$lib" "$root/$lib"
    done
}

image_add_skaware() {
    image_arch_is_host || { image_arch_add_skaware "$@"; return 0; }
    root=$1
    for b in $(dpkg -L s6 | grep '^/usr/bin/'); do
        [ -f "$b" ] && image_install_elf "$b" "$b" "$root"
    done
    for b in $(dpkg -L execline | grep '^/usr/lib/execline/bin/'); do
        [ -f "$b" ] && image_install_elf "$b" "$b" "$root"
    done
    # Debian's /usr/bin/execlineb is a wrapper script; the run scripts use
    # /usr/lib/execline/bin/execlineb directly, so keep the wrapper too.
    cp /usr/bin/execlineb "$root/usr/bin/execlineb"
}

# busybox (static) and a link for each applet that no other binary provides.
image_add_busybox() {
    image_arch_is_host || { image_arch_add_busybox "$@"; return 0; }
    root=$1
    mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin"
    cp /bin/busybox "$root/bin/busybox"
    /bin/busybox --list-full | while read -r path; do
        [ -e "$root/$path" ] || [ -L "$root/$path" ] || ln -s /bin/busybox "$root/$path"
    done
}

image_add_caddy() {
    root=$1
    image_install_elf "$IMAGE_CADDY_DIR/usr/bin/caddy" /usr/bin/caddy "$root"
    # Caddy runs as the caddy user; this one capability lets it bind the
    # public HTTP port in the host's network namespace (--network host).
    setcap cap_net_bind_service=+ep "$root/usr/bin/caddy" || image_die "setcap on caddy failed"
    [ -r "$IMAGE_CADDY_DIR/usr/share/doc/caddy/copyright" ] &&
        mkdir -p "$root/usr/share/doc/caddy" &&
        cp "$IMAGE_CADDY_DIR/usr/share/doc/caddy/copyright" "$root/usr/share/doc/caddy/"
    # Go's resolver order; Caddy's file_server content types.
    [ -r /etc/mime.types ] && cp /etc/mime.types "$root/etc/mime.types"
    return 0
}

image_add_certs() {
    root=$1
    [ -r /etc/ssl/certs/ca-certificates.crt ] || image_die "/etc/ssl/certs/ca-certificates.crt missing (install ca-certificates)"
    mkdir -p "$root/etc/ssl/certs"
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
}

# Checks the assembled root: every dynamic binary finds its libraries there.
image_check_root() {
    image_arch_is_host || { image_arch_check_root "$@"; return 0; }
    root=$1
    for b in "$root/usr/bin/caddy" "$root/usr/bin/s6-svscan" "$root/usr/lib/execline/bin/fdmove"; do
        LC_ALL=C ldd "$b" | awk '$2 == "=>" { print $3 } $1 ~ /^\// { print $1 }' | while read -r lib; do
            [ -e "$root/$lib" ] || image_die "$b needs $lib, missing from the image root"
        done
    done
    file_out=$(LC_ALL=C ldd "$root/usr/bin/tgfront" 2>&1 || true)
    case $file_out in
        *"not a dynamic executable"*|*"statically linked"*) ;;
        *) image_die "out/musl/tgfront is not statically linked" ;;
    esac
}

image_rootfs() {
    image_arch_check
    [ -x "$IMAGE_DAEMON" ] || image_die "$IMAGE_DAEMON missing (run ./build.sh rootfs $IMAGE_ARCH)"
    image_prereqs
    mkdir -p "$IMAGE_CACHE"
    image_caddy_fetch
    tmp=$IMAGE_ROOT.tmp
    rm -rf "$tmp"
    mkdir -p "$tmp"
    # The tree's rootfs/ (init, services, site, passwd/group), then binaries.
    cp -a rootfs/. "$tmp/"
    mkdir -p "$tmp/etc/tgfront" "$tmp/data" "$tmp/run" "$tmp/tmp" "$tmp/proc" "$tmp/sys" "$tmp/dev"
    chmod 1777 "$tmp/tmp"
    cp config-templates/tgfront.toml.tmpl config-templates/Caddyfile.tmpl "$tmp/etc/tgfront/"
    install -m 0755 "$IMAGE_DAEMON" "$tmp/usr/bin/tgfront" 2>/dev/null ||
        { mkdir -p "$tmp/usr/bin"; install -m 0755 "$IMAGE_DAEMON" "$tmp/usr/bin/tgfront"; }
    mkdir -p "$tmp/usr/share/doc/tgfront"
    install -m 0644 LICENSE "$tmp/usr/share/doc/tgfront/LICENSE"
    image_add_skaware "$tmp"
    image_add_busybox "$tmp"
    image_add_caddy "$tmp"
    image_add_certs "$tmp"
    chmod 0755 "$tmp/init"
    # A new named volume starts as a copy of /data: Caddy's part is the
    # caddy user's already (no CHOWN capability needed at first start).
    mkdir -p "$tmp/data/caddy"
    chown 102:102 "$tmp/data/caddy"
    image_check_root "$tmp"
    rm -rf "$IMAGE_ROOT"
    mv "$tmp" "$IMAGE_ROOT"
    image_say "rootfs ready: $IMAGE_ROOT ($(du -sh "$IMAGE_ROOT" | cut -f1))"
}

# --- container engine and image ----------------------------------------------

# Sets ENGINE to "docker" when a Docker engine answers, else "podman" with
# the CI settings (runc, cgroupfs, no default ulimits) unless the caller
# chose its own CONTAINERS_CONF. ENGINE may be preset by the caller.
image_engine_setup() {
    if [ -z "${ENGINE:-}" ]; then
        if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
            ENGINE=docker
        elif command -v podman >/dev/null 2>&1; then
            ENGINE=podman
        else
            ENGINE=
            return 1
        fi
    fi
    if [ "$ENGINE" = podman ] && [ -z "${CONTAINERS_CONF:-}" ]; then
        conf=$(pwd)/ci/containers.conf
        if [ -r "$conf" ]; then
            CONTAINERS_CONF=$conf
            export CONTAINERS_CONF
        fi
    fi
    export ENGINE
    return 0
}

# The host's date checks for its mirror (a frozen snapshot mirror needs
# Check-Valid-Until "false"), so apt in the builder accepts what the host's
# apt accepts. Only these two options are carried over.
image_base_apt_conf() {
    echo "// Carried over from the build host's apt configuration by build/image.sh."
    apt-config dump 2>/dev/null | grep -E '^Acquire::Check-(Valid-Until|Date) ' || true
}

# Creates $IMAGE_BASE (the Dockerfile's builder base) with debootstrap from
# this machine's apt mirror when the engine does not have it yet.
image_base() {
    if $ENGINE image inspect "$IMAGE_BASE" >/dev/null 2>&1; then
        return 0
    fi
    command -v debootstrap >/dev/null 2>&1 || image_apt_install debootstrap
    mirror=$(image_debian_mirror)
    [ -n "$mirror" ] || image_die "cannot find a Debian mirror in /etc/apt sources (need a 'deb URI bookworm main' entry) to make $IMAGE_BASE"
    dir=$(mktemp -d /tmp/tgfront-base.XXXXXX)
    image_say "making $IMAGE_BASE: debootstrap --variant=minbase bookworm from $mirror"
    if ! debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$dir.log" 2>&1; then
        tail -n 20 "$dir.log" >&2
        rm -rf "$dir"
        image_die "debootstrap failed (log: $dir.log)"
    fi
    rm -f "$dir.log"
    image_base_apt_conf >"$dir/etc/apt/apt.conf.d/99tgfront-host-mirror"
    rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb
    if ! tar -C "$dir" -c . | $ENGINE import - "$IMAGE_BASE" >/dev/null; then
        rm -rf "$dir"
        image_die "$ENGINE import of $IMAGE_BASE failed"
    fi
    rm -rf "$dir"
    image_say "created $IMAGE_BASE"
}

image_build() {
    if ! image_engine_setup; then
        image_say "neither a working docker nor podman found: skipping the image (rootfs is in $IMAGE_ROOT)"
        return 0
    fi
    image_arch_check
    image_base
    rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    image_say "building $IMAGE_TAG ($IMAGE_ARCH) with $ENGINE from Dockerfile (builder base $IMAGE_BASE)"
    ver=$(sed -n 's/^#define TGFRONT_VERSION "\(.*\)"$/\1/p' src/cli.h)
    # The source label: the clone's origin, without any user:password@.
    src=$(git config --get remote.origin.url 2>/dev/null | sed 's#//[^@/]*@#//#' || true)
    # shellcheck disable=SC2046 # a list of options
    set -- build --build-arg "BASE=$IMAGE_BASE" --build-arg "REVISION=$rev" \
        --build-arg "VERSION=${ver:-unknown}" --build-arg "SOURCE=${src:-unknown}" -t "$IMAGE_TAG" $(image_arch_build_opts)
    if [ "$ENGINE" = podman ]; then
        # host network: apt inside the builder uses this machine's mirror;
        # docker format keeps HEALTHCHECK; --pull=never: no registry here.
        set -- "$@" --network host --pull=never --format docker
    else
        set -- "$@" --network host
    fi
    $ENGINE "$@" . || image_die "$ENGINE build failed"
    image_say "image $IMAGE_TAG built"
    image_arch_save
}

# image_engine_ensure: installs podman and runc (Debian) when neither a
# working docker nor podman is there, so the image can be built and run.
image_engine_ensure() {
    if ! { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }; then
        missing=
        command -v podman >/dev/null 2>&1 || missing="$missing podman"
        command -v runc >/dev/null 2>&1 || missing="$missing runc"
        [ -z "$missing" ] || image_apt_install $missing
    fi
    image_engine_setup || image_die "neither a working docker nor podman"
}

# image_demo: runs the appliance in the foreground on this machine's ports 80
# and 443 with the embedded default DOMAIN=localhost and Caddy's internal CA
# (no ACME, nothing leaves the machine but Telegram traffic). /init prints
# the proxy links; Ctrl-C stops it. DEMO_DOMAIN overrides the hostname.
image_demo() {
    image_engine_ensure
    $ENGINE image inspect "$IMAGE_TAG" >/dev/null 2>&1 || image_build
    image_say "running $IMAGE_TAG on ports 80 and 443 as DOMAIN=${DEMO_DOMAIN:-localhost} (Ctrl-C stops it)"
    tty=
    [ -t 0 ] && tty=-it
    # shellcheck disable=SC2086 # $tty is empty or one flag
    exec $ENGINE run --rm $tty --name tgfront-demo --network host \
        -e DOMAIN="${DEMO_DOMAIN:-localhost}" -e TLS=internal \
        -v tgfront-demo-data:/data "$IMAGE_TAG"
}
