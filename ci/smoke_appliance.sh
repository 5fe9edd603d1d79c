# ci/smoke_appliance.sh: the operator's checks of the appliance (issue 11),
# sourced by ci/smoke.sh after its helpers (ok, fail, info, now_ms,
# expect_fail, https_get...). Each part that needs its own ports runs its
# container in a network namespace of its own (loopback only); the slow
# ACME parts run in the background (part_* write their ok/FAIL lines to a
# file that smoke.sh counts).

PEBBLE_DIR_PORT=14000
PEBBLE_MGMT_PORT=15000

# --- helpers -----------------------------------------------------------------------

# netns_new NAME: a loopback-only namespace, with /etc/netns/NAME/hosts so
# that programs in it (pebble) resolve the test domains to loopback.
netns_new() {
    ip netns add "$1" || image_die "cannot create network namespace $1 (needs root)"
    ip -n "$1" link set lo up
    mkdir -p "/etc/netns/$1"
    printf '127.0.0.1 localhost %s %s\n' "$TEST_DOMAIN" "$OTHER_SITE" >"/etc/netns/$1/hosts"
    EXTRA_NS="$EXTRA_NS $1"
}

netns_cleanup() {
    for n in $EXTRA_NS; do
        ip netns del "$n" 2>/dev/null
        rm -rf "/etc/netns/$n"
    done
    for p in $EXTRA_PIDS; do
        kill "$p" 2>/dev/null
    done
    [ ! -s "$WORK/p80.pid" ] || kill "$(cat "$WORK/p80.pid")" 2>/dev/null
    for c in $EXTRA_CTRS; do
        $ENGINE rm -f -v "$c" >/dev/null 2>&1
    done
    for v in $EXTRA_VOLS; do
        $ENGINE volume rm -f "$v" >/dev/null 2>&1
    done
}

# get_in NS URL [CURL ARGS]: curl inside a namespace.
get_in() {
    n=$1 url=$2
    shift 2
    ip netns exec "$n" curl -sS --max-time 5 "$@" "$url"
}

# wait_https NS HOST [CURL ARGS]: up to patient() * 30 s for HTTPS through :443.
wait_https() {
    n=$1 host=$2
    shift 2
    i=0
    while [ $i -lt $(($(patient) * 300)) ]; do
        get_in "$n" "https://$host/" --resolve "$host:443:127.0.0.1" -o /dev/null "$@" 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# secret_of_links TEXT: the first base64url secret in tg:// links.
secret_of_links() {
    printf '%s\n' "$1" | sed -n 's/.*tg:\/\/proxy?[^ ]*secret=\([A-Za-z0-9_=-]*\).*/\1/p' | head -n 1
}

faketls_in() {
    n=$1 s=$2
    shift 2
    ip netns exec "$n" /usr/bin/python3 ci/faketls_check.py --secret "$s" --proxy 127.0.0.1:443 \
        --dc-listen "127.0.0.1:$DC_PORT" "$@" 2>&1
}

# qr_decode FILE: the text of the QR code drawn in FILE (the lines `links`
# prints), rendered to a PGM image (light modules are the blocks) and read
# by zbarimg.
qr_decode() {
    /usr/bin/python3 - "$1" "$WORK/qr.pgm" <<'EOF'
import sys
rows = []
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.rstrip("\n")
    if not line or any(ch not in " \u2580\u2584\u2588" for ch in line):
        continue
    top = [ch in "\u2580\u2588" for ch in line]
    bottom = [ch in "\u2584\u2588" for ch in line]
    rows += [top, bottom]
width = max(len(r) for r in rows)
scale, pad = 6, 8
w, h = (width + 2 * pad) * scale, (len(rows) + 2 * pad) * scale
px = bytearray(b"\xff" * (w * h))
for y, r in enumerate(rows):
    for x in range(width):
        if not (x < len(r) and r[x]):
            for dy in range(scale):
                o = ((y + pad) * scale + dy) * w + (x + pad) * scale
                px[o:o + scale] = b"\x00" * scale
with open(sys.argv[2], "wb") as f:
    f.write(b"P5\n%d %d\n255\n" % (w, h) + bytes(px))
EOF
    zbarimg --raw -q "$WORK/qr.pgm" 2>/dev/null
}

# --- static checks -------------------------------------------------------------------

check_labels() {
    f='{{index .Config.Labels "org.opencontainers.image.version"}}|{{index .Config.Labels "org.opencontainers.image.source"}}|{{index .Config.Labels "org.opencontainers.image.licenses"}}'
    labels=$($ENGINE image inspect --format "$f" "$IMAGE_TAG" 2>/dev/null || true)
    ver=$($ENGINE run --rm --network none --entrypoint /usr/bin/tgfront "$IMAGE_TAG" version 2>/dev/null | cut -d' ' -f2)
    case $labels in
        "$ver|"?*"|"?*) ok "OCI labels: version $ver (= tgfront version), source and licenses set ($labels)" ;;
        *) fail "OCI labels version|source|licenses: '$labels' (tgfront version '$ver')" ;;
    esac
}

