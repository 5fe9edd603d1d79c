"""The authenticated path: FakeTLS handshake, obfuscated2 to the DC, relay."""

import socket
import time

import pytest

from helpers import rand, round_trip, raw_connect, assert_fronted, recv_n, refused_addr

SIZES = [1, 2, 3, 63, 64, 65, 1000, 2877, 2878, 2879, 4096, 16379, 16380,
         16384, 65536 + 7, 1 << 20]


def test_handshake_answer_is_authentic(daemon, fakedc):
    with daemon.client() as c:
        c.connect()
        ans = c.server_answer
        # ServerHello + CCS + exactly one app-data record, nothing else
        hs_len = 5 + int.from_bytes(ans[3:5], "big")
        assert ans[hs_len:hs_len + 6] == b"\x14\x03\x03\x00\x01\x01"
        assert ans[hs_len + 6:hs_len + 9] == b"\x17\x03\x03"
        assert c.recv_exact(0) == b""
        c.send(b"ping")
        assert c.recv_exact(4) == b"ping"


def test_round_trip_sizes(daemon, fakedc):
    """Random payloads of many sizes come back intact (client->DC->client)."""
    with daemon.client() as c:
        c.connect()
        for n in SIZES:
            data = rand(n)
            got = round_trip(c, data)
            assert got == data, "size %d corrupted" % n
        # size 0: nothing sent; the stream must still be usable afterwards
        assert round_trip(c, b"") == b""
        assert round_trip(c, b"x") == b"x"


@pytest.mark.parametrize("max_record", [1, 7, 2878, 16384])
def test_round_trip_record_sizes(daemon, fakedc, max_record):
    """Record boundaries carry no meaning: tiny and maximum-size records."""
    with daemon.client(max_record=max_record) as c:
        c.connect()
        data = rand(3000 if max_record < 100 else 200000)
        assert round_trip(c, data) == data


def test_first_payload_shares_record_with_frame(daemon, fakedc):
    """tdlib puts the init frame and the first message in one record."""
    with daemon.client() as c:
        first = rand(100)
        c.connect(first_payload=first)
        assert c.recv_exact(100) == first


def test_parallel_clients(daemon, fakedc):
    clients = [daemon.client().connect() for _ in range(8)]
    try:
        payloads = [rand(30000 + i) for i in range(8)]
        for c, p in zip(clients, payloads):
            c.send(p)
        for c, p in zip(clients, payloads):
            assert c.recv_exact(len(p)) == p
    finally:
        for c in clients:
            c.close()


@pytest.mark.parametrize("dc,expect", [(2, 2), (-2, 2), (4, 4), (1, 1), (5, 5), (-4, 4)])
def test_dc_number_and_tag(daemon, fakedc, dc, expect):
    marker = b"dc-test-" + rand(8).hex().encode()
    with daemon.client(dc=dc) as c:
        c.connect()
        assert round_trip(c, marker) == marker
        conn = fakedc.conn_with_head(marker)
        assert conn is not None, "fake DC never saw the marker"
    assert conn.tag == b"\xdd\xdd\xdd\xdd"
    assert conn.dc == expect, "DC id %r at the DC, want %r" % (conn.dc, expect)


def test_dc_frame_plaintext_rules(daemon, fakedc):
    """The frame toward the DC: bytes 0..55 in clear obey the client rules
    (first byte not 0xef, no HTTP/TLS/tag prefix, bytes 4..7 not zero)."""
    for _ in range(20):
        with daemon.client() as c:
            c.connect()
            c.send(b"a")
            c.recv_exact(1)
    bad = [x for x in fakedc.conns if x.head_ok is False]
    assert not bad, "%d DC frames break the plaintext rules" % len(bad)


def test_wrong_tag_is_not_relayed(daemon, fakedc):
    """An abridged tag after a valid handshake: closed, never sent to a DC."""
    before = fakedc.connection_count
    with daemon.client(tag=b"\xef\xef\xef\xef") as c:
        c.connect()
        assert c.wait_closed(5), "connection with a bad tag stays open"
    time.sleep(0.2)
    assert fakedc.connection_count == before


def test_dc_down(make_daemon, fakedc, backend):
    """DC unreachable: the client is closed after the handshake; the daemon
    keeps serving other DCs and fronting."""
    dead = refused_addr()[1]
    d = make_daemon(dc_overrides={2: ["127.0.0.1:%d" % dead],
                                  4: ["%s:%d" % fakedc.addr]})
    for _ in range(3):
        with d.client(dc=2) as c:
            c.connect()
            try:
                c.send(b"x" * 10)
            except OSError:
                pass        # already closed: fine
            assert c.wait_closed(10), "client not closed when the DC is down"
    with d.client(dc=4) as c:
        c.connect()
        assert round_trip(c, b"still alive") == b"still alive"
    with raw_connect(d.addr) as r:
        r.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert_fronted(backend, r, b"GET / HTTP/1.1\r\n\r\n")
    assert d.proc.poll() is None


