#!/bin/sh
# ci/binfmt.sh ARCH: lets this machine run ARCH programs, so that containers
# of an ARCH image run under emulation (ci/smoke.sh with IMAGE_ARCH=arm64).
# Registers Debian's qemu-user-static interpreter with binfmt_misc using the
# package's own rule (/usr/lib/binfmt.d/), whose F flag makes the kernel open
# the interpreter now: a container's root has no qemu of its own. Mounts
# binfmt_misc first when it is not mounted. Does nothing for this machine's
# architecture or when the rule is registered already. Needs root; the
# registration lasts until reboot, as systemd-binfmt would make it.
set -eu

arch=${1:?usage: ci/binfmt.sh ARCH}
[ "$arch" != "$(dpkg --print-architecture)" ] || exit 0
case $arch in
    arm64) name=qemu-aarch64 ;;
    *) echo "binfmt: error: no qemu-user rule for $arch" >&2; exit 2 ;;
esac
dir=/proc/sys/fs/binfmt_misc
rule=/usr/lib/binfmt.d/$name.conf
[ -r "$rule" ] || { echo "binfmt: error: $rule missing (install qemu-user-static)" >&2; exit 1; }
if [ ! -e "$dir/register" ]; then
    mount -t binfmt_misc binfmt_misc "$dir" ||
        { echo "binfmt: error: cannot mount binfmt_misc on $dir" >&2; exit 1; }
fi
if [ -e "$dir/$name" ]; then
    if grep -qx enabled "$dir/$name" && grep -q '^flags:.*F' "$dir/$name"; then
        echo "binfmt: $name already registered ($(sed -n 's/^interpreter //p' "$dir/$name"))"
        exit 0
    fi
    # Someone else's rule (disabled, or without F): not ours to replace.
    echo "binfmt: error: $dir/$name exists but is disabled or lacks the F flag; containers cannot use it:" >&2
    cat "$dir/$name" >&2
    exit 1
fi
cat "$rule" >"$dir/register" || { echo "binfmt: error: registering $rule failed" >&2; exit 1; }
echo "binfmt: registered $name from $rule"