# compose.yaml: `docker compose config` where it exists, else a YAML parse
# checking what the README promises (host network, named volume, env_file,
# no init: true).
check_compose() {
    if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
        cp tgfront.env.example "$WORK/tgfront.env"
        if docker compose -f compose.yaml --env-file "$WORK/tgfront.env" config >"$WORK/compose.out" 2>&1; then
            ok "docker compose config accepts compose.yaml"
        else
            fail "docker compose config: $(tail -n 3 "$WORK/compose.out")"
        fi
    fi
    res=$(/usr/bin/python3 - compose.yaml <<'EOF'
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
s = d["services"]["tgfront"]
problems = []
if s.get("network_mode") != "host": problems.append("network_mode is not host")
if s.get("init"): problems.append("init: true")
if "env_file" not in s: problems.append("no env_file")
vols = [v for v in s.get("volumes", []) if str(v).endswith(":/data")]
if not vols: problems.append("no volume at /data")
elif vols[0].split(":")[0] not in (d.get("volumes") or {}): problems.append("the /data volume is not a named volume")
print("; ".join(problems) or "fine: service tgfront, host network, named volume %s at /data, env_file %s" % (vols[0].split(":")[0], s["env_file"]))
EOF
) || res="cannot parse compose.yaml"
    case $res in
        fine*) ok "compose.yaml parses: $res" ;;
        *) fail "compose.yaml: $res" ;;
    esac
}

# --- fail fast -------------------------------------------------------------------------

check_fail_fast_daemon() {
    expect_fail "DIAL_TIMEOUT=2h (only the daemon knows its bound)" \
        "DIAL_TIMEOUT='2h': key 'network.timeout.tcp' must be at most 1h" \
        -e DOMAIN=$TEST_DOMAIN -e TLS=internal -e DIAL_TIMEOUT=2h
    expect_fail "IDLE_TIMEOUT=5 (a bare number)" "IDLE_TIMEOUT='5'" \
        -e DOMAIN=$TEST_DOMAIN -e IDLE_TIMEOUT=5
    expect_fail "ANTI_REPLAY_ERROR_RATE=2" "ANTI_REPLAY_ERROR_RATE='2'" \
        -e DOMAIN=$TEST_DOMAIN -e ANTI_REPLAY_ERROR_RATE=2
    expect_fail "ANTI_REPLAY_MAX_SIZE=100gib" "ANTI_REPLAY_MAX_SIZE='100gib'" \
        -e DOMAIN=$TEST_DOMAIN -e ANTI_REPLAY_MAX_SIZE=100gib
    expect_fail "CONCURRENCY=70000" "CONCURRENCY='70000'" -e DOMAIN=$TEST_DOMAIN -e CONCURRENCY=70000
    expect_fail "PREFER_IP=ipv5" "PREFER_IP='ipv5'" -e DOMAIN=$TEST_DOMAIN -e PREFER_IP=ipv5
    expect_fail "STATS_BIND=localhost:3129" "STATS_BIND='localhost:3129'" \
        -e DOMAIN=$TEST_DOMAIN -e STATS_BIND=localhost:3129
    expect_fail "SECRET_FILE that does not exist" "SECRET_FILE='/nonexistent'" \
        -e DOMAIN=$TEST_DOMAIN -e SECRET_FILE=/nonexistent
    mkdir -p "$WORK/badconf" "$WORK/badsnip/caddy.d"
    printf '# mtg config\n[network.timeout]\nidle = "100h"\n' >"$WORK/badconf/config.toml"
    expect_fail "mounted config.toml with a value out of range" "/config/config.toml:3: key 'network.timeout.idle' must be at most 24h" \
        -e DOMAIN=$TEST_DOMAIN -v "$WORK/badconf:/config:ro"
    printf 'other.test {\n\trespond "x"\n\tno_such_directive\n}\n' >"$WORK/badsnip/caddy.d/broken.caddy"
    expect_fail "broken snippet in /config/caddy.d" "caddy.d: Caddy refuses the snippets" \
        -e DOMAIN=$TEST_DOMAIN -e TLS=internal -v "$WORK/badsnip:/config:ro"
}

# --- hardened run: read-only, capabilities dropped, mounted config, caddy.d ---------

