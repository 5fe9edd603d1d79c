#!/bin/sh
# ci/web-smoke.sh: the image's WEB proxy mode (tg://webproxy) through :443.
# Runs the image (docker where it works, else podman; in a loopback-only
# network namespace: podman joins a named one, docker's own namespace with
# --network none is given that name with `ip netns attach`) with
# DOMAIN=tgfront.test, TLS=internal and TG_DATACENTERS at an echoing fake
# DC, reads the tg://webproxy link from the start-up output and runs
# tests/integration/web_image_check.py against :443 with the container's
# CA; then checks that WEB_PROXY=off prints no webproxy link and routes
# nothing to tgfront. Ends with "N passed, N failed".
# Env: IMAGE_TAG (default tgfront:latest; built by ./build.sh image).
set -eu
cd "$(dirname "$0")/.."
. ./build/image.sh

DOMAIN=tgfront.test
# PID and a random part (PIDs wrap; a killed run leaves its names behind).
RUN_ID=$$-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
NS=tgfront-websmoke-$RUN_ID
CTR=tgfront-websmoke-$RUN_ID
WORK=$(mktemp -d /tmp/tgfront-websmoke.XXXXXX)
PY=${PYTHON:-/usr/bin/python3}
PASSED=0
FAILED=0
DC_PID=
ENGINE=${ENGINE:-}

ok() { PASSED=$((PASSED + 1)); printf "ok   - %s\n" "$*"; }
fail() { FAILED=$((FAILED + 1)); printf "FAIL - %s\n" "$*"; }

cleanup() {
    $ENGINE rm -f -v "$CTR" >/dev/null 2>&1 || true
    [ -z "$DC_PID" ] || kill "$DC_PID" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# The fake DC in the namespace (docker: each container's own).
start_dc() {
    [ -z "$DC_PID" ] || kill "$DC_PID" 2>/dev/null || true
    ip netns exec "$NS" "$PY" tests/integration/fakedc.py --port 4430 --mode echo >"$WORK/dc.log" 2>&1 &
    DC_PID=$!
}

start() {
    $ENGINE rm -f -v "$CTR" >/dev/null 2>&1 || true
    if [ "$ENGINE" = podman ]; then
        net="--network ns:/run/netns/$NS"
    else
        net="--network none"
        ip netns del "$NS" 2>/dev/null || true
    fi
    # shellcheck disable=SC2086 # the network option is two words
    $ENGINE run -d --name "$CTR" $net -e DOMAIN=$DOMAIN -e TLS=internal \
        -e TG_DATACENTERS="2=127.0.0.1:4430,3=127.0.0.1:4430,4=127.0.0.1:4430" "$@" \
        "$IMAGE_TAG" >/dev/null
    if [ "$ENGINE" != podman ]; then
        pid=$($ENGINE inspect --format '{{.State.Pid}}' "$CTR")
        ip netns attach "$NS" "$pid" || image_die "cannot name the container's network namespace"
        start_dc
    fi
    # Up to 90 s for the site through :443 (about 1.5 s on a quiet machine;
    # CI's machines are slower and busier), and for the fake DC to listen.
    t0=$(date +%s)
    until ip netns exec "$NS" curl -sk --max-time 2 --resolve "$DOMAIN:443:127.0.0.1" \
            -o /dev/null "https://$DOMAIN/" 2>/dev/null && grep -q '^fakedc listening' "$WORK/dc.log"; do
        if [ $(($(date +%s) - t0)) -ge 90 ]; then
            $ENGINE logs "$CTR" 2>&1 | tail -n 20
            echo "web-smoke: no HTTPS answer through :443, or no fake DC, within 90 s (fake DC: $(head -c 200 "$WORK/dc.log"))"
            return 1
        fi
        sleep 0.1
    done
}

main() {
    image_engine_setup || image_die "web-smoke needs docker or podman"   # podman: ci/containers.conf
    $ENGINE image inspect "$IMAGE_TAG" >/dev/null 2>&1 || image_die "no image $IMAGE_TAG: run ./build.sh image"
    # By its ID from here on: another worktree's build may retag it meanwhile.
    IMAGE_TAG=$($ENGINE image inspect --format '{{.Id}}' "$IMAGE_TAG")
    if [ "$ENGINE" = podman ]; then
        ip netns add "$NS"
        ip netns exec "$NS" ip link set lo up
        start_dc
    fi

    if start; then ok "the image starts with WEB_PROXY on (default)"; else fail "start"; return; fi
    link=$($ENGINE logs "$CTR" 2>&1 | sed -n 's/.*\(tg:\/\/webproxy?[^ ]*\).*/\1/p' | head -n 1)
    tme=$($ENGINE logs "$CTR" 2>&1 | sed -n 's/.*\(https:\/\/t.me\/webproxy?[^ ]*\).*/\1/p' | head -n 1)
    secret=$(printf '%s' "$link" | sed -n 's/.*secret=\(dd[0-9a-f]\{32\}\).*/\1/p')
    if [ -n "$secret" ] && [ "$link" = "tg://webproxy?server=$DOMAIN&secret=$secret" ] &&
        [ "$tme" = "https://t.me/webproxy?server=$DOMAIN&secret=$secret" ]; then
        ok "start-up output has $link and its t.me form"
    else
        fail "no webproxy links in the start-up output ('$link', '$tme')"
        return
    fi
    $ENGINE cp "$CTR:/data/caddy/pki/authorities/local/root.crt" "$WORK/root.crt"
    if ip netns exec "$NS" "$PY" tests/integration/web_image_check.py 127.0.0.1:443 "$DOMAIN" \
            "$secret" "$WORK/root.crt" >"$WORK/check.out" 2>&1; then
        ok "web_image_check through :443: $(tail -n 1 "$WORK/check.out")"
    else
        fail "web_image_check through :443:"
        sed 's/^/     /' "$WORK/check.out"
    fi

    $ENGINE rm -f -v "$CTR" >/dev/null 2>&1
    if start -e WEB_PROXY=off; then ok "the image starts with WEB_PROXY=off"; else fail "start off"; return; fi
    if $ENGINE logs "$CTR" 2>&1 | grep -q "webproxy"; then
        fail "WEB_PROXY=off still prints a webproxy link"
    else
        ok "WEB_PROXY=off prints no webproxy link"
    fi
    if $ENGINE exec "$CTR" grep -q tgfront_bridge /run/caddy/Caddyfile; then
        fail "WEB_PROXY=off still routes the bridge to tgfront"
    else
        ok "WEB_PROXY=off: Caddy routes nothing to tgfront"
    fi
}

main
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
