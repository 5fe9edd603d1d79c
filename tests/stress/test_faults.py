"""Issue 6, faults: the Telegram DC refusing, black-holing, or resetting
mid-stream; the fronting target (Caddy) down or slow. Each case ends
cleanly for the client within a bound, is counted under its close reason
in the daemon's metrics (connections_closed_total{reason}, src/metrics.c), leaves
no descriptor behind, and the daemon serves other clients meanwhile (a
FakeTLS client to a working DC and a fronted HTTP request)."""

import socket
import struct
import threading
import time

import pytest

from conftest import closed_delta, fd_count, figure, scrape, wait_fds
from fakedc import FakeDC
from fronting_backend import FrontingBackend
from helpers import raw_connect, refused_addr

N = 5                 # faulty connections per case, at once
BAD_DC, GOOD_DC = 2, 3
HTTP_REQ = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
HTTP_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def dead_port():
    """A loopback port nothing listens on (connect gets RST: refused): a
    socket bound there that never listens, kept for the session so that no
    bind(0) can hand the port out meanwhile (helpers.refused_addr)."""
    return refused_addr()


def black_hole():
    """A listener whose accept queue is full and that never accepts: Linux
    drops further SYNs, so a connect to it neither completes nor fails.
    Returns (addr, sockets to keep open). Checked, not assumed."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    addr = lsock.getsockname()
    keep = [lsock]
    for _ in range(8):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(addr)
        keep.append(s)
        time.sleep(0.05)
        try:
            s.getpeername()
            continue        # this one got in: the queue has room left
        except OSError:
            pass
        time.sleep(0.5)
        try:
            s.getpeername()
        except OSError:
            return addr, keep   # SYN dropped: the hole is ready
    for s in keep:
        s.close()
    pytest.fail("could not build a black-holed listener (SYNs were not dropped)")


def ending(sock, timeout):
    """('fin' | 'rst' | 'open', seconds): how and when the peer ended the
    connection (data received meanwhile is discarded)."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "open", timeout
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return "fin", time.monotonic() - t0
        except ConnectionResetError:
            return "rst", time.monotonic() - t0
        except socket.timeout:
            return "open", timeout


def others_served(d, backend):
    """A Telegram client to the working DC and a fronted HTTP request both
    complete; returns a description of what failed, or None."""
    try:
        with d.client(dc=GOOD_DC, timeout=5) as c:
            c.connect(first_payload=b"bystander")
            if c.recv_exact(9) != b"bystander":
                return "bystander relay corrupted"
    except (OSError, EOFError) as e:
        return "bystander relay failed: %r" % (e,)
    if backend is not None:
        try:
            with raw_connect(d.addr) as s:
                s.sendall(HTTP_REQ)
                s.settimeout(5)
                if not s.recv(100).startswith(b"HTTP/1.1 200"):
                    return "bystander fronted request got no answer"
        except OSError as e:
            return "bystander fronted request failed: %r" % (e,)
    return None


class Case:
    """One fault case: a daemon, its baseline, the faulty clients' endings,
    the close reasons counted, and descriptors afterwards."""

    def __init__(self, name, d):
        self.name, self.d = name, d
        self.problems = []
        self.endings = []
        self.lock = threading.Lock()
        ok = others_served(d, None)
        assert ok is None, ok
        time.sleep(0.2)
        self.base_fds = fd_count(d.pid())
        self.m0 = scrape(d)

    def run(self, one, backend=None):
        """Runs one() N times at once (each returns its ending) and a
        bystander check meanwhile."""
        def wrap():
            e = one()
            with self.lock:
                self.endings.append(e)
        ts = [threading.Thread(target=wrap) for _ in range(N)]
        for t in ts:
            t.start()
        time.sleep(0.1)
        err = others_served(self.d, backend)
        if err:
            self.problems.append(err)
        for t in ts:
            t.join(30)

    def finish(self, reason, want_ending, within):
        d = self.d
        left = wait_fds(d.pid(), self.base_fds, 10)
        m1 = scrape(d)
        delta = closed_delta(self.m0, m1)
        shown = " ".join("%s@%.2fs" % e for e in sorted(self.endings, key=lambda e: e[1]))
        figure("%s: client endings" % self.name, shown)
        figure("%s: close reasons counted" % self.name, delta)
        figure("%s: daemon descriptors baseline / after" % self.name,
               "%d / %d" % (self.base_fds, left))
        if d.proc.poll() is not None:
            self.problems.append("tgfront died:\n" + d.stderr()[-3000:])
        bad = [e for e in self.endings if e[0] not in want_ending or e[1] > within]
        if bad or len(self.endings) != N:
            self.problems.append("client endings %s, want %s within %.1f s" % (
                shown, "/".join(want_ending), within))
        if not isinstance(delta, dict) or delta.get(reason, 0) < N:
            self.problems.append("close reason %s counted %s, want %d" % (
                reason, delta.get(reason, 0) if isinstance(delta, dict) else delta, N))
        if left > self.base_fds:
            self.problems.append("descriptors left: %d (baseline %d)" % (left, self.base_fds))
        assert not self.problems, "; ".join(self.problems)