# An mtg config as the two-service setup mounts it: its prometheus keys must
# take effect; its prefer-ip (only-ipv6, which would make the IPv4 fake DC
# unreachable) must lose to PREFER_IP; its secret must lose to SECRET_FILE.
hardened_files() {
    mkdir -p "$WORK/hconf/caddy.d" "$WORK/hsecret"
    file_secret=$($ENGINE run --rm --network none --entrypoint /usr/bin/tgfront "$IMAGE_TAG" generate-secret --hex $TEST_DOMAIN)
    H_SECRET=$($ENGINE run --rm --network none --entrypoint /usr/bin/tgfront "$IMAGE_TAG" generate-secret --hex $TEST_DOMAIN)
    cat >"$WORK/hconf/config.toml" <<EOF
# mtg-config.toml from the two-service setup
secret = "$file_secret"
bind-to = "[::]:443"
prefer-ip = "only-ipv6"

[domain-fronting]
host = "127.0.0.1"
port = 8443
proxy-protocol = true

[stats.prometheus]
enabled = true
bind-to = "127.0.0.1:3129"
EOF
    cat >"$WORK/hconf/caddy.d/other.caddy" <<EOF
# A second site on the same :443
$OTHER_SITE {
	respond "other site from caddy.d" 200
}
EOF
    printf '%s\n' "$H_SECRET" >"$WORK/hsecret/tgfront"
    chmod 0644 "$WORK/hsecret/tgfront"
}

check_hardened() {
    HNS=tgfront-smoke-h-$RUN_ID
    HCTR=tgfront-smoke-h-$RUN_ID
    netns_new "$HNS"
    hardened_files
    EXTRA_CTRS="$EXTRA_CTRS $HCTR"
    EXTRA_VOLS="$EXTRA_VOLS $HCTR"
    if ! $ENGINE run -d --name "$HCTR" --network "ns:/run/netns/$HNS" \
        --read-only --tmpfs /run:exec --tmpfs /tmp \
        --cap-drop ALL --cap-add NET_BIND_SERVICE --cap-add SETUID --cap-add SETGID \
        -v "$HCTR:/data" -v "$WORK/hconf:/config:ro" -v "$WORK/hsecret:/secrets:ro" \
        -e DOMAIN=$TEST_DOMAIN -e TLS=internal -e TG_DATACENTERS="2=127.0.0.1:$DC_PORT" \
        -e SECRET_FILE=/secrets/tgfront -e LINKS_IN_LOG=off -e PREFER_IP=prefer-ipv4 \
        "$IMAGE_TAG" >/dev/null 2>"$WORK/h.err"; then
        fail "read-only, cap-drop container starts: $(cat "$WORK/h.err")"
        return 0
    fi
    what="--read-only --tmpfs /run:exec --tmpfs /tmp --cap-drop ALL --cap-add NET_BIND_SERVICE,SETUID,SETGID"
    if wait_https "$HNS" "$TEST_DOMAIN" -k; then
        code=$(get_in "$HNS" "https://$TEST_DOMAIN/" --resolve "$TEST_DOMAIN:443:127.0.0.1" -k -o /dev/null -w '%{http_code}' || true)
        [ "$code" = 200 ] && ok "$what: the site answers 200 through :443" || fail "$what: site answered '$code'"
    else
        $ENGINE logs "$HCTR" 2>&1 | tail -n 15
        fail "$what: no HTTPS answer within $(($(patient) * 30)) s"
        return 0
    fi
    out=$(faketls_in "$HNS" "$H_SECRET") && ok "$what: FakeTLS client with SECRET_FILE's secret reaches the fake DC (PREFER_IP=prefer-ipv4 overrides the file's only-ipv6): $out" ||
        fail "$what: FakeTLS client with SECRET_FILE's secret: $out"
    metrics=$(get_in "$HNS" "http://127.0.0.1:3129/" 2>&1 || true)
    case $metrics in
        *mtg_*) ok "mounted /config/config.toml: its [stats.prometheus] serves metrics on 127.0.0.1:3129 ($(printf '%s\n' "$metrics" | grep -c '^mtg_') mtg_ lines)" ;;
        *) fail "mounted config's [stats.prometheus]: $(printf '%s' "$metrics" | head -c 200)" ;;
    esac
    body=$(get_in "$HNS" "https://$OTHER_SITE/" --resolve "$OTHER_SITE:443:127.0.0.1" -k 2>&1 || true)
    [ "$body" = "other site from caddy.d" ] && ok "caddy.d site $OTHER_SITE answers through :443 ('$body')" ||
        fail "caddy.d site $OTHER_SITE through :443: '$body'"
    logs=$($ENGINE logs "$HCTR" 2>&1)
    key=$(printf '%s' "$H_SECRET" | cut -c3-34)
    if printf '%s' "$logs" | grep -q 'tg://' || printf '%s' "$logs" | grep -q "$key"; then
        fail "LINKS_IN_LOG=off: the log holds a link or the secret"
    else
        ok "LINKS_IN_LOG=off: no link and no secret in the log ($(printf '%s\n' "$logs" | grep -c 'links are not logged') notice line)"
    fi
    $ENGINE exec "$HCTR" links >"$WORK/links.out" 2>&1 || true
    tg=$(grep -m1 '^tg://' "$WORK/links.out" || true)
    s=$(secret_of_links "$tg")
    out=$(faketls_in "$HNS" "$s") && ok "exec links prints the links again; its tg:// secret works: $out" ||
        fail "exec links: '$tg': $out"
    decoded=$(qr_decode "$WORK/links.out" || true)
    if [ -n "$tg" ] && [ "$decoded" = "$tg" ]; then
        ok "the QR code printed by links decodes (zbarimg) to the tg:// link"
    else
        fail "QR code decodes to '$decoded', want '$tg'"
    fi
    ids=$($ENGINE exec "$HCTR" sh -c 'for n in caddy tgfront; do p=$(pidof $n); printf "%s=%s/%s " $n $(sed -n "s/^Uid:[[:space:]]*\([0-9]*\).*/\1/p" /proc/$p/status) $(sed -n "s/^CapEff:[[:space:]]*//p" /proc/$p/status); done' 2>&1)
    case $ids in
        *caddy=102/0000000000000400*tgfront=100/0000000000000000*) ok "caddy runs as uid 102 with only CAP_NET_BIND_SERVICE, tgfront as uid 100 with none ($ids)" ;;
        *) fail "process users and capabilities: $ids" ;;
    esac
    printf '%s\n' "$logs" | grep -q 'WARNING: /data' && fail "named volume at /data got the volume warning" ||
        ok "a named volume at /data gets no volume warning"
}

