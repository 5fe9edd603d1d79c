"""Edge cases: big and odd hellos, pipelining, FIN/RST ordering, slow peers on
both paths, secrets in logs."""

import ipaddress
import os
import socket
import struct
import time

import pytest

import tgclient
from helpers import (assert_fronted, backend_conn_for, join_all, raw_connect, recv_n,
                     refused_addr, round_trip, sees_eof, wait_data)


def v4(addr):
    """IPv4 text for an IPv4 or v4-mapped IPv6 address."""
    a = ipaddress.ip_address(addr)
    if a.version == 6 and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    return str(a)


def test_tdlib_sized_hello(daemon, fakedc):
    """Current tdlib sends an X25519MLKEM768 share: a ~1.8 KB hello."""
    with daemon.client(pq=True) as c:
        hello = c.build_hello()
        assert len(hello) > 1400
        c.connect()
        assert round_trip(c, b"pq") == b"pq"


def test_hello_in_ten_records(daemon, fakedc):
    cuts = [1, 2, 3, 4, 50, 100, 200, 300, 400]
    with daemon.client(fragments=cuts) as c:
        c.connect()
        assert round_trip(c, b"ten") == b"ten"


def test_empty_session_id(daemon, fakedc):
    with daemon.client(session_id=b"") as c:
        c.connect()
        assert round_trip(c, b"nosid") == b"nosid"


def test_pipelined_client(daemon, fakedc):
    """Hello, CCS, init frame and data in one write, before the server's
    answer: bytes after the hello must not be lost."""
    c = daemon.client()
    with c:
        c.open()
        hello = c.build_hello()
        rest = c.obfs2_bytes(b"early data") + c.encrypt_records(b" and more")
        c.sock.sendall(hello + rest)
        c.read_server_answer()
        assert c.recv_exact(19) == b"early data and more"


def test_ccs_between_data_records(daemon, fakedc):
    with daemon.client() as c:
        c.connect()
        c.sock.sendall(c.encrypt_records(b"abc") + tgclient.CCS + c.encrypt_records(b"def"))
        assert c.recv_exact(6) == b"abcdef"


def test_client_fin_after_burst_keeps_data(daemon, fakedc):
    """Client sends 300 KB and its FIN at once: the DC gets all of it and the
    echo comes back completely before EOF."""
    data = os.urandom(300000)
    with daemon.client() as c:
        c.connect()
        c.sock.sendall(c.encrypt_records(data))
        c.sock.shutdown(socket.SHUT_WR)
        got = c.recv_exact(len(data))
        assert got == data
        c.recv_close_notify()   # then EOF: the DC closed


def test_dc_fin_after_burst_keeps_data(make_daemon, fakedc):
    """The DC sends 1 MiB and closes: the client gets every byte, then the
    close_notify record and EOF."""
    d = make_daemon()
    fakedc.mode = "blast"
    fakedc.blast_bytes = 1 << 20
    try:
        with d.client() as c:
            c.connect()
            got = 0
            while got < 1 << 20:
                b = c.recv((1 << 20) - got)
                if not b:
                    break
                got += len(b)
            assert got == 1 << 20, "client got %d of %d bytes before EOF" % (got, 1 << 20)
            c.recv_close_notify()
    finally:
        fakedc.mode = "echo"
        fakedc.blast_bytes = 256 << 20


def test_slow_dc_memory_bounded(make_daemon, fakedc):
    """The DC never reads, the client keeps writing: the daemon stops reading
    from the client instead of queueing."""
    d = make_daemon()
    fakedc.mode = "stall"
    fakedc.stall_release.clear()
    try:
        base = d.rss_kib()
        c = d.client().connect()
        c.sock.setblocking(False)
        block = c.encrypt_records(os.urandom(2878 * 20))
        pushed = 0
        peak = base
        t_end = time.monotonic() + 3
        pending = memoryview(block)
        while time.monotonic() < t_end:
            try:
                n = c.sock.send(pending)
                pushed += n
                pending = pending[n:]
                if not pending:
                    # new records continue the same cipher stream
                    pending = memoryview(c.encrypt_records(os.urandom(2878 * 20)))
            except BlockingIOError:
                time.sleep(0.05)
            peak = max(peak, d.rss_kib())
        c.close()
        assert pushed > 0
        assert peak - base < 8 * 1024, "RSS grew by %d KiB while the DC stalled (%d bytes pushed)" % (
            peak - base, pushed)
    finally:
        fakedc.mode = "echo"
        fakedc.stall_release.set()


