"""Issue 6, memory under floods: 4,000 half-open hellos (a valid-looking
ClientHello cut short, then silence) plus 4,000 idle relayed connections
(proven FakeTLS clients that relayed a few bytes through the fake DC, then
idle). Meanwhile a new client is served within a second, the daemon's RSS
stays within a bound, and once everything closes no descriptor is left.

Sizing for a hard limit of about 20,000 descriptors per process: the daemon
holds up to 2 per connection (16,000), the client side (this process) 8,000,
the fake DC 4,000 and the fronting backend up to 4,000, each of those two in
its own process (server_proc.py).

RSS bounds (generous; the design aims at a few KiB per connection, mtg
reports 90-160 KB): a half-open hello at most HALF_OPEN_KIB, that is one
page for its bytes and the connection's state plus half a page of slack (a
16 KiB hello block, as before issue 6, costs two pages plus the state:
8.5 KiB; the issue asks for a small hello buffer); an idle relay at most
RELAY_KIB (measured about 2.2 KiB).
"""

import os
import socket
import time

import pytest

import tgclient
from conftest import NOFILE_HARD, closed_delta, fd_count, figure, nofile_limit, scrape, wait_fds
from server_proc import ServerProc

HALF_OPEN = 4000
RELAYS = 4000
HALF_OPEN_KIB = 6
RELAY_KIB = 16
HELLO_PREFIX = 200        # bytes of a 517-byte hello record: header and the start of the body


@pytest.fixture
def servers():
    dc = ServerProc("dc")
    be = ServerProc("front")
    yield dc, be
    dc.stop()
    be.stop()


def served_in(d):
    """(echoed intact, seconds from connect to the echo): handshake, init
    frame and payload in one write, so Nagle adds nothing of its own."""
    t = time.monotonic()
    with d.client(timeout=5) as c:
        c.connect(first_payload=b"new client")
        ok = c.recv_exact(10) == b"new client"
    return ok, time.monotonic() - t


def test_half_open_hellos_and_idle_relays(make_daemon, servers, secret):
    if NOFILE_HARD < 2 * (HALF_OPEN + RELAYS) + 1000:
        pytest.fail("hard descriptor limit %d cannot hold this test (needs about %d)"
                    % (NOFILE_HARD, 2 * (HALF_OPEN + RELAYS) + 1000))
    dc, be = servers
    d = make_daemon(dc_addr=dc.addr, backend_addr=be.addr,
                    preexec_fn=nofile_limit(NOFILE_HARD),
                    top={"concurrency": 16384},
                    tables={"network.timeout": {"handshake": "600s", "idle": "300s"}})
    half, relays = [], []
    try:
        # warm up the pools and the allocator with a few of each kind
        for _ in range(20):
            ok, _ = served_in(d)
            assert ok
        hello = tgclient.build_client_hello(secret[1:17], secret[17:])
        assert len(hello) > HELLO_PREFIX
        prefix = hello[:HELLO_PREFIX]
        time.sleep(0.5)
        base_fds, base_rss = fd_count(d.pid()), d.rss_kib()
        m0 = scrape(d)

        t0 = time.monotonic()
        for _ in range(HALF_OPEN):
            s = socket.create_connection(d.addr, timeout=10)
            s.sendall(prefix)
            half.append(s)
        figure("half-open hellos opened (%d of %d bytes each)" % (HELLO_PREFIX, len(hello)),
               len(half), "in %.1f s" % (time.monotonic() - t0))
        time.sleep(1.0)     # let the daemon read every prefix
        half_fds, half_rss = fd_count(d.pid()), d.rss_kib()

        t0 = time.monotonic()
        for i in range(RELAYS):
            c = d.client(timeout=10)
            relays.append(c)
            # the payload rides with the init frame: one write, so Nagle and
            # delayed ACKs do not add 40 ms per client
            c.connect(first_payload=b"%08d" % i)
            assert c.recv_exact(8) == b"%08d" % i, "relay %d corrupted" % i
        figure("idle relays opened (handshake + 8-byte echo each)", len(relays),
               "in %.1f s" % (time.monotonic() - t0))
        time.sleep(1.0)
        full_fds, full_rss = fd_count(d.pid()), d.rss_kib()

        # The second is the daemon's; a busy machine's queue for the CPU
        # adds to it (this client is Python on a shared 2-core machine): up
        # to 3 clients, the fastest counts. A daemon slowed by what it holds
        # is slow for each of them.
        tries = []
        for _ in range(3):
            ok, took = served_in(d)
            tries.append(took)
            if not ok or took <= 1.0:
                break
        took = min(tries)
        m1 = scrape(d)
        dcs, bes = dc.stats(), be.stats()
        per_half = (half_rss - base_rss) / HALF_OPEN
        per_relay = (full_rss - half_rss) / RELAYS
        figure("new valid client served with all held", ok, "in %.3f s (tries: %s)" % (
            took, ", ".join("%.3f" % t for t in tries)))
        figure("daemon RSS KiB: baseline / +half-open / +relays",
               "%d / %d / %d" % (base_rss, half_rss, full_rss))
        figure("daemon RSS per half-open hello", "%.2f" % per_half,
               "KiB (bound %d)" % HALF_OPEN_KIB)
        figure("daemon RSS per idle relay", "%.2f" % per_relay, "KiB (bound %d)" % RELAY_KIB)
        figure("daemon descriptors: baseline / +half-open / +relays",
               "%d / %d / %d" % (base_fds, half_fds, full_fds))
        figure("fake DC connections open / fronting backend open", "%d / %d" % (
            dcs["open"], bes["open"]))
        figure("close reasons while held", closed_delta(m0, m1) or "{}")
        gauge = None if m1 is None else sum(
            v for k, v in m1.items() if k.startswith("client_connections{"))

        t0 = time.monotonic()
        for c in relays:
            c.close()
        for s in half:
            s.close()
        relays, half = [], []
        left = wait_fds(d.pid(), base_fds, 60)
        figure("daemon descriptors after all closed (baseline %d)" % base_fds, left,
               "after %.1f s" % (time.monotonic() - t0))
        figure("daemon RSS KiB after all closed", d.rss_kib())

        problems = []
        if d.proc.poll() is not None:
            problems.append("tgfront died:\n" + d.stderr()[-3000:])
        if not ok or took > 1.0:
            problems.append("new client served=%s in %.3f s (want within 1 s; %d tries: %s)" % (
                ok, took, len(tries), ", ".join("%.3f s" % t for t in tries)))
        if gauge is not None and gauge < HALF_OPEN + RELAYS:
            problems.append("client_connections gauge %d while %d held: some were closed"
                            % (gauge, HALF_OPEN + RELAYS))
        if dcs["ready"] < RELAYS + 20 or dcs["bad"]:
            problems.append("fake DC saw %d good and %d bad init frames" % (dcs["ready"], dcs["bad"]))
        if per_half > HALF_OPEN_KIB:
            problems.append("%.2f KiB per half-open hello (bound %d)" % (per_half, HALF_OPEN_KIB))
        if per_relay > RELAY_KIB:
            problems.append("%.2f KiB per idle relay (bound %d)" % (per_relay, RELAY_KIB))
        if left > base_fds:
            problems.append("descriptors left: %d (baseline %d)" % (left, base_fds))
        assert not problems, "; ".join(problems)
    finally:
        for c in relays:
            c.close()
        for s in half:
            s.close()
