"""Process-level behaviour: SIGTERM drain, IPv6 bind, garbage storms, metrics."""

import os
import signal
import socket
import threading
import time
import urllib.request

import pytest

from fronting_backend import FrontingBackend
from helpers import assert_fronted, join_all, raw_connect, recv_n, round_trip


def test_sigterm_drain(make_daemon, fakedc):
    d = make_daemon()
    c = d.client().connect()
    assert round_trip(c, b"before") == b"before"
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    # new connections are refused soon after the signal (10 s: the
    # daemon takes it late on a busy machine; the drain counts from then)
    refused = False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            s = raw_connect(d.addr, 0.5)
            s.close()
        except (ConnectionRefusedError, ConnectionResetError):
            # Reset: the connect was queued on the listener as it closed.
            refused = True
            break
        time.sleep(0.05)
    assert refused, "listener still accepting 10 s after SIGTERM"
    # the open relay keeps working for a moment
    data = os.urandom(50000)
    assert round_trip(c, data) == data, "relay broken right after SIGTERM"
    assert d.proc.poll() is None, "exited while a relay was active"
    c.close()
    rc = d.wait(12)
    took = time.monotonic() - t0
    assert rc is not None, "still running 12 s after SIGTERM"
    assert rc == 0, "exit status %r after SIGTERM" % rc
    assert took < 12


def test_sigterm_with_idle_connection_bounded(make_daemon, fakedc, backend):
    """Open relays and half-done handshakes do not keep the process alive
    for ever: it exits 0 in bounded time."""
    d = make_daemon(tables={"network.timeout": {"handshake": "2s"}})
    c = d.client().connect()
    assert round_trip(c, b"x") == b"x"
    half = raw_connect(d.addr)
    half.sendall(b"\x16\x03\x01\x02")
    time.sleep(0.1)
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    rc = d.wait(15)
    took = time.monotonic() - t0
    c.close()
    half.close()
    assert rc == 0, "exit status %r (None = still running after 15 s)" % rc
    assert took < 15


def test_sigint_exits_zero(make_daemon):
    d = make_daemon()
    d.signal(signal.SIGINT)
    assert d.wait(5) == 0


def test_ipv6_bind_and_proxy_header(make_daemon, fakedc):
    try:
        b6 = FrontingBackend("::1").start()
    except OSError:
        pytest.skip("no IPv6 loopback")
    try:
        d = make_daemon(bind_host="::1", backend_addr=b6.addr)
        b6.reply_on_data = b"v6 ok"
        with raw_connect(d.addr) as s:
            req = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
            s.sendall(req)
            conn = assert_fronted(b6, s, req, family="TCP6")
            assert conn.proxy.src == "::1"
            assert recv_n(s, 5) == b"v6 ok"
        # and a FakeTLS client over IPv6 is relayed
        with d.client() as c:
            c.connect()
            assert round_trip(c, b"six") == b"six"
    finally:
        b6.stop()


def _garbage_conn(addr, i):
    try:
        s = raw_connect(addr, 3)
    except OSError:
        return
    try:
        kind = i % 6
        if kind == 0:
            pass                                  # connect, close at once
        elif kind == 1:
            s.sendall(os.urandom(1 + i % 700))
        elif kind == 2:
            s.sendall(b"\x16\x03\x01" + os.urandom(i % 50))
        elif kind == 3:
            s.sendall(b"\x16\x03\x01\xff\xff" + os.urandom(2000))
        elif kind == 4:
            # RST instead of FIN
            s.sendall(b"\x16\x03\x01\x02\x00\x01")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        else:
            s.sendall(b"GET /" + os.urandom(20).hex().encode() + b" HTTP/1.0\r\n\r\n")
    except OSError:
        pass
    finally:
        s.close()


def test_survives_garbage_storm(make_daemon, fakedc):
    d = make_daemon(tables={"network.timeout": {"handshake": "1s"}})
    threads = [threading.Thread(target=_garbage_conn, args=(d.addr, i)) for i in range(200)]
    for t in threads:
        t.start()
    join_all(threads, 10, "garbage client")
    assert d.proc.poll() is None, "daemon died:\n" + d.stderr()[-3000:]
    with d.client() as c:
        c.connect()
        data = os.urandom(100000)
        assert round_trip(c, data) == data


def _metrics(d):
    url = "http://127.0.0.1:%d/" % d.stats_port
    with urllib.request.urlopen(url, timeout=5) as r:
        assert r.status == 200
        return r.read().decode()


def _samples(text):
    """{'name{labels}': value} from Prometheus text."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, val = line.rpartition(" ")
        out[key] = float(val)
    return out


def _sum(samples, name):
    return sum(v for k, v in samples.items()
               if k == name or k.startswith(name + "{") or k == name + "_total"
               or k.startswith(name + "_total{"))


def test_metrics(make_daemon, fakedc, backend):
    d = make_daemon()
    backend.reply_on_data = b"x"
    payload = os.urandom(5000)
    c = d.client()
    hello = c.build_hello()
    with c:
        c.connect()
        assert round_trip(c, payload) == payload
        with raw_connect(d.addr) as s:
            s.sendall(b"GET / HTTP/1.1\r\n\n")
            assert recv_n(s, 1) == b"x"
            text = _metrics(d)
            live = _samples(text)
    # mtg's names; counters carry _total, as Prometheus stores mtg's.
    for name in ("mtg_client_connections gauge", "mtg_domain_fronting_total counter",
                 "mtg_telegram_connections gauge", "mtg_telegram_traffic_total counter",
                 "mtg_domain_fronting_traffic_total counter",
                 "mtg_domain_fronting_connections gauge",
                 "mtg_concurrency_limited_total counter", "mtg_replay_attacks_total counter"):
        assert "# TYPE %s\n" % name in text, "metric %s missing from:\n%s" % (name, text[:2000])
    assert _sum(live, "mtg_client_connections") >= 2
    assert _sum(live, "mtg_telegram_connections") == 1
    assert _sum(live, "mtg_domain_fronting_connections") == 1
    assert _sum(live, "mtg_domain_fronting") == 1
    # a replay is counted
    with raw_connect(d.addr) as s:
        s.sendall(hello)
        assert recv_n(s, 1) == b"x"
    # everything closed: gauges back to zero, counters kept
    deadline = time.monotonic() + 5
    while True:
        after = _samples(_metrics(d))
        if (_sum(after, "mtg_client_connections") == 0 and
                _sum(after, "mtg_domain_fronting_connections") == 0 and
                _sum(after, "mtg_telegram_connections") == 0) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert _sum(after, "mtg_client_connections") == 0, "client gauge leaks: %r" % after
    assert _sum(after, "mtg_domain_fronting_connections") == 0
    assert _sum(after, "mtg_telegram_connections") == 0
    assert _sum(after, "mtg_domain_fronting") == 2
    assert _sum(after, "mtg_replay_attacks") == 1
    up = sum(v for k, v in after.items()
             if k.startswith("mtg_telegram_traffic") and 'direction="from_client"' in k)
    down = sum(v for k, v in after.items()
               if k.startswith("mtg_telegram_traffic") and 'direction="to_client"' in k)
    assert up >= len(payload) and down >= len(payload), (up, down)