def test_fronted_slow_reader_memory_bounded(make_daemon, backend):
    """The site blasts, the probe never reads: bounded memory."""
    d = make_daemon()
    backend.blast = 512 << 20
    base = d.rss_kib()
    socks = []
    for _ in range(4):
        s = raw_connect(d.addr)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /big HTTP/1.1\r\n\r\n")
        socks.append(s)
    peak = base
    t_end = time.monotonic() + 3
    while time.monotonic() < t_end:
        peak = max(peak, d.rss_kib())
        time.sleep(0.1)
    sent = backend.blast_sent
    for s in socks:
        s.close()
    backend.blast = 0
    # Unless more than the bound was pushed at the daemon, a daemon that
    # queues whatever it reads would pass too.
    assert sent > 8 << 20, "the backend wrote only %d bytes: the bound proves nothing" % sent
    assert peak - base < 8 * 1024, "RSS grew by %d KiB (backend wrote %d bytes)" % (peak - base, sent)


def test_client_rst_reaches_backend_as_rst(daemon, backend):
    with raw_connect(daemon.addr) as s:
        s.sendall(b"GET /rst HTTP/1.1\r\n\r\n")
        conn = assert_fronted(backend, s, b"GET /rst HTTP/1.1\r\n\r\n")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert backend.wait_for(lambda _: conn.done, 5), "backend connection still open"
    assert conn.reset and not conn.eof, "client RST arrived as %s" % ("FIN" if conn.eof else "?")


def test_backend_rst_reaches_client_as_rst(daemon, backend):
    backend.rst_on_data = True
    with raw_connect(daemon.addr) as s:
        s.sendall(b"GET /rst2 HTTP/1.1\r\n\r\n")
        conn = backend_conn_for(backend, s)
        assert conn is not None
        s.settimeout(5)
        try:
            r = s.recv(100)
            got = "FIN" if r == b"" else "data %r" % r
        except ConnectionResetError:
            got = "RST"
        except socket.timeout:
            got = "nothing"
        assert got == "RST", "backend RST arrived at the client as %s" % got


def test_fronted_backend_answers_then_client_data(daemon, backend):
    """The backend answers first and keeps the connection open; the client
    can still send, and the backend still receives.  (A backend FIN closes
    the client socket instead: test_probing.test_site_reset_reaches_client_at_once.)"""
    backend.reply_on_data = b"early answer"
    with raw_connect(daemon.addr) as s:
        s.sendall(b"\x00hello")
        conn = assert_fronted(backend, s, b"\x00hello")
        assert recv_n(s, 12) == b"early answer"
        s.sendall(b" more")
        assert wait_data(backend, conn, b"\x00hello more") == b"\x00hello more"


def test_no_secret_in_logs(daemon, fakedc, backend):
    with daemon.client() as c:
        c.connect()
        assert round_trip(c, b"log") == b"log"
    with raw_connect(daemon.addr) as s:
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        # waits until the fronting (and whatever it logs) has happened
        assert backend_conn_for(backend, s) is not None, "probe not fronted"
    err = daemon.stderr().lower()
    key = daemon.secret[1:17]
    assert key.hex() not in err, "secret key in the log"
    assert tgclient.secret_hex(daemon.secret) not in err
    assert tgclient.secret_b64(daemon.secret).lower() not in err


