"""A fake Telegram datacenter on loopback.

It accepts an obfuscated2 init frame the way a DC does (no secret: key =
frame[8:40], iv = frame[40:56], the reverse direction from reversed
frame[8:56]), checks the tag, records the DC id and then, depending on mode:

  echo     every decrypted byte is sent back encrypted (default)
  blast    after the frame, sends `blast_bytes` of data as fast as the socket
           takes it and never reads (slow-reader test)
  stall    after the frame, never reads (client-side slow-writer test)
  mtproto  parses one padded-intermediate transport frame and records the
           MTProto constructor of the first unencrypted message; then keeps
           the connection open, echoing nothing

Run standalone (interop test):  python3 fakedc.py --port N --mode mtproto
--status FILE   (writes a JSON summary after every event).
"""

import argparse
import json
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tgclient  # noqa: E402
from recorder import RecordingServer  # noqa: E402

REQ_PQ_MULTI = 0xbe7e8ef1
REQ_PQ = 0x60469778


class DCConn:
    def __init__(self, peer):
        self.peer = peer
        self.wire_frame = None
        self.tag = None
        self.dc = None
        self.head_ok = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.constructor = None
        self.closed = False
        self.error = None
        self.head = b""            # first decrypted bytes after the frame
        self.sock = None

    def as_dict(self):
        return {
            "peer": list(self.peer[:2]),
            "tag": self.tag.hex() if self.tag else None,
            "dc": self.dc,
            "head_ok": self.head_ok,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "mtproto_constructor": self.constructor,
            "closed": self.closed,
            "error": self.error,
        }


class FakeDC(RecordingServer):
    def __init__(self, host="127.0.0.1", port=0, mode="echo", status_file=None):
        self.status_file = status_file
        super().__init__(host, port)
        self.mode = mode
        self.blast_bytes = 256 << 20
        self.stall_release = threading.Event()

    def stop(self):
        self.stall_release.set()
        super().stop()

    # -- observations for tests

    @property
    def connection_count(self):
        with self.lock:
            return len(self.conns)

    def conn_with_head(self, marker, timeout=5.0):
        """The connection whose first relayed bytes start with marker."""
        def find(conns):
            for c in conns:
                if c.head.startswith(marker):
                    return c
            return None
        return self.wait_for(find, timeout)

    def _changed(self):
        with self.cond:
            self.cond.notify_all()
            if getattr(self, "status_file", None):
                tmp = self.status_file + ".tmp"
                with open(tmp, "w") as f:
                    json.dump({"port": self.port,
                               "connections": [c.as_dict() for c in self.conns]}, f)
                os.replace(tmp, self.status_file)

    # -- server

    def new_conn(self, s, peer):
        c = DCConn(peer)
        c.sock = s
        return c, ()

    def serve(self, s, c):
        try:
            s.settimeout(None)
            wire = tgclient.recv_exact(s, 64)
            c.wire_frame = wire
            c.head_ok = tgclient.frame_head_ok(wire)
            send, recv = tgclient.peer_ciphers(wire)
            plain = recv.update(wire)
            c.tag = plain[56:60]
            c.dc = struct.unpack("<h", plain[60:62])[0]
            self._changed()
            # dd: padded intermediate; ef/ee (abridged, intermediate) come
            # from WEB proxy streams of a plain-secret link
            if c.tag not in (tgclient.TAG_PADDED, b"\xef" * 4, b"\xee" * 4):
                c.error = "bad tag"
                return
            mode = self.mode
            if mode == "echo":
                self._echo(s, c, send, recv)
            elif mode == "blast":
                self._blast(s, c, send)
            elif mode == "stall":
                self.stall_release.wait()
            elif mode == "mtproto":
                self._mtproto(s, c, recv)
        except (OSError, EOFError) as e:
            c.error = c.error or repr(e)
        finally:
            c.closed = True
            try:
                s.close()
            except OSError:
                pass
            self._changed()

    def _echo(self, s, c, send, recv):
        while True:
            data = s.recv(65536)
            if not data:
                # mirror the half-close so the client sees EOF after its data
                return
            c.bytes_in += len(data)
            plain = recv.update(data)
            if len(c.head) < 64:
                c.head += plain[:64 - len(c.head)]
            s.sendall(send.update(plain))
            c.bytes_out += len(data)
            self._changed()

    def _blast(self, s, c, send):
        chunk = 65536
        while c.bytes_out < self.blast_bytes and not self._stop:
            s.sendall(send.update(os.urandom(16) * (chunk // 16)))
            c.bytes_out += chunk

    def _mtproto(self, s, c, recv):
        hdr = recv.update(tgclient.recv_exact(s, 4))
        ln = struct.unpack("<I", hdr)[0] & 0x7FFFFFFF
        c.bytes_in += 4
        if ln > 1 << 20:
            c.error = "frame too long: %d" % ln
            return
        body = recv.update(tgclient.recv_exact(s, ln))
        c.bytes_in += ln
        # unencrypted message: auth_key_id(8)=0, msg_id(8), len(4), body
        if len(body) >= 24 and body[:8] == b"\x00" * 8:
            mlen = struct.unpack("<I", body[16:20])[0]
            if 4 <= mlen <= len(body) - 20:
                c.constructor = struct.unpack("<I", body[20:24])[0]
            else:
                c.error = "bad message length %d" % mlen
        else:
            c.error = "not an unencrypted message: %s" % body[:24].hex()
        self._changed()
        # keep the connection open, swallowing input, like a DC thinking
        while s.recv(65536):
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--mode", default="echo", choices=["echo", "blast", "stall", "mtproto"])
    ap.add_argument("--status", default=None)
    a = ap.parse_args()
    dc = FakeDC(a.host, a.port, a.mode, a.status).start()
    dc._changed()
    print("fakedc listening on %s:%d" % (a.host, dc.port), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