def test_idle_timeout(make_daemon, fakedc):
    d = make_daemon(tables={"network.timeout": {"idle": "1s"}})
    with d.client() as c:
        c.connect()
        assert round_trip(c, b"abc") == b"abc"
        t0 = time.monotonic()
        assert c.wait_closed(10), "idle relay not closed within 10 s (idle = 1s)"
        took = time.monotonic() - t0
        assert took >= 0.8, "closed after %.2fs, before the idle timeout" % took


def test_active_relay_outlives_idle_timeout(make_daemon, fakedc):
    d = make_daemon(tables={"network.timeout": {"idle": "1s"}})
    with d.client() as c:
        c.connect()
        for _ in range(8):
            assert round_trip(c, b"tick") == b"tick"
            time.sleep(0.4)


def test_slow_reader_memory_bounded(make_daemon, fakedc):
    """The DC blasts data, the client never reads: the daemon must stop
    reading from the DC instead of queueing (RSS stays within +8 MiB)."""
    d = make_daemon()
    fakedc.mode = "blast"
    try:
        base = d.rss_kib()
        clients = []
        for _ in range(4):
            c = d.client()
            c.open()
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.send_hello()
            c.read_server_answer()
            c.start_obfs2()
            clients.append(c)
        peak = base
        t_end = time.monotonic() + 3.0
        while time.monotonic() < t_end:
            peak = max(peak, d.rss_kib())
            time.sleep(0.1)
        blasted = sum(x.bytes_out for x in fakedc.conns[-4:])
        for c in clients:
            c.close()
        # Unless more than the bound was pushed at the daemon, a daemon
        # that queues whatever it reads would pass too.
        assert blasted > 8 << 20, "the DC wrote only %d bytes: the bound proves nothing" % blasted
        assert peak - base < 8 * 1024, "RSS grew by %d KiB (DC wrote %d bytes)" % (
            peak - base, blasted)
    finally:
        fakedc.mode = "echo"


def test_concurrency_limit_fronts(make_daemon, fakedc, backend):
    """concurrency = 2: a third client is fronted (not closed); once a slot is
    free, a new client is relayed again."""
    d = make_daemon(top={"concurrency": 2})
    c1 = d.client().connect()
    c2 = d.client().connect()
    try:
        assert round_trip(c1, b"one") == b"one"
        assert round_trip(c2, b"two") == b"two"
        backend.reply_on_data = b"HTTP/1.1 400 Bad Request\r\n\r\n"
        c3 = d.client()
        c3.open()
        c3.build_hello()
        c3.sock.sendall(c3.hello)
        assert_fronted(backend, c3.sock, c3.hello)
        assert recv_n(c3.sock, 28) == b"HTTP/1.1 400 Bad Request\r\n\r\n"
        c3.close()
    finally:
        c1.close()
        c2.close()
    backend.reply_on_data = None
    # the slots free up once the daemon has torn the relays down (its DC
    # sockets close); only then must a new client be relayed again
    dc_conns = [x for x in fakedc.conns if x.head in (b"one", b"two")]
    assert fakedc.wait_for(lambda _: all(x.closed for x in dc_conns), 5)
    time.sleep(0.1)
    with d.client() as c4:
        c4.connect()
        assert round_trip(c4, b"four") == b"four"


def test_client_eof_closes_relay(daemon, fakedc):
    marker = b"eof-test-" + rand(8).hex().encode()
    with daemon.client() as c:
        c.connect()
        assert round_trip(c, marker) == marker
        conn = fakedc.conn_with_head(marker)
        c.sock.shutdown(socket.SHUT_WR)
        assert fakedc.wait_for(lambda _: conn.closed, 5), "DC side not closed after client EOF"
        assert c.wait_closed(5)


def test_dc_eof_reaches_client(daemon, fakedc):
    """When the DC closes, the client sees EOF too."""
    marker = b"dceof-test-" + rand(8).hex().encode()
    with daemon.client() as c:
        c.connect()
        assert round_trip(c, marker) == marker
        conn = fakedc.conn_with_head(marker)
        conn.sock.shutdown(socket.SHUT_RDWR)
        assert fakedc.wait_for(lambda _: conn.closed, 5)
        assert c.wait_closed(5), "client not closed after the DC closed"