def test_many_idle_relays_are_cheap(make_daemon, fakedc):
    """200 idle relayed connections: RSS per connection stays small (the
    design aims at a few KB; we allow 32 KB each)."""
    d = make_daemon(top={"concurrency": 1000})
    base = d.rss_kib()
    clients = []
    try:
        for _ in range(200):
            c = d.client()
            c.connect()
            clients.append(c)
        assert round_trip(clients[-1], b"z") == b"z"
        time.sleep(0.3)
        grown = d.rss_kib() - base
        assert grown < 200 * 32, "200 idle relays cost %d KiB" % grown
    finally:
        for c in clients:
            c.close()


@pytest.mark.parametrize("payload", [b"\x16\x03\x01\x00\x00", b"\x16\x03\x01\xff\xff",
                                     b"\x16\x03\x03\x02\x00", b"\x16\x04"])
def test_impossible_record_headers_fronted_early(daemon, backend, payload):
    """Record headers no Telegram hello has (length 0, > 16 KB, version 03 03,
    bad version byte) are fronted without waiting for more bytes."""
    with raw_connect(daemon.addr) as s:
        s.sendall(payload)
        conn = backend_conn_for(backend, s, 1.5)
        assert conn is not None, "%s held back (not fronted within 1.5 s)" % payload.hex()
        assert wait_data(backend, conn, payload, 2) == payload
        assert not sees_eof(s, 0.2)


def test_server_hello_shape(daemon, fakedc):
    """ServerHello picks a cipher the client offered (not GREASE), says TLS
    1.3 and carries an X25519 key share, like mtg."""
    with daemon.client() as c:
        c.connect()
        ans = c.server_answer
        body = ans[9:5 + int.from_bytes(ans[3:5], "big")]
        sid_len = body[34]
        p = 35 + sid_len
        cipher = int.from_bytes(body[p:p + 2], "big")
        assert cipher & 0x0f0f != 0x0a0a, "GREASE cipher chosen"
        assert cipher == 0x1301, "cipher 0x%04x, want the first non-GREASE offer" % cipher
        assert body[p + 2] == 0, "compression"
        exts = body[p + 5:]
        found = {}
        while len(exts) >= 4:
            t, ln = int.from_bytes(exts[:2], "big"), int.from_bytes(exts[2:4], "big")
            found[t] = exts[4:4 + ln]
            exts = exts[4 + ln:]
        assert found.get(0x002b) == b"\x03\x04"
        ks = found.get(0x0033)
        assert ks is not None and ks[:4] == b"\x00\x1d\x00\x20" and len(ks) == 36


def test_records_toward_client_within_tls_limit(daemon, fakedc):
    with daemon.client() as c:
        c.connect()
        data = os.urandom(1 << 20)
        assert round_trip(c, data) == data
        assert 0 < c.max_record_seen <= 16384 + 256, c.max_record_seen


def test_no_init_frame_closes_after_handshake_timeout(make_daemon, fakedc):
    """Valid hello, then silence: closed once the handshake deadline passes
    (not fronted: the ServerHello is already out)."""
    d = make_daemon(tables={"network.timeout": {"handshake": "1s"}})
    before = fakedc.connection_count
    with d.client() as c:
        c.open()
        c.send_hello()
        c.read_server_answer()
        t0 = time.monotonic()
        assert c.wait_closed(10), "no close 10 s after a 1 s handshake deadline"
        assert time.monotonic() - t0 >= 0.5
    assert fakedc.connection_count == before


def test_unknown_dc_closed(daemon, fakedc):
    before = fakedc.connection_count
    with daemon.client(dc=99) as c:
        c.connect()
        assert c.wait_closed(5), "unknown DC 99 not closed"
    assert fakedc.connection_count == before


def test_unknown_dc_fallback(make_daemon, fakedc):
    d = make_daemon(top={"allow-fallback-on-unknown-dc": True})
    marker = b"fallback-" + os.urandom(6).hex().encode()
    with d.client(dc=99) as c:
        c.connect()
        assert round_trip(c, marker) == marker
    conn = fakedc.conn_with_head(marker)
    assert conn is not None and conn.dc == 2, "fallback went to DC %r" % (conn and conn.dc)


