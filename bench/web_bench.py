#!/usr/bin/python3
"""Per-stream throughput of the WEB proxy mode next to the FakeTLS path,
and the daemon's CPU per GB for each, measured in the same run.

  proxy  tgload (C, FakeTLS + obfuscated2 frame, 16 KiB records) -> tgfront
         :443 path -> tgload sink as the DC
  web    this script: WebSocket carrier, v1 frames, one stream -> tgfront
         WEB listener -> the same sink

As in bench.py, nothing is decrypted by the client or the sink (a relay
moves bytes without looking at them), so the CPU figures are the daemon's.
The WEB client parses only WebSocket and frame headers and returns credit
(WINDOW) as it reads, as Telegram Desktop does; it is Python, so the WEB
rows' MB/s may be the client's ceiling: compare CPU per GB. Caddy's TLS hop
in front of the WEB listener is not included.

Usage: sh bench/run.sh --web [--mib N]   (a loopback-only netns; needs
./build.sh bench for out/musl/tgload)
  or:  web_bench.py TGFRONT_BIN TGLOAD_BIN [--mib N] inside such a netns
"""

import argparse
import os
import socket
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import tgclient  # noqa: E402
import webclient as wc  # noqa: E402
from bench import Bench, cpu_s, free_port, read_bytes, wait_port  # noqa: E402

HOST = "bench.example.com"
DC_DISCARD, DC_SOURCE = 1, 2   # bench.Bench's sink ports by DC number


def web_daemon(b, secret_hex):
    """tgfront with the WEB listener, DCs 1 and 2 at the sink's discard and
    source ports. Returns (proc, FakeTLS port, WEB port)."""
    port, web_port = free_port(), free_port()
    cfg = os.path.join(b.dir, "tgfront-web.toml")
    with open(cfg, "w") as f:
        f.write('secret = "%s"\nbind-to = "127.0.0.1:%d"\nconcurrency = 65535\nworkers = 1\n'
                '[domain-fronting]\nhost = "127.0.0.1"\nport = %d\n'
                '[network.timeout]\nidle = "10m"\n'
                '[web]\nenabled = true\nbind-to = "127.0.0.1:%d"\n'
                '[datacenters]\n1 = ["127.0.0.1:%d"]\n2 = ["127.0.0.1:%d"]\n'
                % (secret_hex, port, b.discard, web_port, b.discard, b.source))
    p = b.spawn([b.tgfront, "run", cfg], "tgfront-web")
    wait_port(port)
    wait_port(web_port)
    return p, port, web_port


def masked_message(payload, mask=b"\x5a\xa5\x3c\xc3"):
    n = len(payload)
    if n < 126:
        h = bytes([0x82, 0x80 | n])
    elif n < 65536:
        h = bytes([0x82, 0x80 | 126]) + struct.pack(">H", n)
    else:
        h = bytes([0x82, 0x80 | 127]) + struct.pack(">Q", n)
    return h + mask + wc._xor_mask(payload, mask)


class WebStream:
    """One carrier with one stream, counting only headers."""

    def __init__(self, web_port, secret, dc):
        key = secret[1:17]
        _, self.car = wc.bridge_session(("127.0.0.1", web_port), HOST, b"\xdd" + key)
        assert self.car.response.status == 101
        self.car.hello()
        init = tgclient.make_init_frame(dc)
        enc, _ = tgclient.obfs2_ciphers(init, key)
        self.car.send_frames(wc.frame(wc.OPEN, 1), wc.frame(wc.DATA, 1,
                                                            tgclient.wire_frame(init, enc)))
        self.sock = self.car.sock
        self.sock.settimeout(60)
        self.buf = bytearray(self.car.buf)
        self.credit = (4 << 20) - 64
        self.cv = threading.Condition()
        self.closed = False

    def read_loop(self, want=None):
        """Reads frames; returns DATA payload bytes seen, once `want` have
        come (download), or when the stream is closed (upload: credit
        only)."""
        got = unacked = 0
        buf = self.buf
        while True:
            while True:
                if len(buf) < 2:
                    break
                n, o = buf[1] & 0x7f, 2
                if n == 126:
                    if len(buf) < 4:
                        break
                    n, o = struct.unpack_from(">H", buf, 2)[0], 4
                elif n == 127:
                    if len(buf) < 10:
                        break
                    n, o = struct.unpack_from(">Q", buf, 2)[0], 10
                if len(buf) < o + n:
                    break
                op = buf[0] & 0x0f
                if op == 2:
                    t = buf[o]
                    ln = struct.unpack_from(">I", buf, o + 4)[0]
                    if t == wc.DATA:
                        got += ln
                        unacked += ln
                        if want is not None and got >= want:
                            return got
                        if unacked >= 1 << 20:
                            self.sock.sendall(masked_message(
                                wc.frame(wc.WINDOW, 1, struct.pack(">I", unacked))))
                            unacked = 0
                    elif t == wc.WINDOW:
                        with self.cv:
                            self.credit += struct.unpack_from(">I", buf, o + 8)[0]
                            self.cv.notify()
                    elif t == wc.CLOSE:
                        return got
                elif op == 8:
                    return got
                del buf[:o + n]
            try:
                d = self.sock.recv(1 << 20)
            except OSError:   # the upload closed the carrier when done
                return got
            if not d:
                return got
            buf += d


