"""How a Telegram session ends on the wire. A FakeTLS client looks, to a
censor, like a TLS client of the site, and a Go TLS server (Caddy) ends
every connection whose handshake completed with an encrypted close_notify
(crypto/tls Conn.Close) and then its FIN: one 24-byte application-data
record. So does tgfront, when the DC ends the session and when it ends the
session itself (idle timeout, drain, a DC it cannot reach); a record the
client breaks (a version, length or type Go's record layer refuses) gets
Go's fatal alert first. Go counts the handshake complete
once it has read the client's Finished, which in FakeTLS is the client's
first application-data record: before it, a close is a bare FIN, and a
broken record gets the alert alone. A client that has not taken the bytes
already sent gets nothing more: its socket is closed as it is. Client bytes
tgfront never read do not turn the FIN into a reset. The records are read
off the wire here, not through the client's stream."""

import fcntl
import os
import signal
import socket
import struct
import subprocess
import termios
import time

import pytest

import tgclient
from helpers import CLOSE_NOTIFY, assert_one_close_notify, is_close_notify, round_trip


def closing(c, timeout=10.0):
    try:
        return c.recv_closing_records(timeout)
    except tgclient.ProtocolError as e:
        pytest.fail(str(e))


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


def proven(d):
    """A client past the ServerHello that has sent its ChangeCipherSpec and
    nothing else: in TLS terms its Finished is still due."""
    c = d.client()
    c.open()
    c.send_hello()
    c.read_server_answer()
    c.sock.sendall(tgclient.CCS)
    return c


def assert_bare_fin(recs, what):
    assert recs == [], "%s: %d records before the FIN, want none (Go's Close sends " \
        "nothing before the handshake is complete): %s" % (
            what, len(recs), [r.hex() for _, r, _ in recs])


def assert_opaque_records(recs, n, what):
    """n records shaped like an encrypted alert (the client's key stream is
    not known yet, so their payload is not checked)."""
    assert len(recs) == n, "%s: %d records before the FIN, want %d: %s" % (
        what, len(recs), n, [r.hex() for _, r, _ in recs])
    for _, rec, _ in recs:
        assert len(rec) == 24 and rec[:5] == CLOSE_NOTIFY, "%s: not alert-shaped: %s" % (
            what, rec.hex())


def test_handshake_timeout_before_the_client_finished_is_a_bare_fin(make_daemon, fakedc):
    """The client proved the secret and got the answer but sent only its
    ChangeCipherSpec: a Go server times out waiting for the Finished and
    closes without close_notify."""
    d = make_daemon(tables={"network.timeout": {"handshake": "1s"}})
    with proven(d) as c:
        t0 = time.monotonic()
        assert_bare_fin(closing(c, 6), "handshake timeout after the CCS")
        assert time.monotonic() - t0 >= 0.8, "closed before the handshake timeout"


def test_client_fin_before_its_finished_is_answered_with_a_bare_fin(make_daemon, fakedc):
    d = make_daemon()
    with proven(d) as c:
        c.sock.shutdown(socket.SHUT_WR)
        assert_bare_fin(closing(c, 5), "client FIN after the CCS")


def test_second_sigterm_before_the_client_finished_is_a_bare_fin(make_daemon, fakedc):
    d = make_daemon()
    with proven(d) as c:
        time.sleep(0.2)
        d.signal(signal.SIGTERM)
        time.sleep(0.2)
        d.signal(signal.SIGTERM)
        assert_bare_fin(closing(c, 5), "second SIGTERM after the CCS")
    assert d.wait(10) == 0


def test_bad_record_as_the_second_flight_gets_the_alert_alone(make_daemon, fakedc):
    """A wrong record version where the Finished should be: Go's fatal
    alert (protocol_version), and no close_notify, the handshake never
    completed: one record, then the FIN."""
    d = make_daemon()
    with proven(d) as c:
        c.sock.sendall(b"\x17\x03\x01\x00\x05hello")
        assert_opaque_records(closing(c, 5), 1, "bad record before the Finished")


def test_handshake_timeout_after_the_client_finished_ends_with_one_record(make_daemon, fakedc):
    """A first application-data record (the Finished, in TLS terms) too
    short for the init frame: the handshake is complete, so the timeout's
    close sends close_notify, one 24-byte record (random: the client's key
    stream is not known without the init frame)."""
    d = make_daemon(tables={"network.timeout": {"handshake": "1s"}})
    with proven(d) as c:
        c.sock.sendall(b"\x17\x03\x03\x00\x0a" + os.urandom(10))
        assert_opaque_records(closing(c, 6), 1, "handshake timeout after the Finished")


