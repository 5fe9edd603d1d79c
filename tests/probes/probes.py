"""The probes: what an active prober sends, run once against the stock Caddy
and once against tgfront fronting the same site.

Each probe is a function (target, ctx) -> Obs. `target` has the port and
the site's log; `ctx` is what the probe's prepare step made (shared by both
runs, e.g. the captured hello a replay sends). The same bytes go to both.
Random payloads come from a seeded generator (PROBE_SEED) so a run can be
repeated.
"""

import hashlib
import hmac
import os
import random
import socket
import ssl
import struct
import threading
import time

import observe
import stack
import tgclient
from observe import Conn, Obs, TLSSession

QUICK = 2.0     # watch window of a quick probe (s after connect)
LONG = 95.0     # longer than Caddy's own 60 s handshake/read-header timeout
SEED = os.environ.get("PROBE_SEED", "tgfront-probes")
DOMAIN = stack.DOMAIN
UA = b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def rnd(name, n):
    return random.Random("%s/%s" % (SEED, name)).randbytes(n)


class Target:
    def __init__(self, name, port, site_log, st):
        self.name = name          # "caddy" or "tgfront"
        self.port = port
        self.site_log = site_log  # the log of the Caddy that serves this path
        self.stack = st


class Probe:
    def __init__(self, name, fn, group="quick", prepare=None, judge=None, tg_only=False,
                 needs_tgfront=False):
        self.name = name
        # the verdict needs tgfront's own answer (skipped by PROBE_NULL)
        self.needs_tgfront = needs_tgfront or tg_only
        self.fn = fn
        self.group = group        # quick / long (parallel) / bulk (alone)
        self.prepare = prepare
        self.judge = judge
        self.tg_only = tg_only


# ------------------------------------------------------------------ building blocks

def script(target, steps, watch=QUICK, then=None):
    """Connects, runs steps ((op, arg) pairs), watches until `watch` s after
    connect or the end, and returns the observation."""
    c = Conn(target.port)
    try:
        for op, arg in steps:
            if op == "send":
                if not c.send(arg):
                    break
            elif op == "drip":
                data, gap = arg
                if not c.drip(data, gap, watch):
                    break
            elif op == "sleep":
                c.pump(arg)
            elif op == "shut_wr":
                c.shut_wr()
            elif op == "rst_after_first":
                # wait for the site's first bytes, then reset
                deadline = time.monotonic() + QUICK
                while c.t_first is None and c.end is None and time.monotonic() < deadline:
                    c.read_some(deadline - time.monotonic())
                c.pump(0.1)
                o = c.obs()
                c.reset()
                return o
        c.watch(watch)
        if then:
            then(c)
        return c.obs()
    finally:
        c.close()


def sender(data, watch=QUICK):
    return lambda t, ctx: script(t, [("send", data)], watch)


def dripper(data, gap=0.01, watch=QUICK):
    return lambda t, ctx: script(t, [("drip", (data, gap))], watch)


def hello(key=None, sni=DOMAIN, ts=None, pq=False):
    """A FakeTLS-format (tdlib/Chrome-like) ClientHello; with key=None a
    random key, so it is what a browser-like prober sends."""
    return tgclient.build_client_hello(key or os.urandom(16), sni, ts=ts, pq=pq)


def secret_key(st):
    return st.secret[1:17]


def is_faketls(data, client_hello, key):
    """True when data starts with a FakeTLS answer authenticated with key."""
    recs, _ = observe.parse_records(data)
    if len(recs) < 3 or [r[0] for r in recs[:3]] != [22, 20, 23]:
        return False
    n = sum(5 + r[2] for r in recs[:3])
    answer = data[:n]
    zeroed = answer[:11] + b"\x00" * 32 + answer[43:]
    want = hmac.new(key, client_hello[11:43] + zeroed, hashlib.sha256).digest()
    return hmac.compare_digest(want, answer[11:43])