# The operator's first look: a fresh container's log has the versions line
# and no shell error from the image's scripts.
check_clean_log() {
    logs=$($ENGINE logs "$CTR" 2>&1 | grep -v '^time=')
    noise=$(printf '%s\n' "$logs" | grep -E ": line [0-9]+:|can't |: not found|[Pp]ermission denied" | head -n 3)
    versions=$(printf '%s\n' "$logs" | grep -m1 '^init: tgfront .*, caddy ' || true)
    if [ -z "$noise" ] && [ -n "$versions" ]; then
        ok "start-up log: '$versions', no shell errors"
    else
        fail "start-up log: versions line '$versions'; noise: $noise"
    fi
}

# --- Caddy's failures are the site's ------------------------------------------------------

# Caddy killed again and again in the main container while a Telegram relay
# is held open: the relay never breaks, the container keeps running, the
# healthcheck says unhealthy while Caddy is down, and the restart pause grows.
# The pause state starts fresh here: check_restarts killed Caddy already,
# and whether that kill still counts depends on how long ago it was (a
# minute resets it), that is on the machine's speed.
check_caddy_kills() {
    s=$(link_secrets "$CTR" | head -n 1)
    $ENGINE exec "$CTR" rm -f /run/caddy/backoff
    n0=$(caddy_pauses "$CTR" | wc -l)
    faketls_in "$NS" "$s" --hold 12 >"$WORK/hold.out" 2>&1 &
    hold=$!
    sleep 0.5
    kills=0 unhealthy=0
    limit=$(($(patient) * 30))
    t0=$(now_ms)
    while [ $(($(now_ms) - t0)) -lt $((limit * 1000)) ] && [ $kills -lt 3 ]; do
        pid=$($ENGINE exec "$CTR" pidof caddy 2>/dev/null || true)
        if [ -n "$pid" ]; then
            # The kill, the wait for Caddy to be gone and the healthcheck in
            # one exec: an exec takes a second or more on a busy machine,
            # and the first pause is 1 s.
            # shellcheck disable=SC2016 # the script runs in the container
            h=$($ENGINE exec "$CTR" sh -c 'kill -KILL "$1" || exit 0
                while kill -0 "$1" 2>/dev/null; do sleep 0.05; done
                /usr/lib/tgfront/healthcheck >/dev/null 2>&1 && echo healthy || echo unhealthy' sh "$pid" 2>&1 || true)
            case $h in   # (the engine may add lines of its own)
                *unhealthy*) kills=$((kills + 1)) unhealthy=$((unhealthy + 1)) ;;
                *healthy*) kills=$((kills + 1)) ;;
            esac
        fi
        sleep 0.1
    done
    wait "$hold" && rc=0 || rc=$?
    running=$($ENGINE inspect --format '{{.State.Running}}' "$CTR")
    # The pauses of these kills (caddy-finish logs each after the exit).
    eventually "$limit" caddy_pauses_since "$CTR" "$n0" "$kills" || true
    pauses=$(caddy_pauses "$CTR" | tail -n +$((n0 + 1)) | tr '\n' ' ')
    if [ "$rc" = 0 ] && [ "$running" = true ] && [ "$kills" -ge 3 ] && [ "$unhealthy" = "$kills" ]; then
        ok "caddy killed $kills times during a held Telegram relay: relay intact ($(cat "$WORK/hold.out")), container running, unhealthy after each kill, restart pauses: $pauses s"
    else
        fail "caddy kills (up to 3 within $limit s): $kills kills, relay rc $rc ($(cat "$WORK/hold.out")), running $running, unhealthy $unhealthy, pauses '$pauses'"
    fi
    case $pauses in
        "1 2 4"*) ok "Caddy's restart pause grows (1, 2, 4 s ...)" ;;
        *) fail "Caddy's restart pauses: '$pauses' (want 1 2 4 ...)" ;;
    esac
    # One more kill: the stop that follows (check_persistence) meets Caddy
    # in its restart pause, made 60 s long so that a stop that waited for
    # it could not pass: the state says the last pause was 30 s, just now.
    # shellcheck disable=SC2016 # the script runs in the container
    $ENGINE exec "$CTR" sh -c 'echo "30 $(date +%s)" >/run/caddy/backoff'
    n1=$(caddy_pauses "$CTR" | wc -l)
    t0=$(now_ms)
    while [ $(($(now_ms) - t0)) -lt $((limit * 1000)) ]; do
        pid=$($ENGINE exec "$CTR" pidof caddy 2>/dev/null || true)
        [ -z "$pid" ] || { $ENGINE exec "$CTR" kill -KILL $pid; break; }
        sleep 0.2
    done
    # The pause begins as caddy-finish logs it (pidof does not see its
    # sleep under qemu-user, so that is not what this waits for).
    eventually "$limit" caddy_pauses_since "$CTR" "$n1" 1 || true
}

