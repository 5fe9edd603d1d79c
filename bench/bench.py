#!/usr/bin/python3
"""tgfront benchmarks: throughput, CPU per GB, memory per idle connection and
handshake latency, each against a baseline measured in the same run.

Setups, all on loopback (run inside a loopback-only netns by bench/run.sh):
  direct  client -> sink                       (the kernel's loopback cost)
  relay   client -> tgfront fronting -> sink   (a plain byte relay: the
                                                same binary, no crypto)
  proxy   client -> tgfront FakeTLS/obfs2 -> sink (TLS records, AES-256-CTR
                                                twice per byte)

Usage: bench.py TGFRONT_BIN [--mib N] [--idle N] [--churn N]
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import tgclient  # noqa: E402
from sinks import SinkServer  # noqa: E402

CHUNK = 1 << 20


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def proc_cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def proc_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Daemon:
    def __init__(self, binary, dc_port, front_port, secret, extra=()):
        """extra: more secrets, written as [secrets] x0, x1, ..."""
        self.dir = tempfile.mkdtemp(prefix="tgf-bench-")
        self.port = free_port()
        cfg = os.path.join(self.dir, "config.toml")
        with open(cfg, "w") as f:
            f.write('secret = "%s"\nbind-to = "127.0.0.1:%d"\nconcurrency = 65535\n'
                    '[domain-fronting]\nhost = "127.0.0.1"\nport = %d\n'
                    '[network.timeout]\nidle = "10m"\n'
                    '[datacenters]\n2 = ["127.0.0.1:%d"]\n'
                    % (tgclient.secret_hex(secret), self.port, front_port, dc_port))
            if extra:
                f.write("[secrets]\n" + "".join('x%d = "%s"\n' % (i, tgclient.secret_hex(x))
                                                 for i, x in enumerate(extra)))
        self.log = open(os.path.join(self.dir, "stderr"), "w")
        self.proc = subprocess.Popen([binary, "run", cfg], stderr=self.log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("tgfront did not start; see " + self.log.name)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(15)


def upload(connect, nbytes, payload):
    """Sends nbytes of pre-built payload on a connection made by connect()."""
    s = connect()
    t0 = time.perf_counter()
    left = nbytes
    while left > 0:
        chunk = payload if left >= len(payload) else payload[:left]
        s.sendall(chunk)
        left -= len(chunk)
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
    dt = time.perf_counter() - t0
    s.close()
    return dt


def download(connect, nbytes):
    s = connect()
    t0 = time.perf_counter()
    got = 0
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        got += len(chunk)
    dt = time.perf_counter() - t0
    s.close()
    return dt, got


def proxied_socket(port, secret):
    c = tgclient.FakeTLSClient(("127.0.0.1", port), secret, dc=2)
    c.connect()
    return c.sock


def records_payload(size):
    """Pre-built TLS application-data records of random bytes: the proxy
    decrypts and re-encrypts them; their plaintext is meaningless noise."""
    out = bytearray()
    body = os.urandom(2878)
    while len(out) < size:
        out += b"\x17\x03\x03" + len(body).to_bytes(2, "big") + body
    return bytes(out)


def run_throughput(binary, mib):
    nbytes = mib << 20
    secret = tgclient.make_secret(b"bench.example")
    dc_sink = SinkServer(skip=64)        # swallows tgfront's obfs2 frame
    front_sink = SinkServer()
    d = Daemon(binary, dc_sink.port, front_sink.port, secret)
    results = {}
    try:
        raw = os.urandom(CHUNK)
        recs = records_payload(CHUNK)
        # The fronting path is entered by any first byte that is not 0x16.
        raw_fronted = b"\x00" + raw[1:]
        setups = {
            "direct": (lambda: socket.create_connection(("127.0.0.1", front_sink.port)),
                       raw, front_sink, None),
            "relay": (lambda: socket.create_connection(("127.0.0.1", d.port)),
                      raw_fronted, front_sink, d),
            "proxy": (lambda: proxied_socket(d.port, secret), recs, dc_sink, d),
        }
        for name, (connect, payload, sink, daemon) in setups.items():
            for direction in ("upload", "download"):
                sink.mode = "discard" if direction == "upload" else "source"
                sink.nbytes = nbytes
                before = sink.finished
                cpu0 = proc_cpu_seconds(d.proc.pid)
                if direction == "upload":
                    dt = upload(connect, nbytes, payload)
                    moved = nbytes
                else:
                    if name == "relay":
                        def connect_relay():
                            s = socket.create_connection(("127.0.0.1", d.port))
                            s.sendall(b"\x00")   # decide fronting at once
                            return s
                        dt, moved = download(connect_relay, nbytes)
                    else:
                        dt, moved = download(connect, nbytes)
                sink.wait_finished(before + 1, 30)
                cpu = proc_cpu_seconds(d.proc.pid) - cpu0 if daemon else 0.0
                results[(name, direction)] = (moved / dt / 1e6, cpu / (moved / 1e9))
    finally:
        d.stop()
    return results


def run_idle_memory(binary, count):
    secret = tgclient.make_secret(b"bench.example")
    dc_sink = SinkServer(skip=64)
    front_sink = SinkServer()
    d = Daemon(binary, dc_sink.port, front_sink.port, secret)
    socks = []
    try:
        time.sleep(0.3)
        base = proc_rss_kib(d.proc.pid)
        t0 = time.perf_counter()
        for _ in range(count):
            socks.append(proxied_socket(d.port, secret))
        hs_ms = (time.perf_counter() - t0) * 1000 / count
        time.sleep(1.0)    # every DC connection established
        after = proc_rss_kib(d.proc.pid)
        return base, after, (after - base) / count, hs_ms
    finally:
        for s in socks:
            s.close()
        d.stop()


def run_churn(binary, count):
    """Connections opened and closed one after another: what a Telegram
    connection costs the daemon in CPU, including the early connection to
    the fronting target that every connection opens at accept (the site's
    clock starts when the client connects) and that a proven hello closes
    again; the same for a fronted visitor. Also counts the fronting target's
    connections per Telegram connection."""
    secret = tgclient.make_secret(b"bench.example")
    dc_sink = SinkServer(skip=64)
    front_sink = SinkServer()
    d = Daemon(binary, dc_sink.port, front_sink.port, secret)
    out = {}
    try:
        time.sleep(0.3)
        for kind in ("telegram", "fronted"):
            front0, dc0 = front_sink.finished, dc_sink.finished
            cpu0 = proc_cpu_seconds(d.proc.pid)
            t0 = time.perf_counter()
            for _ in range(count):
                if kind == "telegram":
                    s = proxied_socket(d.port, secret)
                else:
                    s = socket.create_connection(("127.0.0.1", d.port))
                    s.sendall(b"\x00")
                s.close()
            wall = time.perf_counter() - t0
            front_sink.wait_finished(front0 + count, 30)
            if kind == "telegram":
                dc_sink.wait_finished(dc0 + count, 30)
            cpu = proc_cpu_seconds(d.proc.pid) - cpu0
            out[kind] = (cpu / count * 1e6, wall / count * 1e3,
                         (front_sink.finished - front0) / count)
    finally:
        d.stop()
    return out


def run_secrets(binary, count, sizes):
    """Telegram connections with 1, 10, 100... secrets configured: the
    daemon's CPU per connection. Every hello is checked against every
    secret (one HMAC-SHA256 each), whichever it proves."""
    out = {}
    for n in sizes:
        secret = tgclient.make_secret(b"bench.example")
        extra = [tgclient.make_secret(b"bench.example") for _ in range(n - 1)]
        dc_sink = SinkServer(skip=64)
        front_sink = SinkServer()
        d = Daemon(binary, dc_sink.port, front_sink.port, secret, extra)
        try:
            time.sleep(0.3)
            last = extra[-1] if extra else secret
            dc0 = dc_sink.finished
            cpu0 = proc_cpu_seconds(d.proc.pid)
            for _ in range(count):
                proxied_socket(d.port, last).close()
            dc_sink.wait_finished(dc0 + count, 30)
            out[n] = (proc_cpu_seconds(d.proc.pid) - cpu0) / count * 1e6
        finally:
            d.stop()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--churn", type=int, default=2000)
    ap.add_argument("--secrets", default="1,10,100",
                    help="secret counts for the per-connection cost ('' skips)")
    ap.add_argument("--secrets-conns", type=int, default=1000)
    a = ap.parse_args()

    print("tgfront benchmark: %s, %d MiB per transfer, %d idle connections"
          % (a.binary, a.mib, a.idle))
    res = run_throughput(a.binary, a.mib)
    print("\n%-8s %-9s %10s %14s %10s %10s" % ("setup", "direction", "MB/s", "tgfront CPU",
                                                "vs direct", "vs relay"))
    for (name, direction), (mbps, cpu_per_gb) in res.items():
        direct = res[("direct", direction)][0]
        relay = res[("relay", direction)][0]
        print("%-8s %-9s %10.0f %11.2f s/GB %9.2fx %9.2fx" % (
            name, direction, mbps, cpu_per_gb, mbps / direct, mbps / relay))
    base, after, per_conn, hs_ms = run_idle_memory(a.binary, a.idle)
    print("\nidle proxied connections: %d; tgfront RSS %d KiB -> %d KiB: %.2f KiB per "
          "connection (client + DC socket, no buffers held)" % (a.idle, base, after, per_conn))
    print("sequential handshakes (client-side Python included): %.3f ms each" % hs_ms)
    churn = run_churn(a.binary, a.churn)
    print("\nconnection churn (%d opened and closed one after another):" % a.churn)
    for kind, (cpu_us, wall_ms, fronts) in churn.items():
        print("  %-8s tgfront CPU %6.1f us per connection; %.3f ms each with the client; "
              "%.2f fronting-target connections each" % (kind, cpu_us, wall_ms, fronts))
    print("  descriptors: 2 per connection at most (client + fronting target, then client + DC)")
    sizes = [int(x) for x in a.secrets.split(",") if x]
    if sizes:
        print("\nnamed secrets (%d Telegram connections each, the last secret proved):"
              % a.secrets_conns)
        for n, cpu_us in run_secrets(a.binary, a.secrets_conns, sizes).items():
            print("  %4d secrets: tgfront CPU %7.1f us per connection" % (n, cpu_us))


if __name__ == "__main__":
    main()