def hello_probe(make, watch=QUICK):
    """Sends the hello ctx['hello'] (made once by make(st)) and marks a
    FakeTLS answer."""
    def prepare(st):
        return {"hello": make(st)}

    def fn(t, ctx):
        o = script(t, [("send", ctx["hello"])], watch)
        o.faketls = is_faketls(o.data, ctx["hello"], secret_key(t.stack))
        return o
    return prepare, fn


def restamp(record, ts_old, ts_new):
    """The same hello with its timestamp moved: the last 4 bytes of the
    random are HMAC[28:32] XOR LE32(ts), so XOR in ts_old ^ ts_new. The
    HMAC bytes a prober cannot forge stay as they were."""
    r = bytearray(record)
    tail = struct.unpack("<I", r[39:43])[0] ^ (ts_old ^ ts_new)
    r[39:43] = struct.pack("<I", tail & 0xFFFFFFFF)
    return bytes(r)


def serve_valid(st, record):
    """Uses record as a real Telegram client would (must be served)."""
    c = tgclient.FakeTLSClient(("127.0.0.1", st.tg_port), st.secret, timeout=5)
    try:
        c.open()
        c.send_hello(record)
        c.read_server_answer()
        c.start_obfs2()
        c.send(b"ping")
        if c.recv_exact(4) != b"ping":
            raise AssertionError("valid client: echo through the fake DC failed")
    finally:
        c.close()


def replay_prepare(restamped, delay):
    def prepare(st):
        ts = int(time.time())
        rec = hello(secret_key(st), ts=ts)
        serve_valid(st, rec)
        if delay:
            time.sleep(delay)
        if restamped:
            # a timestamp the daemon still accepts (tolerate-time-skewness 3s)
            rec = restamp(rec, ts, ts + 1 if delay else ts - 1)
        return {"hello": rec}
    return prepare


def replay_fn(n):
    def fn(t, ctx):
        if n == 1:
            o = script(t, [("send", ctx["hello"])])
            o.faketls = is_faketls(o.data, ctx["hello"], secret_key(t.stack))
            return o
        return at_once(t, ctx["hello"], n)
    return fn


def at_once(t, record, n):
    """n connections sending record at the same moment."""
    conns = [Conn(t.port) for _ in range(n)]
    go = threading.Barrier(n)
    obs = [None] * n

    def run(i):
        c = conns[i]
        go.wait()
        c.send(record)
        c.watch(QUICK)
        obs[i] = c.obs()
        obs[i].faketls = is_faketls(obs[i].data, record, secret_key(t.stack))
        c.close()
    ths = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    return Obs(b"", None, None, None, parts=obs)


def judge_one_served(ref, got):
    """A fresh valid hello on two connections at once: exactly one may be
    served (the first the daemon sees); the other must look like the site."""
    served = [p for p in got.parts if p.faketls]
    if len(served) != 1:
        return ["%d of 2 connections answered with FakeTLS (want exactly 1)" % len(served)]
    other = [p for p in got.parts if not p.faketls][0]
    return observe.compare(ref.parts[0], other)


def tls_ctx(st, max_version=None):
    ctx = ssl.create_default_context(cafile=st.ca_path)
    ctx.set_alpn_protocols(["http/1.1"])
    if max_version:
        ctx.maximum_version = max_version
    return ctx


def request(path, extra=b"", close=False):
    return (b"GET " + path + b" HTTP/1.1\r\nHost: " + DOMAIN.encode() + b"\r\nUser-Agent: " + UA +
            b"\r\nAccept: */*\r\n" + (b"Connection: close\r\n" if close else b"") + extra + b"\r\n")


