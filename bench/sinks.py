"""Traffic sinks and sources for the benchmarks (loopback only).

SinkServer accepts TCP connections; each connection either discards what it
reads (counting bytes) or, in "source" mode, writes `nbytes` of filler as
fast as the socket takes it. It is the far end in all three setups (direct,
plain relay through tgfront's fronting path, full proxy path), so the setups
differ only in what sits between client and sink.

For the proxy path the sink first swallows the 64-byte obfuscated2 frame
tgfront sends; nothing after it is decrypted: a proxy relays bytes without
looking at them, so the benchmark measures the relay, not Python's AES.
"""

import socket
import threading


class SinkServer:
    def __init__(self, host="127.0.0.1", skip=0):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, 0))
        self.lsock.listen(1024)
        self.port = self.lsock.getsockname()[1]
        self.skip = skip          # bytes to swallow first (obfs2 frame)
        self.mode = "discard"     # or "source"
        self.nbytes = 0
        self.received = 0
        self.lock = threading.Lock()
        self.done = threading.Condition(self.lock)
        self.finished = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        try:
            got = 0
            while got < self.skip:
                chunk = s.recv(self.skip - got)
                if not chunk:
                    return
                got += len(chunk)
            if self.mode == "source":
                buf = b"\xa5" * (256 * 1024)
                left = self.nbytes
                while left > 0:
                    n = s.send(buf[:min(left, len(buf))])
                    left -= n
                s.shutdown(socket.SHUT_WR)
                while s.recv(65536):
                    pass
            else:
                total = 0
                while True:
                    chunk = s.recv(1 << 20)
                    if not chunk:
                        break
                    total += len(chunk)
                with self.lock:
                    self.received += total
        except OSError:
            pass
        finally:
            s.close()
            with self.lock:
                self.finished += 1
                self.done.notify_all()

    def wait_finished(self, n, timeout=60):
        with self.lock:
            return self.done.wait_for(lambda: self.finished >= n, timeout)