def test_bad_record_ends_with_alert_then_close_notify(make_daemon, fakedc):
    """A record Go's stack refuses gets its fatal alert and then, from
    Conn.Close, the close_notify: two 24-byte records, then the FIN. Both
    are encrypted on the client's stream, each as tgfront's close_notify
    is."""
    d = make_daemon()
    with d.client() as c:
        c.connect()
        assert round_trip(c, b"ok") == b"ok"
        c.sock.sendall(b"\x17\x03\x01\x00\x05hello")   # wrong record version
        recs = closing(c, 5)
        assert len(recs) == 2, "%d records before the FIN, want 2: %s" % (
            len(recs), [r.hex() for _, r, _ in recs])
        for i, (_, rec, plain) in enumerate(recs):
            assert is_close_notify(rec, plain), "record %d: %s (decrypted %s)" % (
                i, rec.hex(), plain.hex())


def test_bad_record_followed_by_more_bytes_ends_as_the_site_does(make_daemon, fakedc):
    """Go's record layer stops reading at a bad record: the site's alert
    and close_notify, then, with 64 KiB behind the record unread, its close
    is a RST (tests/probes' "bad record inside a session" against Caddy).
    tgfront does not read past the record either, nor discard the rest."""
    d = make_daemon()
    with d.client() as c:
        c.connect()
        assert round_trip(c, b"ok") == b"ok"
        c.sock.sendall(b"\x17\x03\x01\x00\x05hello" + os.urandom(65536))
        raw = bytearray()
        reset = False
        c.sock.settimeout(5)
        while True:
            try:
                b = c.sock.recv(65536)
            except ConnectionResetError:
                reset = True
                break
            if not b:
                break
            raw += b
        assert len(raw) == 48 and raw[:5] == CLOSE_NOTIFY and raw[24:29] == CLOSE_NOTIFY, \
            "want the alert and close_notify: %s" % bytes(raw).hex()
        assert reset, "a FIN after the records: the site resets here"


def assert_alert_then_close_notify(recs, what):
    assert len(recs) == 2, "%s: %d records before the FIN, want 2: %s" % (
        what, len(recs), [r.hex() for _, r, _ in recs])
    for i, (_, rec, plain) in enumerate(recs):
        assert is_close_notify(rec, plain), "%s: record %d: %s (decrypted %s)" % (
            what, i, rec.hex(), plain.hex())


def test_oversized_record_gets_record_overflow_at_its_header(make_daemon, fakedc):
    """Go refuses a record longer than 16384 + 256 from its header alone
    (record_overflow): alert and close_notify without waiting for the body.
    16640 bytes still pass."""
    d = make_daemon()
    with d.client() as c:
        c.connect()
        big = os.urandom(16640)
        c.sock.sendall(b"\x17\x03\x03\x41\x00" + c._enc.update(big))
        assert c.recv_exact(len(big)) == big
        c.sock.sendall(b"\x17\x03\x03\x41\x01")   # 16641, no body follows
        assert_alert_then_close_notify(closing(c, 5), "record of 16641 bytes")


@pytest.mark.parametrize("rec", [b"\x15\x03\x03\x00\x02\x01\x00",
                                 b"\x16\x03\x03\x00\x04\x18\x00\x00\x00",
                                 b"\x14\x03\x03\x00\x01\x02"],
                         ids=["alert", "handshake", "ccs-02"])
def test_record_of_a_type_go_refuses_gets_the_alert(make_daemon, fakedc, rec):
    """After the handshake only application data (and a CCS of 01, which Go
    ignores) passes: anything else fails Go's record layer, alert then
    close_notify. Once the record is whole, not at its header."""
    d = make_daemon()
    with d.client() as c:
        c.connect()
        assert round_trip(c, b"ok") == b"ok"
        c.sock.sendall(rec[:-1])
        assert not c.wait_closed(0.5), "closed before the record was complete"
        c.sock.sendall(rec[-1:])
        assert_alert_then_close_notify(closing(c, 5), "record %s" % rec.hex())


def test_oversized_record_before_the_finished_gets_the_alert_alone(make_daemon, fakedc):
    d = make_daemon()   # handshake timeout 3 s
    with proven(d) as c:
        t0 = time.monotonic()
        c.sock.sendall(b"\x17\x03\x03\xff\xff")
        assert_opaque_records(closing(c, 5), 1, "oversized first record")
        assert time.monotonic() - t0 < 1.5, "the alert waited for the handshake timeout"