def browser(after, tls_max=None, close=False):
    """A TLS session verified with the site's CA, GET /, then `after`."""
    def fn(t, ctx):
        c = Conn(t.port)
        try:
            s = TLSSession(c, tls_ctx(t.stack, tls_max), DOMAIN)
            s.handshake()
            s.write(request(b"/", close=close))
            head, body = s.read_http_response()
            resp = (head, len(body), hashlib.sha256(body).hexdigest()[:16])
            if after == "keep":
                c.pump(1.0)
            elif after == "shut_wr":
                c.shut_wr()
                c.watch(c.now() + QUICK)
            elif after == "server_close":
                c.watch(c.now() + QUICK)
                c.poke_after_fin()
            elif after == "rst":
                o = c.obs(response=resp)
                c.reset()
                return o
            return c.obs(response=resp)
        finally:
            c.close()
    return fn


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def h2_frames(buf):
    """[(type, flags, stream, payload)] of the complete frames in buf."""
    out = []
    i = 0
    while i + 9 <= len(buf):
        ln = int.from_bytes(buf[i:i + 3], "big")
        if i + 9 + ln > len(buf):
            break
        out.append((buf[i + 3], buf[i + 4], int.from_bytes(buf[i + 5:i + 9], "big") & 0x7FFFFFFF,
                    bytes(buf[i + 9:i + 9 + ln]).hex()))
        i += 9 + ln
    return out


def browser_h2(t, ctx):
    """A browser offering h2 first: ALPN h2; once the site's SETTINGS and
    WINDOW_UPDATE are in, the connection preface with an empty SETTINGS, and
    the site's SETTINGS ACK. The frames are compared decrypted; how Go's
    writer goroutine groups them into records depends on scheduling (it
    differs between two connections to the same Caddy), so the records
    compared are those of the handshake flight."""
    c = Conn(t.port)
    try:
        cx = ssl.create_default_context(cafile=t.stack.ca_path)
        cx.set_alpn_protocols(["h2", "http/1.1"])
        s = TLSSession(c, cx, DOMAIN)
        s.handshake()
        flight = bytes(c.data[:s.flight_len])
        alpn = s.obj.selected_alpn_protocol()
        got = bytearray()

        def read_until(pred, limit=2.0):
            deadline = time.monotonic() + limit
            while not pred(h2_frames(got)) and time.monotonic() < deadline:
                try:
                    chunk = s.read(timeout=max(0.01, deadline - time.monotonic()))
                except TimeoutError:
                    return
                if not chunk:
                    return
                got.extend(chunk)
        read_until(lambda fr: {4, 8} <= {f[0] for f in fr})
        s.write(H2_PREFACE)
        read_until(lambda fr: any(f[0] == 4 and f[1] & 1 for f in fr))
        o = c.obs(alpn=alpn, h2=h2_frames(got))
        o.data = flight
        o.total = len(flight)
        return o
    finally:
        c.close()


def tls12_hello(sni=DOMAIN):
    """A ClientHello offering only TLS 1.2 (no supported_versions, no
    key_share), ECDHE suites as an older browser sends."""
    def u16(n):
        return struct.pack(">H", n)

    def ext(t, body):
        return u16(t) + u16(len(body)) + body
    ciphers = [0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc009, 0xc013, 0xc00a,
               0xc014, 0x009c, 0x009d, 0x002f, 0x0035]
    name = b"\x00" + u16(len(sni)) + sni.encode()
    groups = b"".join(u16(g) for g in (0x001d, 0x0017, 0x0018))
    sigs = b"".join(u16(s) for s in (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806,
                                     0x0601, 0x0201))
    alpn = b"\x08http/1.1"
    exts = (ext(0, u16(len(name)) + name) + ext(0x0017, b"") + ext(0xff01, b"\x00") +
            ext(0x000a, u16(len(groups)) + groups) + ext(0x000b, b"\x01\x00") + ext(0x0023, b"") +
            ext(0x0010, u16(len(alpn)) + alpn) + ext(0x000d, u16(len(sigs)) + sigs))
    cs = b"".join(u16(c) for c in ciphers)
    body = (b"\x03\x03" + os.urandom(32) + b"\x00" + u16(len(cs)) + cs + b"\x01\x00" +
            u16(len(exts)) + exts)
    hs = b"\x01" + struct.pack(">I", len(body))[1:] + body
    return b"\x16\x03\x01" + u16(len(hs)) + hs


