"""How a Telegram session ends on the wire. A FakeTLS client looks, to a
censor, like a TLS client of the site, and a Go TLS server (Caddy) ends
every connection whose handshake completed with an encrypted close_notify
(crypto/tls Conn.Close) and then its FIN: one 24-byte application-data
record. So does tgfront, when the DC ends the session and when it ends the
session itself (idle timeout, drain, a DC it cannot reach); a record the
client breaks gets Go's fatal alert first. A client that does not read
gets nothing more: its socket is closed as it is. The records are read off
the wire here, not through the client's stream."""

import os
import signal
import socket
import struct
import time

import pytest

import tgclient
from helpers import round_trip

CLOSE_NOTIFY = b"\x17\x03\x03\x00\x13"   # application data, 19 bytes


def is_close_notify(rec, plain):
    """A 24-byte record whose payload, on the client's stream, is the start
    of a packet that never completes (7f LL LL 00: what tgfront's
    close_notify decrypts to for the MTProto transport)."""
    return (len(rec) == 24 and rec[:5] == CLOSE_NOTIFY and len(plain) == 19 and
            plain[0] == 0x7F and plain[1] >= 64 and plain[2:4] == b"\x00\x00")


def closing(c, timeout=10.0):
    try:
        return c.recv_closing_records(timeout)
    except tgclient.ProtocolError as e:
        pytest.fail(str(e))


def assert_one_close_notify(recs, what):
    assert len(recs) == 1, "%s: %d records before the FIN, want one close_notify: %s" % (
        what, len(recs), [r.hex() for _, r, _ in recs])
    _, rec, plain = recs[0]
    assert is_close_notify(rec, plain), "%s: not a close_notify: %s (decrypted %s)" % (
        what, rec.hex(), plain.hex())


@pytest.mark.parametrize("fast", [False, True], ids=["default", "fast-mode"])
def test_idle_timeout_ends_with_one_close_notify(make_daemon, fakedc, fast):
    d = make_daemon(tables={"network.timeout": {"idle": "1s"}, "relay": {"fast-mode": fast}})
    with d.client() as c:
        c.connect()
        data = os.urandom(3000)   # a few records: the stream's offset moves
        assert round_trip(c, data) == data
        t0 = time.monotonic()
        recs = closing(c, 6)
        took = time.monotonic() - t0
        assert took >= 0.8, "closed after %.2fs, before the idle timeout" % took
        assert_one_close_notify(recs, "idle timeout")


def test_drain_deadline_ends_relay_with_close_notify(make_daemon, fakedc):
    """SIGTERM: an open relay keeps working through the drain period, then
    gets the close_notify and the FIN, and the daemon exits 0."""
    d = make_daemon()
    with d.client() as c:
        c.connect()
        assert round_trip(c, b"before") == b"before"
        d.signal(signal.SIGTERM)
        assert round_trip(c, b"during") == b"during"
        assert_one_close_notify(closing(c, 10), "drain deadline")
    assert d.wait(10) == 0


def test_second_sigterm_ends_relay_with_close_notify(make_daemon, fakedc):
    d = make_daemon()
    with d.client() as c:
        c.connect()
        assert round_trip(c, b"x") == b"x"
        d.signal(signal.SIGTERM)
        time.sleep(0.2)
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        assert_one_close_notify(closing(c, 5), "second SIGTERM")
        assert time.monotonic() - t0 < 2, "the second SIGTERM did not close at once"
    assert d.wait(10) == 0


def test_dc_unreachable_ends_with_close_notify(make_daemon, fakedc):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    d = make_daemon(dc_overrides={2: ["127.0.0.1:%d" % dead]})
    with d.client(dc=2) as c:
        c.connect()
        assert_one_close_notify(closing(c, 10), "DC unreachable")


def test_handshake_timeout_after_server_hello_ends_with_one_record(make_daemon, fakedc):
    """The client proved the secret and got the answer but never sends its
    init frame: its key stream is unknown, so the record is random, and it
    is still one 24-byte application-data record before the FIN."""
    d = make_daemon(tables={"network.timeout": {"handshake": "1s"}})
    with d.client() as c:
        c.open()
        c.send_hello()
        c.read_server_answer()
        c.sock.sendall(tgclient.CCS)
        recs = closing(c, 6)
        assert [r for _, r, _ in recs if len(r) != 24 or r[:5] != CLOSE_NOTIFY] == [], \
            "not close_notify-shaped: %s" % [r.hex() for _, r, _ in recs]
        assert len(recs) == 1, "%d records before the FIN, want 1" % len(recs)


def test_bad_record_ends_with_alert_then_close_notify(make_daemon, fakedc):
    """A record Go's stack refuses gets its fatal alert and then, from
    Conn.Close, the close_notify: two 24-byte records, then the FIN."""
    d = make_daemon()
    with d.client() as c:
        c.connect()
        assert round_trip(c, b"ok") == b"ok"
        c.sock.sendall(b"\x17\x03\x01\x00\x05hello")   # wrong record version
        recs = closing(c, 5)
        assert len(recs) == 2, "%d records before the FIN, want 2: %s" % (
            len(recs), [r.hex() for _, r, _ in recs])
        for _, rec, plain in recs:
            assert rec[:5] == CLOSE_NOTIFY and len(rec) == 24, rec.hex()
        assert is_close_notify(*recs[0][1:]), "first record: %s" % recs[0][2].hex()