def test_anti_replay_disabled_relays_replay(make_daemon, fakedc):
    d = make_daemon(tables={"defense.anti-replay": {"enabled": False}})
    c = d.client()
    hello = c.build_hello()
    for _ in range(2):
        with d.client() as c2:
            c2.open()
            c2.send_hello(hello)
            c2.read_server_answer()
            c2.start_obfs2()
            assert round_trip(c2, b"again") == b"again"


def test_wider_time_tolerance(make_daemon, fakedc, backend):
    d = make_daemon(top={"tolerate-time-skewness": "20s"})
    with d.client(ts=int(time.time()) - 15) as c:
        c.connect()
        assert round_trip(c, b"skew") == b"skew"
    hello = tgclient.build_client_hello(d.secret[1:17], b"example.com", ts=int(time.time()) - 40)
    with raw_connect(d.addr) as s:
        s.sendall(hello)
        assert_fronted(backend, s, hello)


def test_dual_stack_bind_reports_ipv4_client(make_daemon, fakedc, backend):
    """Bound to [::], an IPv4 client must still appear with its IPv4 address
    in the PROXY header (TCP4, or TCP6 with a v4-mapped address)."""
    try:
        d = make_daemon(bind_host="::")
    except RuntimeError as e:
        pytest.skip("cannot bind [::]: %s" % e)
    backend.reply_on_data = b"ok"
    with raw_connect(("127.0.0.1", d.port)) as s:
        s.sendall(b"GET /ds HTTP/1.1\r\n\r\n")
        conn = backend_conn_for(backend, s)
        assert conn is not None, "not fronted"
        h = conn.proxy
        assert h is not None
        assert h.sport == s.getsockname()[1]
        assert v4(h.src) == "127.0.0.1", h
        assert v4(h.dst) == "127.0.0.1", h
        assert recv_n(s, 2) == b"ok"
        assert bytes(conn.data) == b"GET /ds HTTP/1.1\r\n\r\n"


def test_ipv6_client_ipv4_backend(make_daemon, fakedc, backend):
    """Mixed family the other way: IPv6 client, IPv4 fronting target."""
    try:
        d = make_daemon(bind_host="::1")
    except RuntimeError as e:
        pytest.skip("no IPv6 loopback: %s" % e)
    backend.reply_on_data = b"ok"
    with raw_connect(d.addr) as s:
        s.sendall(b"GET /mix HTTP/1.1\r\n\r\n")
        conn = backend_conn_for(backend, s)
        assert conn is not None, "not fronted"
        h = conn.proxy
        assert h is not None, conn.proxy_error
        assert h.src == "::1" and h.family == "TCP6", h
        assert v4(h.dst) == "127.0.0.1" and h.dport == backend.port, h
        assert recv_n(s, 2) == b"ok"


def test_parallel_heavy_round_trips(daemon, fakedc):
    """16 clients each push 512 KiB through at the same time."""
    import threading
    errors = []

    def one():
        try:
            with daemon.client() as c:
                c.connect()
                data = os.urandom(512 * 1024)
                if round_trip(c, data, chunk=40000) != data:
                    errors.append("corrupted")
        except Exception as e:
            errors.append(repr(e))
    ts = [threading.Thread(target=one) for _ in range(16)]
    for t in ts:
        t.start()
    join_all(ts, 60, "client")
    assert not errors, errors


def test_fronting_target_down(make_daemon, fakedc):
    """Fronting target unreachable: the probe's connection ends (no hang),
    the daemon keeps serving."""
    dead = refused_addr()
    d = make_daemon(backend_addr=dead)
    with raw_connect(d.addr) as s:
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert sees_eof(s, 5), "probe left hanging while the fronting target is down"
    with d.client() as c:
        c.connect()
        assert round_trip(c, b"alive") == b"alive"