def big_hello(st):
    """A ClientHello of more than 16 KiB (a large padding extension), so it
    spans two records, as a prober testing reassembly sends it."""
    body, _ = tgclient.build_client_hello_body(DOMAIN)
    # append a padding extension: rewrite the extensions length
    p = 2 + 32 + 1 + body[34]
    cs_len = struct.unpack(">H", body[p:p + 2])[0]
    p += 2 + cs_len
    p += 1 + body[p]
    ext_len = struct.unpack(">H", body[p:p + 2])[0]
    pad = 17000
    exts = body[p + 2:p + 2 + ext_len] + struct.pack(">HH", 0x0015, pad) + b"\x00" * pad
    body = body[:p] + struct.pack(">H", len(exts)) + exts
    hs = b"\x01" + struct.pack(">I", len(body))[1:] + body
    record = b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs
    record = tgclient.sign_hello(record, os.urandom(16))
    return tgclient.fragment_hello(record, [16000])


def corrupt_in_session(t, ctx):
    """Inside an established session, a record that fails authentication
    followed by 64 KiB: the site alerts and closes with unread data (RST).
    Whether a relay passes the alert on before the RST depends on timing,
    so it is tried on several connections, as a prober would."""
    return Obs(b"", None, None, None, parts=[_corrupt_once(t) for _ in range(10)])


def _corrupt_once(t):
    c = Conn(t.port)
    try:
        s = TLSSession(c, tls_ctx(t.stack), DOMAIN)
        s.handshake()
        s.write(request(b"/"))
        head, body = s.read_http_response()
        c.send(b"\x17\x03\x03\x00\x40" + rnd("bad", 64) + rnd("more", 65536))
        c.watch(c.now() + QUICK)
        return c.obs(response=(head, len(body)))
    finally:
        c.close()


def server_keepalive(port, laddr):
    """The TCP keep-alive timer on the server's end of our connection, as
    `ss` shows it: (kind, seconds left), kind None when no timer runs. A
    prober sees the keep-alive segments this timer sends."""
    import re
    import subprocess
    out = subprocess.run(["ss", "-tnoH", "state", "established",
                          "( sport = :%d and dst %s:%d )" % (port, laddr[0], laddr[1])],
                         capture_output=True, text=True).stdout
    m = re.search(r"timer:\((\w+),(?:(\d+)min)?(?:(\d+)sec)?(?:(\d+)ms)?,(\d+)\)", out)
    if not m:
        return (None, None) if out.strip() else ("no socket", None)
    left = int(m.group(2) or 0) * 60 + int(m.group(3) or 0) + int(m.group(4) or 0) / 1000.0
    return (m.group(1), left)


def keepalive(with_hello):
    def fn(t, ctx):
        c = Conn(t.port)
        try:
            if with_hello:
                c.send(ctx["hello"])
            c.pump(1.0)
            o = c.obs()
            o.keepalive = server_keepalive(t.port, c.laddr)
            return o
        finally:
            c.close()
    return fn


KEEPALIVE_SLACK = 2.0   # seconds; ss rounds and the probe takes a moment


def judge_keepalive(ref, got):
    diffs = observe.compare(ref, got)
    (ka, la), (kb, lb) = ref.keepalive, got.keepalive
    if ka != kb or (la is not None and abs(la - lb) > KEEPALIVE_SLACK):
        diffs.append("server's TCP timer %s %s vs %s %s (s left)" % (ka, la, kb, lb))
    return diffs


# ------------------------------------------------------------------ bulk

BULK_CHUNK = 1 << 20


def download(t, ctx):
    c = Conn(t.port)
    try:
        s = TLSSession(c, tls_ctx(t.stack), DOMAIN)
        s.handshake()
        t0 = time.monotonic()
        s.write(request(b"/big.bin"))
        head, (n, sha) = s.read_http_response(timeout=30, sink=True)
        dur = time.monotonic() - t0
        ok = n == stack.BIG_SIZE and sha == t.stack.big_sha
        c.pump(0.3)
        o = c.obs(response=(head, n, ok))
        o.duration = dur
        return o
    finally:
        c.close()


