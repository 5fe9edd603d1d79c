"""A fake DC and a fronting backend for thousands of idle connections.

The integration harness's FakeDC and FrontingBackend run one thread per
connection, which is right for byte-exact checks but means 8,000 threads for
the flood test on a shared 2-core machine. These two do the same job on one
selector loop, reusing the harness's protocol code (tgclient's obfuscated2
ciphers, fronting_backend's PROXY v2 parser), and keep counters only.
"""

import os
import selectors
import socket
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import tgclient  # noqa: E402
from fronting_backend import parse_proxy_v2  # noqa: E402


class _Conn:
    __slots__ = ("sock", "inbuf", "outbuf", "ready", "send", "recv")

    def __init__(self, sock):
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.ready = False      # DC: init frame read; backend: PROXY header read
        self.send = self.recv = None


class EpollServer:
    """Accepts everything, feeds bytes to on_data, closes on EOF or RST
    (closing on EOF mirrors the peer's FIN, as the harness servers do)."""

    def __init__(self, host="127.0.0.1", port=0, backlog=8192):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, port))
        self.lsock.listen(backlog)
        self.lsock.setblocking(False)
        self.addr = self.lsock.getsockname()
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.lsock, selectors.EVENT_READ, None)
        self.lock = threading.Lock()
        self.accepted = 0
        self.open = 0
        self.ready = 0          # connections that passed their first check
        self.bad = 0            # connections that failed it
        self.resets = 0
        self.bytes_in = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop = True
        self._thread.join(5)

    def stats(self):
        with self.lock:
            return {"accepted": self.accepted, "open": self.open, "ready": self.ready,
                    "bad": self.bad, "resets": self.resets, "bytes_in": self.bytes_in}

    def _run(self):
        while not self._stop:
            for key, ev in self.sel.select(0.2):
                if key.data is None:
                    self._accept()
                else:
                    self._event(key.data, ev)

    def _accept(self):
        while True:
            try:
                s, _ = self.lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return   # EMFILE and the like: the kernel keeps the backlog
            s.setblocking(False)
            c = _Conn(s)
            self.sel.register(s, selectors.EVENT_READ, c)
            with self.lock:
                self.accepted += 1
                self.open += 1

    def _close(self, c):
        self.sel.unregister(c.sock)
        c.sock.close()
        with self.lock:
            self.open -= 1

    def _event(self, c, ev):
        if ev & selectors.EVENT_WRITE and c.outbuf:
            try:
                n = c.sock.send(c.outbuf)
                del c.outbuf[:n]
            except BlockingIOError:
                pass
            except OSError:
                self._close(c)
                return
        if ev & selectors.EVENT_READ:
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                data = None
            except OSError:
                with self.lock:
                    self.resets += 1
                self._close(c)
                return
            if data == b"":
                self._close(c)
                return
            if data:
                with self.lock:
                    self.bytes_in += len(data)
                self.on_data(c, data)
                if c.outbuf:
                    try:
                        n = c.sock.send(c.outbuf)
                        del c.outbuf[:n]
                    except BlockingIOError:
                        pass
                    except OSError:
                        self._close(c)
                        return
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.outbuf else 0)
        self.sel.modify(c.sock, want, c)

    def on_data(self, c, data):
        raise NotImplementedError


class EpollDC(EpollServer):
    """Checks the obfuscated2 init frame (padded tag) and echoes the rest."""

    def on_data(self, c, data):
        if not c.ready:
            c.inbuf += data
            if len(c.inbuf) < 64:
                return
            wire = bytes(c.inbuf[:64])
            rest = bytes(c.inbuf[64:])
            c.inbuf = bytearray()
            c.send, c.recv = tgclient.peer_ciphers(wire)
            plain = c.recv.update(wire)
            c.ready = True
            with self.lock:
                if plain[56:60] == tgclient.TAG_PADDED:
                    self.ready += 1
                else:
                    self.bad += 1
            data = rest
        if data:
            c.outbuf += c.send.update(c.recv.update(data))


class EpollBackend(EpollServer):
    """Parses and strips a PROXY v2 header; swallows everything after it."""

    def on_data(self, c, data):
        if c.ready:
            return
        c.inbuf += data
        try:
            hdr, used = parse_proxy_v2(c.inbuf)
        except ValueError:
            hdr, used = None, 0
        if used < 0:
            return
        c.ready = True
        c.inbuf = bytearray()
        with self.lock:
            if hdr is not None:
                self.ready += 1
            else:
                self.bad += 1