# caddy_pauses CONTAINER: the restart pauses caddy-finish logged, one a line.
caddy_pauses() {
    $ENGINE logs "$1" 2>&1 | sed -n 's/.*restarting in \([0-9]*\) s.*/\1/p'
}

# caddy_pauses_since CONTAINER N K: at least K pauses after the first N.
caddy_pauses_since() {
    [ "$(caddy_pauses "$1" | wc -l)" -ge $(($2 + $3)) ]
}

# Port 80 taken before the container starts, and no volume: Caddy cannot
# bind, is restarted with a pause, and the Telegram proxy serves meanwhile;
# the anonymous volume is warned about.
part_port80_taken() {
    PNS=tgfront-smoke-p-$RUN_ID
    PCTR=tgfront-smoke-p-$RUN_ID
    # The holder says when it listens (Python's start takes a while on a
    # busy machine: a container started before would get :80); it ends with
    # this script (netns_cleanup) or after 900 s.
    ip netns exec "$PNS" /usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", 80)); s.listen(5)
open(sys.argv[1], "w").write("listening\n")
time.sleep(900)' "$WORK/p80.ready" &
    echo $! >"$WORK/p80.pid"
    eventually $(($(patient) * 10)) grep -q listening "$WORK/p80.ready" 2>/dev/null ||
        { echo "FAIL - port 80 taken: the holder of :80 did not listen within $(($(patient) * 10)) s"; return 0; }
    $ENGINE run -d --name "$PCTR" --network "ns:/run/netns/$PNS" -e DOMAIN=$TEST_DOMAIN -e TLS=internal \
        -e TG_DATACENTERS="2=127.0.0.1:$DC_PORT" "$IMAGE_TAG" >/dev/null 2>&1 ||
        { echo "FAIL - port 80 taken: container does not start"; return 0; }
    i=0
    while [ $i -lt $(($(patient) * 100)) ] && ! $ENGINE logs "$PCTR" 2>&1 | grep -q 'restarting in 4 s'; do
        sleep 0.2
        i=$((i + 1))
    done
    s=$($ENGINE logs "$PCTR" 2>&1 | sed -n 's/.*tg:\/\/proxy?[^ ]*secret=\([A-Za-z0-9_=-]*\).*/\1/p' | head -n 1)
    out=$(faketls_in "$PNS" "$s") && rc=0 || rc=$?
    running=$($ENGINE inspect --format '{{.State.Running}}' "$PCTR")
    health=$($ENGINE exec "$PCTR" /usr/lib/tgfront/healthcheck 2>&1) && hrc=0 || hrc=$?
    bind_err=$($ENGINE logs "$PCTR" 2>&1 | grep -c 'address already in use' || true)
    if [ "$rc" = 0 ] && [ "$running" = true ] && [ "$hrc" != 0 ] && [ "$bind_err" -ge 2 ]; then
        echo "ok   - port 80 taken: Caddy failed to bind $bind_err times and is restarted with a pause; container running, healthcheck unhealthy ($health), Telegram proxy serves: $out"
    else
        echo "FAIL - port 80 taken: faketls rc $rc ($out), running $running, health rc $hrc, bind errors $bind_err"
        $ENGINE logs "$PCTR" 2>&1 | tail -n 8 | sed 's/^/     /'
    fi
    if $ENGINE logs "$PCTR" 2>&1 | grep -q 'WARNING: /data is an anonymous volume'; then
        echo "ok   - no -v for /data: the start-up log warns about the anonymous volume"
    else
        echo "FAIL - no volume warning for an anonymous /data: $($ENGINE logs "$PCTR" 2>&1 | grep -m1 WARNING)"
    fi
    kill "$(cat "$WORK/p80.pid")" 2>/dev/null
}