def test_client_bytes_during_the_dc_dial_do_not_turn_the_fin_into_a_reset(make_daemon, fakedc):
    """The DC dial hangs (a SOCKS5 proxy that never answers), the client
    sends a record behind its init frame, which tgfront does not read
    while it dials. The dial's timeout ends the session with close_notify
    and a FIN, not a reset."""
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(16)   # never accepted, never answered
    try:
        d = make_daemon(tables={"network": {"proxies": ["socks5://127.0.0.1:%d" %
                                                        mute.getsockname()[1]]},
                                "network.timeout": {"tcp": "1s"}})
        with d.client() as c:
            c.connect()
            time.sleep(0.2)
            c.send(os.urandom(500))
            assert_one_close_notify(closing(c, 10), "DC dial timeout with client bytes unread")
    finally:
        mute.close()


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


def unread_at_daemon(d, sock):
    """Bytes queued, unread, in the daemon's socket for this client (ss's
    Recv-Q of the daemon's end), or None when it is not found."""
    cport = sock.getsockname()[1]
    out = subprocess.run(["ss", "-tnH", "state", "established",
                          "( sport = :%d and dport = :%d )" % (d.port, cport)],
                         capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


def unsent_at_client(sock):
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]


def test_idle_close_behind_a_dc_that_does_not_read_is_a_fin(make_daemon, fakedc):
    """The DC stops reading and tgfront, its buffers toward the DC full,
    stops reading the client, which has bytes queued in tgfront's socket
    (and none left in its own): the idle timeout's close still ends with
    close_notify and a FIN, not the reset a close with unread bytes gives."""
    d = make_daemon(tables={"network.timeout": {"idle": "2s"}})
    fakedc.mode = "stall"
    fakedc.stall_release.clear()
    try:
        with d.client() as c:
            c.connect()
            stalled_since = None
            t0 = time.monotonic()
            while time.monotonic() - t0 < 10:
                q = unread_at_daemon(d, c.sock)
                if q and unsent_at_client(c.sock) == 0:
                    stalled_since = stalled_since or time.monotonic()
                    if time.monotonic() - stalled_since > 0.3:
                        break   # tgfront has stopped reading, the client sent all
                    time.sleep(0.05)
                    continue
                stalled_since = None
                if unsent_at_client(c.sock) == 0:
                    c.send(os.urandom(16384))
                else:
                    time.sleep(0.02)
            else:
                pytest.fail("never had bytes queued unread at tgfront with none left at the client")
            assert_one_close_notify(closing(c, 10), "idle close behind a stalled DC")
    finally:
        fakedc.mode = "echo"
        fakedc.stall_release.set()


def test_drain_with_slow_reader_keeps_the_stream_whole(make_daemon, fakedc):
    """The DC blasts a 16-byte pattern; after SIGTERM the client stops
    reading, so tgfront holds bytes it could not write (down.len) when the
    drain deadline comes. Just before it the client takes one small read:
    the socket then has room for a 24-byte record but not enough to wake
    tgfront's writer, so a close_notify sent now would land behind a record
    cut short, inside the stream. Nothing may be added: every byte the
    client gets decrypts to the DC's pattern, and the stream ends inside a
    record (the FIN cut it)."""
    d = make_daemon()
    fakedc.mode = "blast"
    try:
        with d.client() as c:
            c.connect()
            raw = bytearray()
            c.sock.settimeout(10)
            while len(raw) < 200000:
                b = c.sock.recv(65536)
                assert b, "EOF after %d bytes" % len(raw)
                raw += b
            d.signal(signal.SIGTERM)
            t_end = time.monotonic()
            time.sleep(2.0)            # stalled: every buffer fills
            raw += c.sock.recv(16384)  # room for a record, not a wakeup
            time.sleep(1.8)            # past the 3 s drain deadline
            while True:
                try:
                    b = c.sock.recv(1 << 20)
                except ConnectionResetError:
                    pytest.fail("reset after %d bytes" % len(raw))
                if not b:
                    break
                raw += b
            assert time.monotonic() - t_end >= 2.5, "closed before the drain deadline"
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
    # os.urandom(16) * 4096 per 64 KiB chunk: periodic within each chunk
    bad = [i for i in range(16, len(plain)) if i % 65536 >= 16 and plain[i] != plain[i - 16]]
    assert not bad, "%d of %d bytes break the DC's pattern, first at %d (stream end %d)" % (
        len(bad), len(plain), bad[0], len(plain))
    assert lens[-1] != 19, "the stream ends with a 19-byte record (a close_notify) " \
        "although bytes were still queued"