def web_download(web_port, secret, nbytes):
    """One stream from the source sink; the carrier is closed once nbytes
    have come (the source sends until its peer goes)."""
    ws = WebStream(web_port, secret, DC_SOURCE)
    t0 = time.perf_counter()
    got = ws.read_loop(want=nbytes)
    dt = time.perf_counter() - t0
    ws.sock.close()
    return dt, got


def web_upload(web_port, secret, nbytes):
    ws = WebStream(web_port, secret, DC_DISCARD)
    msg = masked_message(wc.frame(wc.DATA, 1, os.urandom(65536)))
    threading.Thread(target=ws.read_loop, daemon=True).start()
    t0 = time.perf_counter()
    sent = 0
    while sent < nbytes:
        with ws.cv:
            while ws.credit < 65536:
                ws.cv.wait(10)
            ws.credit -= 65536
        ws.sock.sendall(msg)
        sent += 65536
    # Done when the relay has returned credit for every byte: it grants only
    # what it wrote to the DC's socket.
    with ws.cv:
        ws.cv.wait_for(lambda: ws.credit >= (4 << 20) - 64, 120)
    dt = time.perf_counter() - t0
    ws.sock.close()
    return dt, sent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tgfront")
    ap.add_argument("tgload")
    ap.add_argument("--mib", type=int, default=256)
    a = ap.parse_args()
    nbytes = a.mib << 20
    b = Bench(os.path.realpath(a.tgfront), os.path.realpath(a.tgload), quick=False, repeat=1)
    secret = tgclient.make_secret(HOST.encode())
    rows = []
    try:
        d, port, web_port = web_daemon(b, tgclient.secret_hex(secret))
        for name in ("proxy", "web"):
            for direction in ("upload", "download"):
                cpu0, io0 = cpu_s(d.pid), read_bytes(d.pid)
                if name == "proxy":
                    dc = DC_DISCARD if direction == "upload" else DC_SOURCE
                    r = b.load("run", "--to", port, "--tls", tgclient.secret_hex(secret),
                               "--dc", dc, "--streams", 1, "--bytes", nbytes, "--dir",
                               "up" if direction == "upload" else "down", "--shape", "full")
                    moved, mbps = float(r["bytes"]), float(r["mbps"])
                else:
                    dt, moved = (web_upload if direction == "upload" else web_download)(
                        web_port, secret, nbytes)
                    mbps = moved / dt / 1e6
                time.sleep(0.3)   # the daemon finishes the stream's close
                cpu = cpu_s(d.pid) - cpu0
                ratio = (read_bytes(d.pid) - io0) / moved
                rows.append((name, direction, mbps, cpu / (moved / 1e9), ratio))
    finally:
        b.close()
    print("one stream, %d MiB each way; the load average at the start: %s"
          % (a.mib, open("/proc/loadavg").read().split()[0]))
    print("%-6s %-9s %10s %16s %22s" % ("path", "direction", "MB/s", "daemon CPU s/GB",
                                        "bytes read / counted"))
    for name, direction, mbps, cpg, ratio in rows:
        print("%-6s %-9s %10.0f %16.2f %22.2f" % (name, direction, mbps, cpg, ratio))


if __name__ == "__main__":
    main()