# TLS=acme towards a CA that is not there: Caddy's ports answer, but there
# is no certificate, and the healthcheck says so.
part_no_certificate() {
    NCTR=tgfront-smoke-n-$RUN_ID
    # podman can leave the image's VOLUME unmounted: /data is then no volume.
    novol=
    [ "$ENGINE" != podman ] || novol="--image-volume ignore"
    # shellcheck disable=SC2086 # empty or two words
    $ENGINE run -d --name "$NCTR" --network none $novol -e DOMAIN=$TEST_DOMAIN -e TLS=acme \
        -e ACME_CA=https://127.0.0.1:9/dir "$IMAGE_TAG" >/dev/null 2>&1 ||
        { echo "FAIL - no certificate: container does not start"; return 0; }
    i=0 out=
    while [ $i -lt $(($(patient) * 100)) ]; do
        out=$($ENGINE exec "$NCTR" /usr/lib/tgfront/healthcheck 2>&1) && rc=0 || rc=$?
        case $out in *"no certificate"*) break ;; esac
        sleep 0.2
        i=$((i + 1))
    done
    if [ "$rc" != 0 ] && case $out in *"no certificate"*) true ;; *) false ;; esac; then
        echo "ok   - TLS=acme with no reachable CA: ports answer, healthcheck unhealthy: $out"
    else
        echo "FAIL - healthcheck without a certificate: rc $rc '$out'"
    fi
    [ -n "$novol" ] || return 0
    if $ENGINE logs "$NCTR" 2>&1 | grep -q 'WARNING: /data is not a volume'; then
        echo "ok   - /data not a volume (podman --image-volume ignore): the start-up log warns"
    else
        echo "FAIL - no warning for a /data that is not a volume"
    fi
}

# --- ACME with pebble, offline ------------------------------------------------------------

