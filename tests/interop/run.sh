#!/bin/sh
# Interop: mtcute (pinned in tests/interop/mtcute/package.json) connects
# through tgfront with an ee-secret using its FakeTLS MTProxy transport; the
# fake DC must receive an intact first MTProto request.  Everything runs in a
# fresh network namespace that has only loopback. The last case fronts to the
# image's Caddy (with the image's GODEBUG), so mtcute gets the answer tgfront
# learned from a real site rather than the default one.
# Env: TGFRONT_BIN (default out/musl/tgfront), PYTHON (default /usr/bin/python3),
#      CADDY_BIN (default: the image's Caddy, fetched as build/image.sh does)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
tgf_paths
mtcute=$here/mtcute
fakedc=$root/tests/integration/fakedc.py

# ---- outside the namespace: dependencies, namespace, re-exec inside
if [ -z "${TGF_INTEROP_INSIDE:-}" ]; then
    tgf_need_bin interop
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        if command -v apt-get >/dev/null 2>&1; then
            tgf_apt_install interop nodejs npm
        else
            echo "interop: node and npm are needed (install Node.js 18 or newer)" >&2
            exit 2
        fi
    fi
    if [ ! -d "$mtcute/node_modules/@mtcute/node" ] || [ "$mtcute/package-lock.json" -nt "$mtcute/node_modules" ]; then
        # --ignore-scripts: the native sqlite addon is not needed (MemoryStorage)
        (cd "$mtcute" && npm ci --ignore-scripts --no-audit --no-fund >&2) || {
            echo "interop: npm ci failed" >&2
            exit 2
        }
    fi
    caddy=${CADDY_BIN:-}
    if [ -z "$caddy" ]; then
        command -v dpkg-deb >/dev/null 2>&1 || tgf_apt_install interop dpkg
        (cd "$root" && . ./build/image.sh && image_caddy_fetch) >&2
        caddy=$root/out/cache/caddy/usr/bin/caddy
    fi
    [ -x "$caddy" ] || { echo "interop: no caddy at $caddy" >&2; exit 2; }
    tgf_netns_up tgf-interop
    status=0
    ip netns exec "$ns" env TGF_INTEROP_INSIDE=1 TGFRONT_BIN="$bin" PYTHON="$python" \
        CADDY_BIN="$caddy" sh "$0" "$@" || status=$?
    exit "$status"
fi

# ---- inside the namespace
work=$(mktemp -d /tmp/tgf-interop.XXXXXX)
pids=""
stop_all() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    pids=""
}
trap 'stop_all; rm -rf "$work"' EXIT INT TERM

passed=0
failed=0
dc_port=4430
proxy_port=4431
front_port=4432
site_http_port=4433
key=$("$python" -c 'import os; print(os.urandom(16).hex())')
host_hex=$(printf '%s' example.com | od -An -tx1 | tr -d ' \n')
secret_hex="ee$key$host_hex"
secret_b64=$("$python" -c 'import base64,sys; print(base64.urlsafe_b64encode(bytes.fromhex(sys.argv[1])).rstrip(b"=").decode())' "$secret_hex")

write_config() {
    cat > "$work/config.toml" <<CFG
secret = "$secret_hex"
bind-to = "127.0.0.1:$proxy_port"
debug = true

[domain-fronting]
host = "127.0.0.1"
port = $front_port

[datacenters]
1 = ["127.0.0.1:$dc_port"]
2 = ["127.0.0.1:$dc_port"]
3 = ["127.0.0.1:$dc_port"]
4 = ["127.0.0.1:$dc_port"]
5 = ["127.0.0.1:$dc_port"]
CFG
}

wait_port() {
    i=0
    while [ $i -lt 100 ]; do
        if "$python" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$1" 2>/dev/null; then
            return 0
        fi
        i=$((i + 1))
        sleep 0.1
    done
    return 1
}

# The image's Caddy on the fronting port, as the site tgfront learns from.
start_site() {
    mkdir -p "$work/caddy"
    cat > "$work/Caddyfile" <<CF
{
	admin off
	persist_config off
	local_certs
	skip_install_trust
	https_port $front_port
	http_port $site_http_port
	auto_https disable_redirects
}
https://example.com {
	bind 127.0.0.1
	respond "site"
}
CF
    godebug=$(sed -n 's|^.*/export GODEBUG \(.*\)$|\1|p' "$root/rootfs/etc/s6/services/caddy/run")
    env HOME="$work/caddy" XDG_DATA_HOME="$work/caddy" XDG_CONFIG_HOME="$work/caddy" \
        GODEBUG="$godebug" "$CADDY_BIN" run --config "$work/Caddyfile" --adapter caddyfile \
        > "$work/caddy.log" 2>&1 &
    pids="$pids $!"
    wait_port "$front_port"
}

