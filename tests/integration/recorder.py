"""The plumbing the fake DC and the fronting backend share: a listening
socket on loopback, one thread per accepted connection, the list of
connection records, and waiting on a condition for tests to observe them."""

import socket
import threading
import time


class RecordingServer:
    """Subclasses implement new_conn(sock, peer) -> (record, thread args) and
    serve(sock, record, *args)."""

    backlog = 256

    def __init__(self, host="127.0.0.1", port=0):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.lsock = socket.socket(fam, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, port))
        self.lsock.listen(self.backlog)
        self.host = host
        self.port = self.lsock.getsockname()[1]
        self.conns = []
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self._stop = False
        self._socks = []
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    @property
    def addr(self):
        return (self.host, self.port)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop = True
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.close()
            except OSError:
                pass

    def wait_for(self, pred, timeout=5.0):
        """Waits until pred(conns) is true; returns the result or None."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                r = pred(self.conns)
                if r:
                    return r
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def wait_conn_with(self, pred, timeout=5.0):
        """First connection record c with pred(c) true."""
        def find(conns):
            for c in conns:
                if pred(c):
                    return c
            return None
        return self.wait_for(find, timeout)

    def _changed(self):
        with self.cond:
            self.cond.notify_all()

    def _accept_loop(self):
        while not self._stop:
            try:
                s, peer = self.lsock.accept()
            except OSError:
                return
            record, args = self.new_conn(s, peer)
            with self.lock:
                self.conns.append(record)
                self._socks.append(s)
            self._changed()
            threading.Thread(target=self.serve, args=(s, record) + args, daemon=True).start()