# pebble_start NS DIR TLSPORT: pebble (Let's Encrypt's test server) in NS, on
# loopback, validating for real (no always-valid switch, no random sleep),
# its listener certificate self-made in DIR/cert.pem.
pebble_start() {
    n=$1 dir=$2 tls_port=$3
    mkdir -p "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=pebble \
        -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$dir/key.pem" -out "$dir/cert.pem" \
        >/dev/null 2>&1 || return 1
    chmod 0644 "$dir/key.pem" "$dir/cert.pem"
    cat >"$dir/pebble.json" <<EOF
{"pebble": {"listenAddress": "127.0.0.1:$PEBBLE_DIR_PORT", "managementListenAddress": "127.0.0.1:$PEBBLE_MGMT_PORT",
  "certificate": "$dir/cert.pem", "privateKey": "$dir/key.pem", "httpPort": 80, "tlsPort": $tls_port,
  "ocspResponderURL": "", "externalAccountBindingRequired": false}}
EOF
    ip netns exec "$n" env PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 pebble -config "$dir/pebble.json" \
        >"$dir/pebble.log" 2>&1 &
    echo $! >"$dir/pebble.pid"
    i=0
    while [ $i -lt $(($(patient) * 50)) ]; do
        get_in "$n" "https://127.0.0.1:$PEBBLE_DIR_PORT/dir" --cacert "$dir/cert.pem" -o /dev/null 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# part_acme NAME CHALLENGE TLSPORT [ENV...]: a certificate from pebble for
# DOMAIN, Caddy answering the CHALLENGE (its log), then HTTPS through :443
# verified against pebble's root. TLSPORT is where pebble checks TLS-ALPN-01.
part_acme() {
    name=$1 challenge=$2 tls_port=$3
    shift 3
    n=tgfront-smoke-$name-$RUN_ID
    c=tgfront-smoke-$name-$RUN_ID
    dir=$WORK/pebble-$name
    pebble_start "$n" "$dir" "$tls_port" || { echo "FAIL - $name: pebble does not start: $(tail -n 3 "$dir/pebble.log" 2>/dev/null)"; return 0; }
    t0=$(now_ms)
    $ENGINE run -d --name "$c" --network "ns:/run/netns/$n" -v "$dir:/pebble:ro" \
        -e DOMAIN=$TEST_DOMAIN -e TLS=acme -e EMAIL=smoke@example.org \
        -e ACME_CA="https://127.0.0.1:$PEBBLE_DIR_PORT/dir" -e ACME_CA_ROOT=/pebble/cert.pem \
        -e TG_DATACENTERS="2=127.0.0.1:$DC_PORT" "$@" "$IMAGE_TAG" >/dev/null 2>&1 ||
        { echo "FAIL - $name: container does not start"; kill "$(cat "$dir/pebble.pid")"; return 0; }
    i=0 hrc=1
    while [ $i -lt $(($(patient) * 120)) ]; do
        $ENGINE exec "$c" /usr/lib/tgfront/healthcheck >/dev/null 2>&1 && { hrc=0; break; }
        sleep 0.5
        i=$((i + 1))
    done
    dt=$(( $(now_ms) - t0 ))
    get_in "$n" "https://127.0.0.1:$PEBBLE_MGMT_PORT/roots/0" --cacert "$dir/cert.pem" >"$dir/root.pem" 2>/dev/null || true
    code=$(get_in "$n" "https://$TEST_DOMAIN/" --resolve "$TEST_DOMAIN:443:127.0.0.1" --cacert "$dir/root.pem" \
        -o /dev/null -w '%{http_code}' 2>"$dir/curl.err" || true)
    validated=$($ENGINE logs "$c" 2>&1 | grep 'served key authentication' | grep -c "\"challenge\":\"$challenge\"" || true)
    if [ "$hrc" = 0 ] && [ "$code" = 200 ] && [ "$validated" -gt 0 ]; then
        echo "ok   - $name: pebble validated $challenge ($validated answers by Caddy) and issued a certificate in $dt ms (healthy); https://$TEST_DOMAIN through :443 verifies against pebble's root (200)"
    else
        echo "FAIL - $name: healthy rc $hrc after $dt ms, HTTPS '$code' $(cat "$dir/curl.err"), Caddy's $challenge answers: $validated"
        $ENGINE logs "$c" 2>&1 | grep -i 'error\|challenge' | tail -n 5 | sed 's/^/     /'
        tail -n 5 "$dir/pebble.log" | sed 's/^/     /'
    fi
    kill "$(cat "$dir/pebble.pid")" 2>/dev/null
}

# Port 80: pebble's TLS-ALPN-01 check goes to a port nothing listens on, so
# only HTTP-01 on :80 can succeed.
part_acme_http01() {
    part_acme acme80 http-01 5001
}

# HTTP_PORT=off: nothing on :80, the certificate by TLS-ALPN-01 through
# tgfront's relay on :443.
part_acme_tlsalpn() {
    part_acme acme443 tls-alpn-01 443 -e HTTP_PORT=off
    n=tgfront-smoke-acme443-$RUN_ID
    if get_in "$n" "http://$TEST_DOMAIN/" --resolve "$TEST_DOMAIN:80:127.0.0.1" -o /dev/null 2>/dev/null; then
        echo "FAIL - HTTP_PORT=off: something answers on :80"
    else
        echo "ok   - HTTP_PORT=off: nothing listens on :80"
    fi
}

# Migration from the two-service setup (../shared/reference's seed): the
# old stack's caddy_data volume (root-owned, as caddy:alpine leaves it) at
# /data, its mtg-config.toml at /config/config.toml, its www at /srv.
part_migration() {
    MNS=tgfront-smoke-m-$RUN_ID
    MCTR=tgfront-smoke-m-$RUN_ID
    vol=tgfront-smoke-m-${RUN_ID}_caddy_data
    seed=$WORK/seed
    mkdir -p "$seed/www"
    secret=$($ENGINE run --rm --network none --entrypoint /usr/bin/tgfront "$IMAGE_TAG" generate-secret --hex $TEST_DOMAIN)
    cat >"$seed/mtg-config.toml" <<EOF
secret = "$secret"

# mtg owns host :443 directly.  [::] binds both IPv4 and IPv6.
bind-to = "[::]:443"

[domain-fronting]
host = "127.0.0.1"
port = 8443
proxy-protocol = true

[defense.anti-replay]
enabled = true
max-size = "1mib"
error-rate = 0.001
EOF
    echo '<h1>Migrated site</h1>' >"$seed/www/index.html"
    chmod -R a+rX "$seed"
    # The old volume, written by root as caddy:alpine does (mounted away
    # from /data, so the engine does not copy the image's /data into it).
    $ENGINE volume create "$vol" >/dev/null
    $ENGINE run --rm --network none -v "$vol:/mnt" --entrypoint /bin/sh "$IMAGE_TAG" -c \
        'mkdir -p /mnt/caddy/acme/old-ca/users && echo "{}" >/mnt/caddy/acme/old-ca/users/account.json && echo old >/mnt/caddy/instance.uuid' ||
        { echo "FAIL - migration: cannot prepare the old volume"; return 0; }
    $ENGINE run -d --name "$MCTR" --network "ns:/run/netns/$MNS" -v "$vol:/data" \
        -v "$seed/mtg-config.toml:/config/config.toml:ro" -v "$seed/www:/srv:ro" \
        -e DOMAIN=$TEST_DOMAIN -e TLS=internal -e TG_DATACENTERS="2=127.0.0.1:$DC_PORT" \
        "$IMAGE_TAG" >/dev/null 2>&1 || { echo "FAIL - migration: container does not start"; return 0; }
    wait_https "$MNS" "$TEST_DOMAIN" -k || { echo "FAIL - migration: no HTTPS answer"; $ENGINE logs "$MCTR" 2>&1 | tail -n 5; return 0; }
    body=$(get_in "$MNS" "https://$TEST_DOMAIN/" --resolve "$TEST_DOMAIN:443:127.0.0.1" -k 2>&1 || true)
    logs=$($ENGINE logs "$MCTR" 2>&1)
    hexlink=$(printf '%s\n' "$logs" | grep -o "tg://proxy?[^ ]*secret=ee[0-9a-f]*[^ ]*" | head -n 1)
    out=$(faketls_in "$MNS" "$secret") && rc=0 || rc=$?
    owner=$($ENGINE exec "$MCTR" stat -c %U /data/caddy/acme/old-ca/users/account.json 2>&1)
    if [ "$body" = '<h1>Migrated site</h1>' ] && [ "$rc" = 0 ] && [ "$owner" = caddy ] &&
        case $hexlink in *"secret=$secret&"*) true ;; *) false ;; esac &&
        printf '%s\n' "$logs" | grep -q 'secret from /config/config.toml'; then
        echo "ok   - migration from the two-service setup: the old caddy_data volume at /data (given to caddy: $owner), mtg-config.toml's secret in the links and serving ($out), www at /srv served"
    else
        echo "FAIL - migration: body '$body', faketls rc $rc ($out), old file owner '$owner', link '$hexlink'"
        printf '%s\n' "$logs" | grep '^init' | head -n 4 | sed 's/^/     /'
    fi
}

