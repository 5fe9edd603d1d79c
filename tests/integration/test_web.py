"""WEB proxy mode (tg://webproxy) through the daemon's loopback listener:
bridge page, carrier, v1 mux, streams to the fake DC, and bad input.

The client (webclient.py) is written from webproxy-facts.md, not from the
daemon. Here it talks plain HTTP to the listener, as Caddy does in the image
(the image suite covers the same over TLS through :443)."""

import os
import socket
import struct
import time
import urllib.request

import pytest

import tgclient
import webclient as wc
from conftest import SECRET_HOST, free_port
from helpers import rand

REQ_PQ_MULTI = 0xbe7e8ef1


@pytest.fixture(scope="module")
def web(workdir, secret, fakedc, backend_session):
    from conftest import Daemon, _finish
    port = free_port()
    d = Daemon(workdir, secret, fakedc.addr, backend_session.addr,
               tables={"web": {"enabled": True, "bind-to": "127.0.0.1:%d" % port,
                               "max-streams": 8}})
    d.web_addr = ("127.0.0.1", port)
    d.start()
    yield d
    _finish(d)


def key16(secret):
    return secret[1:17]


def dd_secret(secret):
    return b"\xdd" + key16(secret)


def metrics(d):
    with urllib.request.urlopen("http://127.0.0.1:%d/" % d.stats_port, timeout=5) as r:
        return r.read().decode()


