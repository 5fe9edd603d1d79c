"""Edge cases: big and odd hellos, pipelining, FIN/RST ordering, slow peers on
both paths, secrets in logs."""

import os
import socket
import struct
import time

import pytest

import tgclient
from helpers import (assert_fronted, backend_conn_for, raw_connect, recv_n,
                     round_trip, sees_eof, wait_data)


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
        assert c.recv(1) == b"", "no EOF after the DC closed"


def test_dc_fin_after_burst_keeps_data(make_daemon, fakedc):
    """The DC sends 1 MiB and closes: the client gets every byte, then EOF."""
    d = make_daemon()
    fakedc.mode = "blast"
    fakedc.blast_bytes = 1 << 20
    try:
        with d.client() as c:
            c.connect()
            got = 0
            while True:
                b = c.recv(1 << 20)
                if not b:
                    break
                got += len(b)
            assert got == 1 << 20, "client got %d of %d bytes before EOF" % (got, 1 << 20)
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


def test_fronted_backend_fin_then_client_data(daemon, backend):
    """Backend half-closes first (FIN after its answer); the client can still
    send, and the backend still receives (its read side is open)."""
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
        backend_conn_for(backend, s)
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