# start_parts: the independent parts in the background, each in its own
# namespace; wait_parts collects their lines.
start_parts() {
    PARTS=
    for p in port80_taken no_certificate acme_http01 acme_tlsalpn migration; do
        case $p in
            migration) netns_new "tgfront-smoke-m-$RUN_ID"; EXTRA_CTRS="$EXTRA_CTRS tgfront-smoke-m-$RUN_ID"
                EXTRA_VOLS="$EXTRA_VOLS tgfront-smoke-m-${RUN_ID}_caddy_data" ;;
            port80_taken) netns_new "tgfront-smoke-p-$RUN_ID"; EXTRA_CTRS="$EXTRA_CTRS tgfront-smoke-p-$RUN_ID" ;;
            no_certificate) EXTRA_CTRS="$EXTRA_CTRS tgfront-smoke-n-$RUN_ID" ;;
            acme_http01) netns_new "tgfront-smoke-acme80-$RUN_ID"; EXTRA_CTRS="$EXTRA_CTRS tgfront-smoke-acme80-$RUN_ID" ;;
            acme_tlsalpn) netns_new "tgfront-smoke-acme443-$RUN_ID"; EXTRA_CTRS="$EXTRA_CTRS tgfront-smoke-acme443-$RUN_ID" ;;
        esac
        "part_$p" >"$WORK/part-$p.out" 2>&1 &
        EXTRA_PIDS="$EXTRA_PIDS $!"
        PARTS="$PARTS $p:$!"
    done
}

wait_parts() {
    for pp in $PARTS; do
        wait "${pp#*:}" || true
        while IFS= read -r line; do
            case $line in
                "ok   - "*) ok "${line#ok   - }" ;;
                "FAIL - "*) fail "${line#FAIL - }" ;;
                *) printf '%s\n' "$line" ;;
            esac
        done <"$WORK/part-${pp%%:*}.out"
    done
}