def dc_daemon(make_daemon, fakedc, bad_addr, **timeouts):
    tables = {"network.timeout": dict({"handshake": "3s", "idle": "30s"}, **timeouts)}
    return make_daemon(dc_overrides={BAD_DC: ["%s:%d" % bad_addr],
                                     GOOD_DC: ["%s:%d" % fakedc.addr]},
                       tables=tables)


def telegram_client_ending(d, timeout, payload=None):
    """A proven client to the faulty DC; returns how its connection ended."""
    def one():
        try:
            with d.client(dc=BAD_DC, timeout=5) as c:
                c.connect()
                if payload is not None:
                    c.send(payload)
                    if c.recv_exact(len(payload)) != payload:
                        return "corrupt", 0
                return ending(c.sock, timeout)
        except (OSError, EOFError) as e:
            return "error %r" % (e,), 0
    return one


def test_dc_refusing(make_daemon, fakedc, backend):
    backend.reply_on_data = HTTP_OK
    d = dc_daemon(make_daemon, fakedc, dead_port())
    case = Case("DC refusing", d)
    case.run(telegram_client_ending(d, 5), backend)
    case.finish("dc_unreachable", ("fin", "rst"), 2.0)


def test_dc_black_hole(make_daemon, fakedc, backend):
    backend.reply_on_data = HTTP_OK
    addr, keep = black_hole()
    try:
        d = dc_daemon(make_daemon, fakedc, addr, tcp="1s")
        case = Case("DC black hole (tcp timeout 1 s)", d)
        case.run(telegram_client_ending(d, 6), backend)
        # the dial deadline ends it: not sooner, and not much later
        early = [e for e in case.endings if e[0] != "open" and e[1] < 0.8]
        if early:
            case.problems.append("ended before the 1 s dial timeout: %s" % early)
        case.finish("dc_unreachable", ("fin", "rst"), 3.0)
    finally:
        for s in keep:
            s.close()


class ResettingDC(FakeDC):
    """Echoes the first RESET_AFTER bytes, then resets the connection."""
    RESET_AFTER = 1000

    def _echo(self, s, c, send, recv):
        while c.bytes_in < self.RESET_AFTER:
            data = s.recv(65536)
            if not data:
                return
            c.bytes_in += len(data)
            s.sendall(send.update(recv.update(data)))
        time.sleep(0.2)    # the echo reaches the client before the reset
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_dc_resets_mid_stream(make_daemon, fakedc, backend):
    backend.reply_on_data = HTTP_OK
    rdc = ResettingDC().start()
    try:
        d = dc_daemon(make_daemon, fakedc, rdc.addr)
        case = Case("DC reset after 1000 bytes", d)
        case.run(telegram_client_ending(d, 5, payload=b"m" * ResettingDC.RESET_AFTER), backend)
        case.finish("peer_reset", ("rst", "fin"), 2.0)
    finally:
        rdc.stop()


def test_front_down(make_daemon, fakedc):
    """Caddy down: a fronted client sees what a closed port shows as closely
    as a userspace proxy can, an RST: at once for a request (the verdict is
    immediate), by the handshake deadline for a silent client."""
    d = make_daemon(backend_addr=dead_port(),
                    tables={"network.timeout": {"handshake": "2s", "idle": "30s"}})
    case = Case("front down", d)
    silent = []

    def one():
        with raw_connect(d.addr) as s:
            if not silent:
                silent.append(s)   # the first one stays silent
                return ending(s, 5)
            s.sendall(HTTP_REQ)
            e = ending(s, 5)
            return e if e[0] != "rst" or e[1] <= 1.0 else ("late rst", e[1])
    case.run(one)
    case.finish("front_unreachable", ("rst",), 4.0)


class SlowBackend(FrontingBackend):
    """Accepts at once, reads and answers only after DELAY seconds."""
    DELAY = 3.0

    def serve(self, s, c, *args):
        time.sleep(self.DELAY)
        super().serve(s, c, *args)


def test_front_slow(make_daemon, fakedc, backend):
    """Caddy slow: answers 3 s late, after our 1 s handshake deadline; the
    fronted client gets the answer (no timeout of ours cuts it) and the
    connection ends normally when both sides close."""
    slow = SlowBackend().start()
    slow.reply_on_data = HTTP_OK
    try:
        d = make_daemon(backend_addr=slow.addr,
                        tables={"network.timeout": {"handshake": "1s", "tcp": "1s",
                                                    "idle": "30s"}})
        case = Case("front slow (answers after 3 s)", d)

        def one():
            with raw_connect(d.addr, timeout=10) as s:
                t0 = time.monotonic()
                s.sendall(HTTP_REQ)
                got = b""
                s.settimeout(10)
                try:
                    while len(got) < len(HTTP_OK):
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        got += chunk
                except OSError as e:
                    return "error %r" % (e,), time.monotonic() - t0
                if got != HTTP_OK:
                    return "answer %r" % got[:40], time.monotonic() - t0
                s.shutdown(socket.SHUT_WR)
                kind, _ = ending(s, 5)
                return kind, time.monotonic() - t0
        case.run(one)
        figure("front slow: backend connections", len(slow.conns))
        case.finish("done", ("fin",), SlowBackend.DELAY + 2.0)
    finally:
        slow.stop()