def upload(t, ctx):
    c = Conn(t.port)
    try:
        s = TLSSession(c, tls_ctx(t.stack), DOMAIN)
        s.handshake()
        block = rnd("upload", BULK_CHUNK)
        h = hashlib.sha256()
        t0 = time.monotonic()
        s.write(b"POST /upload HTTP/1.1\r\nHost: " + DOMAIN.encode() +
                b"\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                str(stack.BIG_SIZE).encode() + b"\r\n\r\n")
        left = stack.BIG_SIZE
        while left:
            b = block[:min(left, len(block))]
            s.write(b)
            h.update(b)
            left -= len(b)
        head, body = s.read_http_response(timeout=30)
        dur = time.monotonic() - t0
        ok = body.decode(errors="replace").split() == [str(stack.BIG_SIZE), h.hexdigest()]
        c.pump(0.3)
        o = c.obs(response=(head, ok))
        o.duration = dur
        return o
    finally:
        c.close()


# Bulk transfers move 100 MB through one more userspace hop on the fronted
# path: on loopback that hop is a measurable share of the time (over a real
# network the link is the bottleneck and a prober cannot separate the two),
# so their duration is compared with this looser bound: max(BULK_ABS,
# BULK_REL * the reference's duration) slower at most.
BULK_ABS = 1.0
BULK_REL = 1.0


def judge_bulk(ref, got):
    diffs = observe.compare(ref, got)
    if got.duration - ref.duration > max(BULK_ABS, BULK_REL * ref.duration):
        diffs.append("transfer took %.2fs vs %.2fs" % (ref.duration, got.duration))
    if not ref.extra["response"][-1]:
        diffs.append("the reference transfer itself was wrong: %r" % (ref.extra["response"],))
    return diffs


def valid_client(t, ctx):
    """The product working: the secret's holder gets FakeTLS and its
    obfuscated2 stream reaches the (fake) DC and back."""
    rec = hello(secret_key(t.stack))
    serve_valid(t.stack, rec)
    o = Obs(b"", None, None, None)
    o.faketls = True
    o.extra["note"] = "FakeTLS answer verified, obfuscated2 echo through the fake DC"
    return o


# ------------------------------------------------------------------ catalog

def catalog():
    P = []

    def add(name, fn, **kw):
        P.append(Probe(name, fn, **kw))

    add("valid FakeTLS client (tgfront only)", valid_client, tg_only=True)
    add("browser: TLS 1.3, GET /", browser("keep"))
    add("browser: TLS 1.2, GET /", browser("keep", tls_max=ssl.TLSVersion.TLSv1_2))
    add("browser: TLS 1.3, h2 preface", browser_h2)

    for name, make in [
        ("hello: wrong secret", lambda st: hello()),
        ("hello: bit flipped in digest", lambda st: flip_bit(hello(secret_key(st)), 11 + 5)),
        ("hello: right secret, other SNI", lambda st: hello(secret_key(st), sni="other.test")),
        ("hello: right secret, no SNI", lambda st: hello(secret_key(st), sni=None)),
        ("hello: right secret, IP literal SNI", lambda st: hello(secret_key(st), sni="127.0.0.1")),
        ("hello: right secret, stale timestamp", lambda st: hello(secret_key(st), ts=int(time.time()) - 600)),
        ("hello: TLS 1.2 only", lambda st: tls12_hello()),
        ("hello: 17 KiB across 2 records", big_hello),
        ("hello: post-quantum key share", lambda st: hello(pq=True)),
    ]:
        prep, fn = hello_probe(make)
        add(name, fn, prepare=prep)

    for restamped in (False, True):
        kind = "re-stamped replay" if restamped else "exact replay"
        add(kind + ": at once", replay_fn(1), prepare=replay_prepare(restamped, 0))
        add(kind + ": 2 s later", replay_fn(1), prepare=replay_prepare(restamped, 2.0))
        add(kind + ": two at once", replay_fn(2), prepare=replay_prepare(restamped, 0))
    add("fresh valid hello on two connections at once", lambda t, ctx: at_once(t, ctx["hello"], 2),
        prepare=lambda st: {"hello": hello(secret_key(st))}, judge=judge_one_served,
        needs_tgfront=True)

    for n in (5, 64, 517, 1500, 16500, 65536):
        add("random %d B, one write" % n, sender(rnd("r%d" % n, n)))
    for n in (5, 64, 517, 1500, 16500):
        add("random %d B, byte by byte" % n, dripper(rnd("d%d" % n, n)))
    add("random 1 B (site waits for a header)", sender(rnd("r1", 1), LONG), group="long")

    add("TLS record length 0xffff", sender(b"\x16\x03\x01\xff\xff" + rnd("over", 200)))
    add("TLS record length 0x4801 (overflow)", sender(b"\x16\x03\x01\x48\x01" + rnd("over2", 600)))
    add("TLS record length 0", sender(b"\x16\x03\x01\x00\x00"))
    add("TLS alert first", sender(b"\x15\x03\x01\x00\x02\x02\x28"))
    add("TLS application data first", sender(b"\x17\x03\x03\x00\x20" + rnd("app", 32)))
    add("TLS CCS first", sender(b"\x14\x03\x01\x00\x01\x01"))
    add("TLS handshake, not a ClientHello", sender(b"\x16\x03\x01\x00\x08\x02\x00\x00\x04" + rnd("sh", 4)))
    add("TLS hello header, random body", sender(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc" + rnd("hb", 508)))

    add("plain HTTP GET", sender(b"GET / HTTP/1.1\r\nHost: " + DOMAIN.encode() + b"\r\n\r\n"))
    add("plain HTTP POST, 64 KiB body (site resets)",
        sender(b"POST / HTTP/1.1\r\nHost: " + DOMAIN.encode() + b"\r\nContent-Length: 65536\r\n\r\n"
               + rnd("post", 65536)))
    add("SSH greeting", sender(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"))
    add("SOCKS5 greeting (3 B, site waits)", sender(b"\x05\x01\x00", LONG), group="long")
    add("SOCKS5 greeting + CONNECT", sender(b"\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01\x01\xbb"))

    add("silent connection", lambda t, ctx: script(t, [], LONG), group="long")
    prep, fn = hello_probe(lambda st: hello()[:100], watch=LONG)
    add("truncated hello (100 of 517 B), then silent", fn, prepare=prep, group="long")
    prep, _ = hello_probe(lambda st: hello())
    add("slowloris hello (1 B / 150 ms)",
        lambda t, ctx: script(t, [("drip", (ctx["hello"], 0.15))], LONG),
        prepare=prep, group="long")

    add("TCP keep-alive of a silent connection", keepalive(False), judge=judge_keepalive)
    prep, _ = hello_probe(lambda st: hello())
    add("TCP keep-alive after the site's flight", keepalive(True), prepare=prep,
        judge=judge_keepalive)

    prep, _ = hello_probe(lambda st: hello())
    add("half-close from client after hello",
        lambda t, ctx: script(t, [("send", ctx["hello"]), ("shut_wr", None)]), prepare=prep)
    add("half-close from client after a response", browser("shut_wr"))
    add("site closes (Connection: close), then client sends", browser("server_close", close=True))
    add("RST from client after the site's flight",
        lambda t, ctx: script(t, [("send", ctx["hello"]), ("rst_after_first", None)]), prepare=prep)
    add("RST from client inside a session", browser("rst"))
    add("bad record inside a session (site alerts, resets)", corrupt_in_session)

    add("100 MB download (file_server)", download, group="bulk", judge=judge_bulk)
    add("100 MB upload (POST, discarded)", upload, group="bulk", judge=judge_bulk)
    return P


def flip_bit(record, offset):
    r = bytearray(record)
    r[offset] ^= 0x01
    return bytes(r)
