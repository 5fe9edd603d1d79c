#!/usr/bin/python3
"""Per-stream throughput of the WEB proxy mode next to the FakeTLS path,
and the daemon's CPU per GB for each, measured in the same run.

  proxy  client -> tgfront FakeTLS/obfs2 (:443 path) -> DC sink
  web    client -> tgfront WEB listener: WebSocket carrier, v1 frames,
                   one stream -> DC sink

As in bench.py, nothing is decrypted by the client or the sink (a relay
moves bytes without looking at them), so the figures are the daemon's,
not Python's AES. The WEB client parses only WebSocket and frame headers
and returns credit (WINDOW) as it reads, as Telegram Desktop does.
Caddy's TLS hop in front of the WEB listener is not included.

Usage: web_bench.py TGFRONT_BIN [--mib N]   (bench/run.sh-style netns: see
bench/run-web.sh)
"""

import argparse
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import tgclient  # noqa: E402
import webclient as wc  # noqa: E402
from bench import (CHUNK, download, free_port, proc_cpu_seconds, proxied_socket,  # noqa: E402
                   records_payload, upload)
from sinks import SinkServer  # noqa: E402

HOST = "bench.example.com"


class Daemon:
    def __init__(self, binary, dc_port, front_port, secret):
        self.dir = tempfile.mkdtemp(prefix="tgf-webbench-")
        self.port, self.web_port = free_port(), free_port()
        cfg = os.path.join(self.dir, "config.toml")
        with open(cfg, "w") as f:
            f.write('secret = "%s"\nbind-to = "127.0.0.1:%d"\nconcurrency = 65535\n'
                    '[domain-fronting]\nhost = "127.0.0.1"\nport = %d\n'
                    '[network.timeout]\nidle = "10m"\n'
                    '[web]\nenabled = true\nbind-to = "127.0.0.1:%d"\n'
                    '[datacenters]\n2 = ["127.0.0.1:%d"]\n'
                    % (tgclient.secret_hex(secret), self.port, front_port, self.web_port,
                       dc_port))
        self.log = open(os.path.join(self.dir, "stderr"), "w")
        self.proc = subprocess.Popen([binary, "run", cfg], stderr=self.log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.web_port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("tgfront did not start; see " + self.log.name)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(15)


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

    def __init__(self, d, secret):
        key = secret[1:17]
        _, self.car = wc.bridge_session(("127.0.0.1", d.web_port), HOST, b"\xdd" + key)
        assert self.car.response.status == 101
        self.car.hello()
        init = tgclient.make_init_frame(2)
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
        """Reads frames; returns DATA payload bytes seen, until the stream
        is closed (download) or forever (upload: credit only)."""
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
            d = self.sock.recv(1 << 20)
            if not d:
                return got
            buf += d


def web_download(d, secret, sink, nbytes):
    sink.mode, sink.nbytes = "source", nbytes
    ws = WebStream(d, secret)
    t0 = time.perf_counter()
    got = ws.read_loop()
    return time.perf_counter() - t0, got


def web_upload(d, secret, sink, nbytes):
    sink.mode = "discard"
    ws = WebStream(d, secret)
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
    ap.add_argument("binary")
    ap.add_argument("--mib", type=int, default=256)
    a = ap.parse_args()
    nbytes = a.mib << 20
    secret = tgclient.make_secret(HOST.encode())
    dc_sink = SinkServer(skip=64)
    front_sink = SinkServer()
    d = Daemon(a.binary, dc_sink.port, front_sink.port, secret)
    rows = []
    try:
        recs = records_payload(CHUNK)
        for name in ("proxy", "web"):
            for direction in ("upload", "download"):
                cpu0 = proc_cpu_seconds(d.proc.pid)
                if name == "proxy" and direction == "upload":
                    dc_sink.mode = "discard"
                    dt, moved = upload(lambda: proxied_socket(d.port, secret), nbytes, recs), \
                        nbytes
                elif name == "proxy":
                    dc_sink.mode, dc_sink.nbytes = "source", nbytes
                    dt, moved = download(lambda: proxied_socket(d.port, secret), nbytes)
                elif direction == "upload":
                    dt, moved = web_upload(d, secret, dc_sink, nbytes)
                else:
                    dt, moved = web_download(d, secret, dc_sink, nbytes)
                cpu = proc_cpu_seconds(d.proc.pid) - cpu0
                rows.append((name, direction, moved / dt / 1e6, cpu / (moved / 1e9), moved))
    finally:
        d.stop()
    print("one stream, %d MiB each way (measured under shared load)" % a.mib)
    print("%-6s %-9s %10s %14s" % ("path", "direction", "MB/s", "daemon CPU s/GB"))
    for name, direction, mbs, cpg, moved in rows:
        print("%-6s %-9s %10.0f %14.2f   (%d bytes)" % (name, direction, mbs, cpg, moved))


if __name__ == "__main__":
    main()