# tgfront has learned the site's answer for mtcute's kind of hello.
# Up to 90 s: tgfront learns the site's answer in the background and, while
# the site is not ready (Caddy issues its certificate after it listens),
# retries 2, 4, 8, 16, 32 s apart.
wait_learned() {
    t0=$(date +%s)
    until grep -q 'x25519 hello: the site answers' "$1"; do
        [ $(($(date +%s) - t0)) -lt 90 ] || return 1
        sleep 0.1
    done
}

# one case: $1 = name, $2 = secret text given to mtcute,
# $3 = expect "reach" (default) or "blocked" (negative control: a wrong key
# must never reach the DC; proves the check can fail), $4 = "site": start
# the Caddy site first and wait until tgfront has learned its answer
run_case() {
    name=$1
    expect=${3:-reach}
    [ "${4:-}" != site ] || start_site
    wait_ms=25000
    [ "$expect" = reach ] || wait_ms=4000
    status_file=$work/dc-$name.json
    rm -f "$status_file"
    "$python" "$fakedc" --port "$dc_port" --mode mtproto --status "$status_file" \
        > "$work/fakedc-$name.log" 2>&1 &
    pids="$pids $!"
    "$bin" run "$work/config.toml" > "$work/tgfront-$name.log" 2>&1 &
    tg_pid=$!
    pids="$pids $tg_pid"
    ok=1
    if ! wait_port "$dc_port" || ! wait_port "$proxy_port"; then
        echo "FAIL $name: fake DC or tgfront did not start" >&2
        ok=0
    elif [ "${4:-}" = site ] && ! wait_learned "$work/tgfront-$name.log"; then
        echo "FAIL $name: tgfront did not learn the site's answer within 90 s" >&2
        ok=0
    else
        reached=1
        (cd "$mtcute" && timeout 40 node connect.mjs 127.0.0.1 "$proxy_port" "$2" "$status_file" "$wait_ms") \
            > "$work/node-$name.log" 2>&1 || reached=0
        cat "$work/node-$name.log"
        if [ "$expect" = reach ] && [ "$reached" -ne 1 ]; then
            echo "FAIL $name: mtcute's request did not reach the fake DC intact" >&2
            ok=0
        elif [ "$expect" != reach ] && [ "$reached" -eq 1 ]; then
            echo "FAIL $name: a client with the wrong key reached the DC" >&2
            ok=0
        fi
    fi
    if ! kill -0 "$tg_pid" 2>/dev/null; then
        echo "FAIL $name: tgfront died" >&2
        ok=0
    fi
    kill -TERM "$tg_pid" 2>/dev/null || true
    rc=0
    wait "$tg_pid" || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "FAIL $name: tgfront exit status $rc after SIGTERM" >&2
        ok=0
    fi
    if grep -q -e 'ERROR: AddressSanitizer' -e 'runtime error:' "$work/tgfront-$name.log"; then
        echo "FAIL $name: sanitizer report" >&2
        ok=0
    fi
    stop_all
    if [ "$ok" -eq 1 ]; then
        echo "PASS $name"
        passed=$((passed + 1))
    else
        echo "--- tgfront log ($name) ---" >&2
        tail -n 40 "$work/tgfront-$name.log" >&2
        echo "--- fake DC log ($name) ---" >&2
        tail -n 20 "$work/fakedc-$name.log" >&2
        failed=$((failed + 1))
    fi
}

write_config
run_case mtcute-hex-secret "$secret_hex"
run_case mtcute-base64url-secret "$secret_b64"
wrong_key=$("$python" -c 'import os; print(os.urandom(16).hex())')
run_case mtcute-wrong-key-blocked "ee$wrong_key$host_hex" blocked
run_case mtcute-learned-site-answer "$secret_hex" reach site
grep 'hello: the site answers' "$work/tgfront-mtcute-learned-site-answer.log" || true

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
