# tests/lib.sh: what the suites' run.sh scripts share. Sourced (POSIX sh)
# after `here` is set to the suite's folder.
#   tgf_paths              root, python (PYTHON), bin (TGFRONT_BIN, absolute)
#   tgf_apt_install WHO P… installs Debian packages (apt-get update on a miss)
#   tgf_need_pytest WHO    python3-pytest and python3-cryptography
#   tgf_need_bin WHO       the daemon binary exists, or a clear exit 2
#   tgf_has_path ARGS…     true when an argument names a file or folder
#                          (options alone must still run the suite's own folder)
#   tgf_netns_up PREFIX    a fresh namespace PREFIX-PID-RANDOM with only loopback
#                          up, in $ns, deleted on exit
#   tgf_pytest_in_netns [VAR=value…] -- ARGS…
#                          pytest -q ARGS inside $ns with TGFRONT_BIN set;
#                          sets status

tgf_paths() {
    root=$(cd "$here/../.." && pwd)
    python=${PYTHON:-/usr/bin/python3}
    bin=${TGFRONT_BIN:-$root/out/musl/tgfront}
    case "$bin" in /*) ;; *) bin=$root/$bin ;; esac
}

tgf_apt_install() {
    who=$1
    shift
    echo "$who: installing $*" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >&2 || {
        apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >&2
    } || {
        echo "$who: cannot install $*" >&2
        exit 2
    }
}

tgf_need_pytest() {
    missing=""
    "$python" -c 'import pytest' 2>/dev/null || missing="$missing python3-pytest"
    "$python" -c 'import cryptography' 2>/dev/null || missing="$missing python3-cryptography"
    command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
    # shellcheck disable=SC2086 # a list of package names
    [ -z "$missing" ] || tgf_apt_install "$1" $missing
}

tgf_need_bin() {
    if [ ! -x "$bin" ]; then
        echo "$1: daemon binary $bin not found; build it first (./build.sh daemon) or set TGFRONT_BIN" >&2
        exit 2
    fi
}

tgf_has_path() {
    for a in "$@"; do
        case "$a" in -*) ;; *) [ -e "$a" ] && return 0 ;; esac
    done
    return 1
}

tgf_netns_up() {
    # PID and a random part: PIDs wrap, and a run killed before its trap
    # ran leaves its namespace behind.
    ns="$1-$$-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
    trap 'ip netns delete "$ns" 2>/dev/null || true' EXIT INT TERM
    ip netns add "$ns"
    ip netns exec "$ns" ip link set lo up
}

tgf_pytest_in_netns() {
    envs=""
    while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
        envs="$envs $1"
        shift
    done
    [ "$#" -gt 0 ] && shift
    status=0
    # shellcheck disable=SC2086 # VAR=value words, none with spaces
    ip netns exec "$ns" env TGFRONT_BIN="$bin" PYTHONDONTWRITEBYTECODE=1 $envs \
        "$python" -m pytest -q -p no:cacheprovider --rootdir "$here" "$@" || status=$?
}