def metric(d, name):
    for line in metrics(d).splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{") and False:
            return float(line.split()[-1])
    for line in metrics(d).splitlines():
        if line.split(" ")[0] == name:
            return float(line.split()[-1])
    raise AssertionError("metric %s missing" % name)


def req_pq_multi_packet():
    """An unencrypted req_pq_multi in padded-intermediate framing, as
    tdesktop's first packet on a new connection."""
    nonce = os.urandom(16)
    msg_id = (int(time.time()) << 32) | 4
    body = struct.pack("<I", REQ_PQ_MULTI) + nonce
    mt = b"\x00" * 8 + struct.pack("<QI", msg_id, len(body)) + body
    pad = os.urandom(os.urandom(1)[0] % 4)
    return struct.pack("<I", len(mt) + len(pad)) + mt + pad


def session(d, secret_bytes):
    page, car = wc.bridge_session(d.web_addr, SECRET_HOST, secret_bytes)
    assert car.response.status == 101 and car.accept_ok, car.response.raw_head
    car.hello()
    return page, car


def test_bridge_page_headers(web, secret):
    cap = wc.capability(SECRET_HOST, dd_secret(secret))
    s = wc.connect(web.web_addr)
    r = wc.http_get(s, SECRET_HOST, "/?bridge=" + cap)
    s.close()
    assert r.status == 200
    assert r.header("content-type") == "text/html; charset=utf-8"
    assert r.header("cache-control") == "no-store"
    assert r.header("referrer-policy") == "no-referrer"
    assert r.header("x-content-type-options") == "nosniff"
    csp = r.header("content-security-policy")
    assert "default-src 'none'" in csp and "connect-src 'self' wss://%s" % SECRET_HOST in csp
    assert "frame-ancestors http://127.0.0.1:*" in csp
    nonce = csp.split("script-src 'nonce-")[1].split("'")[0]
    assert len(nonce) == 24 and b'<script nonce="%s">' % nonce.encode() in r.body
    for h in ("x-frame-options", "cross-origin-opener-policy", "cross-origin-embedder-policy"):
        assert r.header(h) is None
    # self-contained: no external resources
    for bad in (b"src=", b"href=", b"http://", b"https://", b"@import"):
        assert bad not in r.body.replace(b"'https:'", b""), bad


def test_plain_secret_capability_also_served(web, secret):
    cap = wc.capability(SECRET_HOST, key16(secret))
    s = wc.connect(web.web_addr)
    r = wc.http_get(s, SECRET_HOST, "/?bridge=" + cap)
    assert r.status == 200
    # keep-alive: a second request on the same connection
    r2 = wc.http_get(s, SECRET_HOST, "/?bridge=" + cap)
    assert r2.status == 200
    assert wc.page_params(r.body)[1] != wc.page_params(r2.body)[1], "tokens must differ"
    s.close()


def _site_answer(d, target, extra=()):
    s = wc.connect(d.web_addr)
    r = wc.http_get(s, SECRET_HOST, target, extra)
    s.close()
    return r


def test_wrong_capability_goes_to_site(web, secret):
    plain = _site_answer(web, "/")
    assert plain.status == 404 and plain.header("x-tgfront-route") == "site"
    bogus = wc.capability(SECRET_HOST, b"\xdd" + os.urandom(16))
    for target in ("/?bridge=" + bogus, "/?bridge=AAAA", "/?bridge=" + "A" * 43,
                   "/api/v1/socket"):
        r = _site_answer(web, target)
        assert r.raw_head == plain.raw_head and r.body == plain.body, target
    # the capability for another host is not ours either
    other = wc.capability("other.example.org", dd_secret(secret))
    assert _site_answer(web, "/?bridge=" + other).raw_head == plain.raw_head


def test_authentic_capability_noncanonical_is_local_404(web, secret):
    cap = wc.capability(SECRET_HOST, dd_secret(secret))
    for target in ("/?bridge=%s&x=1" % cap, "/index.html?bridge=" + cap,
                   "/?x=1&bridge=" + cap):
        r = _site_answer(web, target)
        assert r.status == 404 and r.header("cache-control") == "no-store", target
        assert r.header("x-tgfront-route") is None and r.body == b"Not Found\n"


def test_round_trip_mtproto(web, secret, fakedc):
    _, car = session(web, dd_secret(secret))
    mux = wc.Mux(car)
    pkt = req_pq_multi_packet()
    sid = mux.open(key16(secret), dc=2, first_payload=pkt)
    assert mux.recv_exact(sid, len(pkt)) == pkt   # the fake DC echoes
    conn = fakedc.conn_with_head(pkt[:24])
    assert conn is not None and conn.tag == b"\xdd\xdd\xdd\xdd" and conn.dc == 2
    car.sock.close()


@pytest.mark.parametrize("tag", [b"\xef" * 4, b"\xee" * 4])
def test_plain_secret_link_streams(web, secret, fakedc, tag):
    """A plain-secret link: abridged or intermediate framing; the DC gets
    the client's tag."""
    _, car = session(web, key16(secret))
    mux = wc.Mux(car)
    marker = b"plain-" + os.urandom(8).hex().encode()
    sid = mux.open(key16(secret), dc=4, tag=tag, first_payload=marker)
    assert mux.recv_exact(sid, len(marker)) == marker
    conn = fakedc.conn_with_head(marker)
    assert conn is not None and conn.tag == tag and conn.dc == 4
    car.sock.close()


def test_dd_link_refuses_other_tags(web, secret):
    """With the dd capability only the padded-intermediate tag is served."""
    _, car = session(web, dd_secret(secret))
    mux = wc.Mux(car)
    sid = mux.open(key16(secret), tag=b"\xef" * 4, first_payload=b"x")
    deadline = time.time() + 5
    while sid not in mux.closed_by_relay and time.time() < deadline:
        mux.pump()
    assert sid in mux.closed_by_relay
    car.sock.close()


def test_several_streams_and_windows(web, secret, fakedc):
    _, car = session(web, dd_secret(secret))
    mux = wc.Mux(car)
    sizes = [1, 1000, 65536 + 3, 300000, 5 << 20]   # the last crosses the 4 MiB window
    ids, data = [], []
    for i, n in enumerate(sizes):
        ids.append(mux.open(key16(secret), dc=(i % 5) + 1))
        data.append(rand(n))

    # first halves on every stream, then each stream's rest while reading
    # (5 MiB needs the relay's WINDOW frames, which only reading sees)
    for sid, p in zip(ids, data):
        half = p[: min(len(p) // 2, 1 << 20)]
        mux.send(sid, half)
    got = []
    for sid, p in zip(ids, data):
        half = min(len(p) // 2, 1 << 20)
        first = mux.recv_exact(sid, half)
        got.append(first + mux.echo(sid, p[half:]))
    for g, p in zip(got, data):
        assert g == p
    car.sock.close()


def test_token_single_use_and_wrong_token(web, secret):
    cap = wc.capability(SECRET_HOST, dd_secret(secret))
    s = wc.connect(web.web_addr)
    page = wc.http_get(s, SECRET_HOST, "/?bridge=" + cap)
    s.close()
    path, token = wc.page_params(page.body)
    plain = _site_answer(web, path)
    c1 = wc.Carrier(wc.connect(web.web_addr), SECRET_HOST, path, token)
    assert c1.response.status == 101
    c2 = wc.Carrier(wc.connect(web.web_addr), SECRET_HOST, path, token)
    assert c2.response.raw_head == plain.raw_head, "a used token must look like the site"
    c3 = wc.Carrier(wc.connect(web.web_addr), SECRET_HOST, path, wc.b64u(os.urandom(32)))
    assert c3.response.raw_head == plain.raw_head
    for c in (c1, c2, c3):
        c.sock.close()


def _expect_close(car, code):
    car.sock.settimeout(5)
    while True:
        m = car.recv_message()
        if m is None:
            break
    assert car.close_code == code, "close code %r, want %r" % (car.close_code, code)


def ended(d, reason):
    for line in metrics(d).splitlines():
        if line.startswith('mtg_web_sessions_ended_total{reason="%s"}' % reason):
            return int(float(line.split()[-1]))
    raise AssertionError("no sessions_ended metric for " + reason)


@pytest.mark.parametrize("case,code,reason", [
    ("unmasked", 1002, "ws_protocol"), ("text", 1003, "ws_text"),
    ("unknown_stream", 1002, "mux"), ("bad_type", 1002, "frame"),
    ("before_hello", 1002, "mux"), ("too_big", 1009, "ws_too_big"), ("partial", 1002, "frame"),
    ("window_zero", 1002, "mux"), ("data_too_long", 1002, "frame"), ("rsv", 1002, "ws_protocol"),
])
def test_bad_input_closes_only_that_session(web, secret, case, code, reason):
    # a healthy session first, that must survive
    _, good = session(web, dd_secret(secret))
    gm = wc.Mux(good)
    gsid = gm.open(key16(secret))
    before = ended(web, reason)
    page, bad = wc.bridge_session(web.web_addr, SECRET_HOST, dd_secret(secret))
    if case != "before_hello":
        bad.hello()
    if case == "unmasked":
        bad.send_ws(wc.frame(wc.OPEN, 1), mask=False)
    elif case == "text":
        bad.send_ws(b"hello", opcode=1)
    elif case == "unknown_stream":
        bad.send_frames(wc.frame(wc.DATA, 77, b"x"))
    elif case == "bad_type":
        bad.send_frames(wc.frame(0x12, 0, b""))
    elif case == "before_hello":
        bad.send_frames(wc.frame(wc.OPEN, 1))
    elif case == "too_big":
        # the header alone announces 3 MiB: refused before any payload
        bad.sock.sendall(bytes([0x82, 0x80 | 127]) + struct.pack(">Q", 3 << 20) + b"\0" * 4)
    elif case == "partial":
        bad.send_ws(wc.frame(wc.OPEN, 1)[:5])
    elif case == "window_zero":
        bad.send_frames(wc.frame(wc.OPEN, 1), wc.frame(wc.WINDOW, 1, b"\x00" * 4))
    elif case == "data_too_long":
        bad.send_frames(wc.frame(wc.OPEN, 1), wc.frame(wc.DATA, 1, b"\x00" * 65537))
    elif case == "rsv":
        bad.send_ws(wc.frame(wc.OPEN, 1), opcode=0x42)
    _expect_close(bad, code)
    bad.sock.close()
    deadline = time.time() + 3   # counted by reason
    while ended(web, reason) == before and time.time() < deadline:
        time.sleep(0.05)
    assert ended(web, reason) == before + 1
    # the other session still works
    gm.send(gsid, b"still here")
    assert gm.recv_exact(gsid, 10) == b"still here"
    good.sock.close()


def test_malformed_http_is_refused(web):
    for raw in (b"GET / HTTP/1.0\r\nHost: x\r\n\r\n", b"GET / HTTP/1.1\nHost: x\n\n",
                b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
                b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"):
        s = wc.connect(web.web_addr)
        s.sendall(raw)
        r, _ = wc.read_response(s)
        assert r.status == 400, raw
        s.settimeout(3)
        assert s.recv(100) == b"", "closed after the 400"
        s.close()


def test_refused_stream_over_max_streams(web, secret):
    _, car = session(web, dd_secret(secret))
    mux = wc.Mux(car)
    ids = [mux.open(key16(secret)) for _ in range(9)]   # max-streams = 8
    deadline = time.time() + 5
    while ids[-1] not in mux.closed_by_relay and time.time() < deadline:
        mux.pump()
    assert ids[-1] in mux.closed_by_relay
    mux.send(ids[0], b"ok")
    assert mux.recv_exact(ids[0], 2) == b"ok"
    car.sock.close()


def test_metrics_count_web(web, secret):
    text = metrics(web)
    assert "mtg_web_answers_total{answer=\"bridge\"}" in text
    bridge = [l for l in text.splitlines() if l.startswith('mtg_web_answers_total{answer="bridge"}')]
    assert float(bridge[0].split()[-1]) >= 1


def test_session_flood_memory_bounded(web, secret):
    """Many half-open HTTP connections and carriers with junk, then a
    normal session still works and RSS stayed bounded."""
    before = web.rss_kib()
    socks = []
    for i in range(200):
        s = wc.connect(web.web_addr)
        s.sendall(b"GET /?bridge=" + b"A" * 43 + b" HTTP/1.1\r\nHost: example.com\r\n")
        socks.append(s)
    cars = []
    for i in range(30):
        _, car = wc.bridge_session(web.web_addr, SECRET_HOST, dd_secret(secret))
        car.hello()
        car.send_frames(wc.frame(wc.OPEN, 1), wc.frame(wc.DATA, 1, os.urandom(30000)))
        cars.append(car)
    time.sleep(1)
    peak = web.rss_kib()
    for s in socks:
        s.close()
    for c in cars:
        c.sock.close()
    _, car = session(web, dd_secret(secret))
    mux = wc.Mux(car)
    sid = mux.open(key16(secret))
    mux.send(sid, b"after the flood")
    assert mux.recv_exact(sid, 15) == b"after the flood"
    car.sock.close()
    assert peak - before < 64 * 1024, "RSS grew %d KiB" % (peak - before)


def test_stalled_dc_bounds_memory_and_spares_others(workdir, secret, fakedc, backend_session):
    """Streams to a DC that never reads: the session's queues stop at their
    mark (the carrier is no longer read, TCP pushes back on the client),
    the web memory gauge stays bounded, and another session to a working
    DC is served meanwhile."""
    from conftest import Daemon, _finish, hostport
    from fakedc import FakeDC
    stall = FakeDC(mode="stall").start()
    port = free_port()
    d = Daemon(workdir, secret, fakedc.addr, backend_session.addr,
               dc_overrides={2: [hostport(*stall.addr)], 4: [hostport(*fakedc.addr)]},
               tables={"web": {"enabled": True, "bind-to": "127.0.0.1:%d" % port}})
    d.web_addr = ("127.0.0.1", port)
    d.start()
    try:
        _, car = session(d, dd_secret(secret))
        mux = wc.Mux(car)
        ids = [mux.open(key16(secret), dc=2) for _ in range(8)]
        car.sock.settimeout(0.5)
        chunk = os.urandom(65536)
        sent = 0
        try:   # push until TCP stops taking more (the relay stopped reading)
            for _ in range(400):
                for sid in ids:
                    car.send_frames(wc.frame(wc.DATA, sid, chunk))
                    sent += len(chunk)
        except (socket.timeout, TimeoutError):
            pass
        time.sleep(0.5)
        held = metric(d, "mtg_web_memory_bytes")
        assert sent < 8 * 400 * 65536, "the relay never pushed back"
        # buffers (about 300 KiB) + queues (512 KiB mark + one read)
        assert held < 2 << 20, "web sessions hold %d bytes" % held
        _, other = session(d, dd_secret(secret))
        om = wc.Mux(other)
        osid = om.open(key16(secret), dc=4, first_payload=b"other session")
        assert om.recv_exact(osid, 13) == b"other session"
        other.sock.close()
        car.sock.close()
    finally:
        _finish(d)
        stall.stop()


def test_access_prints_webproxy_links(web, secret):
    import json
    import subprocess
    from conftest import tgfront_bin
    out = subprocess.run([tgfront_bin(), "access", web.config_path], capture_output=True,
                         check=True).stdout.decode()
    j = json.loads(out)
    dd = "dd" + key16(secret).hex()
    assert j["web"]["secret"] == dd
    assert j["web"]["tg_url"] == "tg://webproxy?server=%s&secret=%s" % (SECRET_HOST, dd)
    assert j["web"]["tme_url"] == "https://t.me/webproxy?server=%s&secret=%s" % (SECRET_HOST, dd)
    # the link's secret really is what the listener accepts
    s = wc.connect(web.web_addr)
    r = wc.http_get(s, SECRET_HOST, "/?bridge=" + wc.capability(SECRET_HOST,
                                                                 bytes.fromhex(dd)))
    s.close()
    assert r.status == 200


def test_sigterm_closes_carriers_and_exits(workdir, secret, fakedc, backend_session):
    """SIGTERM: an open carrier gets a close frame (1000) and the daemon
    exits 0 within the drain period."""
    import signal
    from conftest import Daemon
    port = free_port()
    d = Daemon(workdir, secret, fakedc.addr, backend_session.addr,
               tables={"web": {"enabled": True, "bind-to": "127.0.0.1:%d" % port}})
    d.web_addr = ("127.0.0.1", port)
    d.start()
    _, car = session(d, dd_secret(secret))
    mux = wc.Mux(car)
    sid = mux.open(key16(secret))
    mux.send(sid, b"before")
    assert mux.recv_exact(sid, 6) == b"before"
    idle = wc.connect(d.web_addr)   # a keep-alive HTTP connection, idle
    t0 = time.time()
    d.signal(signal.SIGTERM)
    _expect_close(car, 1000)
    assert d.wait(10) == 0, d.stderr()[-2000:]
    assert time.time() - t0 < 5
    assert d.sanitizer_report() is None
    idle.close()
    car.sock.close()


def test_sighup_secret_removed_stops_its_bridge_open_carrier_keeps_streaming(
        make_daemon, fakedc):
    """SIGHUP removes a secret from the WEB bridge as from FakeTLS: its
    capability meets the site; the other secret still gets its page; a
    carrier the removed secret opened before the reload keeps its key."""
    import re
    import signal
    port = free_port()
    alice, bob = tgclient.make_secret(SECRET_HOST), tgclient.make_secret(SECRET_HOST)
    d = make_daemon(top={"secret": None}, tables={
        "secrets": {"alice": tgclient.secret_hex(alice), "bob": tgclient.secret_hex(bob)},
        "web": {"enabled": True, "bind-to": "127.0.0.1:%d" % port}})
    d.web_addr = ("127.0.0.1", port)
    bob_cap = "/?bridge=" + wc.capability(SECRET_HOST, dd_secret(bob))
    assert _site_answer(d, bob_cap).status == 200
    _, car = session(d, dd_secret(bob))
    mux = wc.Mux(car)
    sid = mux.open(key16(bob), dc=2)
    mux.send(sid, b"before")
    assert mux.recv_exact(sid, 6) == b"before"

    with open(d.config_path, "w") as f:
        f.write(re.sub(r"(?m)^bob = .*\n", "", d.config_text))
    mark = len(d.stderr())
    d.signal(signal.SIGHUP)
    deadline = time.time() + 10
    while "reloaded " not in d.stderr()[mark:] and time.time() < deadline:
        time.sleep(0.05)
    assert "reloaded " in d.stderr()[mark:], d.stderr()[-2000:]

    # Worker 0 adopts the new config through its control eventfd, after the
    # log line and on its own thread: under load that takes a while.
    plain = _site_answer(d, "/")
    deadline = time.time() + 10
    while True:
        gone = _site_answer(d, bob_cap)
        if (gone.raw_head == plain.raw_head and gone.body == plain.body) or time.time() > deadline:
            break
        time.sleep(0.1)
    assert gone.raw_head == plain.raw_head and gone.body == plain.body, \
        "a removed secret's capability still opens the bridge 10 s after the reload"
    assert _site_answer(d, "/?bridge=" + wc.capability(SECRET_HOST,
                                                        dd_secret(alice))).status == 200
    # the carrier opened before the reload: old and new streams still relay
    mux.send(sid, b"after")
    assert mux.recv_exact(sid, 5) == b"after"
    sid2 = mux.open(key16(bob), dc=2)
    mux.send(sid2, b"new stream")
    assert mux.recv_exact(sid2, 10) == b"new stream"
    car.sock.close()


def test_expired_secret_link_meets_the_site(make_daemon):
    """[secret-limits.NAME] expires holds for the WEB bridge too: the
    expired secret's capability is answered as the site, the other one's
    page is served."""
    port = free_port()
    alice, bob = tgclient.make_secret(SECRET_HOST), tgclient.make_secret(SECRET_HOST)
    d = make_daemon(top={"secret": None}, tables={
        "secrets": {"alice": tgclient.secret_hex(alice), "bob": tgclient.secret_hex(bob)},
        "secret-limits.bob": {"expires": "2020-01-01T00:00:00Z"},
        "web": {"enabled": True, "bind-to": "127.0.0.1:%d" % port}})
    d.web_addr = ("127.0.0.1", port)
    plain = _site_answer(d, "/")
    for sec in (dd_secret(bob), key16(bob)):
        r = _site_answer(d, "/?bridge=" + wc.capability(SECRET_HOST, sec))
        assert r.raw_head == plain.raw_head and r.body == plain.body, "expired secret's bridge"
    assert _site_answer(d, "/?bridge=" + wc.capability(SECRET_HOST,
                                                        dd_secret(alice))).status == 200