def test_client_close_notify_and_fin_change_nothing(make_daemon, fakedc):
    """A client's own close_notify is one more application-data record (FakeTLS
    records carry the stream, nothing is decrypted), its FIN goes on to the
    DC, and the DC's FIN brings exactly one close_notify back."""
    d = make_daemon()
    with d.client() as c:
        c.connect()
        assert round_trip(c, b"session") == b"session"
        tail = os.urandom(19)
        c.sock.sendall(c.encrypt_records(tail))
        c.sock.shutdown(socket.SHUT_WR)
        recs = closing(c, 5)
        # echoed: it was stream bytes; then the DC's FIN and one close_notify
        assert b"".join(p for _, _, p in recs[:-1]) == tail, \
            "echo: %s" % [r.hex() for _, r, _ in recs]
        assert_one_close_notify(recs[-1:], "DC FIN after the client's")
        assert not any(is_close_notify(r, p) for _, r, p in recs[:-1])


def test_client_that_does_not_read_gets_no_close_notify(make_daemon, fakedc):
    """The DC blasts, the client reads nothing until the idle timeout: the
    bytes already queued arrive, the close_notify does not (it would come
    after bytes the client never took), and the stream just ends."""
    d = make_daemon(tables={"network.timeout": {"idle": "1s"}})
    fakedc.mode = "blast"
    try:
        with d.client() as c:
            c.open()
            c.send_hello()
            c.read_server_answer()
            c.start_obfs2()
            time.sleep(3)   # stalled for longer than the idle timeout
            raw = bytearray()
            c.sock.settimeout(10)
            while True:
                try:
                    b = c.sock.recv(1 << 20)
                except ConnectionResetError:
                    break
                if not b:
                    break
                raw += b
            assert len(raw) > 100000, "only %d bytes arrived" % len(raw)
            last = None
            at = 0
            while len(raw) - at >= 5:
                ln = struct.unpack(">H", raw[at + 3:at + 5])[0]
                if len(raw) - at - 5 < ln:
                    break
                last = bytes(raw[at:at + 5 + ln])
                at += 5 + ln
            assert last is not None
            # the blast is ramp-sized records of a few KB; a 24-byte last
            # record is the close_notify that must not be there
            assert len(last) != 24, "a 24-byte record after a stalled stream: %s" % last.hex()
    finally:
        fakedc.mode = "echo"


def test_drain_with_slow_reader_keeps_the_stream_whole(make_daemon, fakedc):
    """The DC blasts a 16-byte pattern, the client reads slowly, SIGTERM's
    drain deadline closes the relay while bytes are still queued for the
    client: nothing may be added behind them (a close_notify encrypted for
    bytes the client never got would land inside the stream). Every byte
    the client gets decrypts to the DC's pattern; the stream may end inside
    a record (the FIN cut it), or, when nothing was queued, with exactly one
    close_notify."""
    d = make_daemon()
    fakedc.mode = "blast"
    try:
        with d.client() as c:
            c.connect()
            raw = bytearray()
            c.sock.settimeout(10)
            t_end = None
            while True:
                if t_end is None and len(raw) > 200000:
                    d.signal(signal.SIGTERM)
                    t_end = time.monotonic()
                try:
                    b = c.sock.recv(8192)
                except ConnectionResetError:
                    pytest.fail("reset after %d bytes" % len(raw))
                if not b:
                    break
                raw += b
                time.sleep(0.01)
            assert t_end is not None and time.monotonic() - t_end >= 2, \
                "closed before the drain deadline"
    finally:
        fakedc.mode = "echo"
    dec = c._dec
    plain = bytearray()
    at = 0
    lens = []
    while len(raw) - at >= 5:
        assert raw[at:at + 3] == b"\x17\x03\x03", "not a record at %d: %s" % (
            at, bytes(raw[at:at + 8]).hex())
        ln = struct.unpack(">H", raw[at + 3:at + 5])[0]
        body = raw[at + 5:at + 5 + ln]
        plain += dec.update(bytes(body))
        lens.append(len(body))
        at += 5 + len(body)
    assert at == len(raw) or len(raw) - at < 5
    if lens[-1] == 19 and plain[-19] == 0x7F and plain[-17:-15] == b"\x00\x00":
        plain = plain[:-19]   # nothing was queued: one close_notify ended it
        assert at == len(raw)
    # os.urandom(16) * 4096 per 64 KiB chunk: periodic within each chunk
    bad = [i for i in range(16, len(plain)) if i % 65536 >= 16 and plain[i] != plain[i - 16]]
    assert not bad, "%d of %d bytes break the DC's pattern, first at %d (stream end %d)" % (
        len(bad), len(plain), bad[0], len(plain))
