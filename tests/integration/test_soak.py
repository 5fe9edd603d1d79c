"""A short mixed-traffic soak: many clients at once doing what real clients,
browsers, scanners and broken networks do (valid relays, garbage, early
close, RST, half-close, stalls). Afterwards the daemon is alive, serves,
has released every descriptor, and its memory is bounded: no leak, no
hang, no crash (and, under the ASan build, no sanitizer report).

The memory bound: the daemon's VmRSS after the soak is at most its VmRSS
before it plus what a daemon that leaks nothing may still hold, namely the
anti-replay filter (its configured max-size: its pages are touched as it
fills), three pool blocks (client read, DC read, handshake) for each client
that was open at once, and 512 KiB for the allocator and stacks. About a
thousand connections go through in the default 12 s, so a leak of a couple
of KiB per connection goes over. Under a sanitizer build RSS means nothing
(ASan's quarantine holds freed memory): LeakSanitizer's report at exit, which
the fixture checks, stands in for it."""

import os
import random
import socket
import struct
import threading
import time

from conftest import tgfront_bin
from helpers import join_all, raw_connect, round_trip

CLIENTS = 24                     # at once, per round
POOL_BLOCK = 16448               # src/pool.h POOL_BLOCK_SIZE
REPLAY_FILTER = 1024 * 1024      # the fixture's [defense.anti-replay] max-size
SLACK = 512 * 1024


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def sanitizer_build():
    with open(tgfront_bin(), "rb") as f:
        return b"AddressSanitizer" in f.read()


def rss_bound_kib(base_kib):
    return base_kib + (REPLAY_FILTER + 3 * CLIENTS * POOL_BLOCK + SLACK) // 1024


def one_client(d, rng, errors):
    kind = rng.choice(["relay", "relay", "garbage", "http", "early_close", "rst",
                       "half_hello", "stall", "replay_like"])
    try:
        if kind == "relay":
            with d.client() as c:
                c.connect()
                data = os.urandom(rng.choice([1, 100, 5000, 70000]))
                if round_trip(c, data) != data:
                    errors.append("relay corrupted data")
        elif kind == "garbage":
            with raw_connect(d.addr) as s:
                s.sendall(os.urandom(rng.randint(1, 3000)))
                s.shutdown(socket.SHUT_WR)
                s.settimeout(3)
                try:
                    while s.recv(65536):
                        pass
                except OSError:
                    pass
        elif kind == "http":
            with raw_connect(d.addr) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
                s.settimeout(0.5)
                try:
                    s.recv(100)
                except OSError:
                    pass
        elif kind == "early_close":
            c = d.client()
            c.open()
            c.build_hello()
            c.sock.sendall(c.hello[:rng.randint(1, len(c.hello) - 1)])
            c.close()
        elif kind == "rst":
            with d.client() as c:
                c.connect()
                c.send(os.urandom(1000))
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif kind == "half_hello":
            with d.client() as c:
                c.open()
                c.build_hello()
                c.sock.sendall(c.hello[:10])
                time.sleep(rng.random() * 0.3)
                c.sock.sendall(c.hello[10:])
                c.read_server_answer()
                c.start_obfs2(b"x" * 10)
                c.sock.shutdown(socket.SHUT_WR)
        elif kind == "stall":
            with d.client() as c:
                c.connect()
                c.send(os.urandom(200000))   # and never read the echo
                time.sleep(0.3)
        elif kind == "replay_like":
            with d.client() as c:
                hello = c.build_hello()
                c.open()
                c.sock.sendall(hello)
                c.read_server_answer()
            with raw_connect(d.addr) as s:
                s.sendall(hello)        # the same hello again: fronted
                s.settimeout(0.5)
                try:
                    s.recv(10)
                except OSError:
                    pass
    except (OSError, EOFError) as e:
        # resets and timeouts are part of the game for the abusive kinds
        if kind == "relay":
            errors.append("relay failed: %r" % (e,))


def test_mixed_traffic_soak(make_daemon, fakedc, backend):
    d = make_daemon(tables={"network.timeout": {"handshake": "2s", "idle": "3s"}})
    backend.reply_on_data = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    assert 'max-size = "1mib"' in d.config_text, "REPLAY_FILTER must match the config"
    time.sleep(0.2)
    base_fds = fd_count(d.pid())
    base_rss = d.rss_kib()
    rng = random.Random(1234)
    errors = []
    deadline = time.monotonic() + float(os.environ.get("SOAK_SECONDS", "12"))
    rounds = 0
    while time.monotonic() < deadline:
        threads = [threading.Thread(target=one_client,
                                    args=(d, random.Random(rng.random()), errors))
                   for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        join_all(threads, 30, "soak client")
        rounds += 1
        assert d.proc.poll() is None, "tgfront died:\n" + d.stderr()[-3000:]
    assert not errors, errors[:5]
    # everything drains: descriptors back to the baseline
    settle = time.monotonic() + 10
    while fd_count(d.pid()) > base_fds and time.monotonic() < settle:
        time.sleep(0.2)
    assert fd_count(d.pid()) <= base_fds, "descriptors leaked: %d -> %d" % (
        base_fds, fd_count(d.pid()))
    rss = d.rss_kib()
    if not sanitizer_build():
        assert rss <= rss_bound_kib(base_rss), (
            "VmRSS %d KiB after %d connections, started at %d KiB; a daemon that leaks "
            "nothing stays within %d KiB" % (rss, rounds * CLIENTS, base_rss,
                                             rss_bound_kib(base_rss)))
    with d.client() as c:
        c.connect()
        assert round_trip(c, b"after the soak") == b"after the soak"
    assert rounds >= 3
