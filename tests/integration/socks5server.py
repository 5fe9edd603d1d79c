"""A small SOCKS5 server (RFC 1928 CONNECT, RFC 1929 user/password) on
loopback, written independently of the daemon's client.

With user/password set it accepts only method 2 and those credentials;
without, only method 0. Every CONNECT is recorded (target, authenticated
user); `refuse` answers CONNECT with that reply code instead of dialling.
"""

import select
import socket
import struct
import threading


class Socks5Server:
    def __init__(self, host="127.0.0.1", user=None, password=None):
        self.user = user
        self.password = password
        self.refuse = None            # e.g. 5: "connection refused"
        self.connects = []            # [(target_host, target_port, user)]
        self.auth_failures = 0
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.addr = self.sock.getsockname()[:2]
        self.stopping = False
        self.threads = []

    def start(self):
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def stop(self):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _recv(c, n):
        b = b""
        while len(b) < n:
            chunk = c.recv(n - len(b))
            if not chunk:
                raise EOFError
            b += chunk
        return b

    def _serve(self, c):
        up = None
        try:
            c.settimeout(10)
            ver, nmethods = self._recv(c, 2)
            assert ver == 5
            methods = self._recv(c, nmethods)
            want = 2 if self.user is not None else 0
            if want not in methods:
                c.sendall(b"\x05\xff")
                return
            c.sendall(bytes([5, want]))
            who = None
            if want == 2:
                v, ulen = self._recv(c, 2)
                user = self._recv(c, ulen).decode()
                plen = self._recv(c, 1)[0]
                pw = self._recv(c, plen).decode()
                if v != 1 or user != self.user or pw != self.password:
                    with self.lock:
                        self.auth_failures += 1
                    c.sendall(b"\x01\x01")
                    return
                c.sendall(b"\x01\x00")
                who = user
            ver, cmd, _rsv, atyp = self._recv(c, 4)
            if atyp == 1:
                host = socket.inet_ntop(socket.AF_INET, self._recv(c, 4))
            elif atyp == 4:
                host = socket.inet_ntop(socket.AF_INET6, self._recv(c, 16))
            else:
                host = self._recv(c, self._recv(c, 1)[0]).decode()
            port = struct.unpack(">H", self._recv(c, 2))[0]
            with self.lock:
                self.connects.append((host, port, who))
            if cmd != 1 or self.refuse is not None:
                c.sendall(bytes([5, self.refuse or 7, 0, 1, 0, 0, 0, 0, 0, 0]))
                return
            try:
                up = socket.create_connection((host, port), timeout=5)
            except OSError:
                c.sendall(bytes([5, 5, 0, 1, 0, 0, 0, 0, 0, 0]))
                return
            # A domain-name bound address: the longest reply form.
            c.sendall(b"\x05\x00\x00\x03\x09localhost" + struct.pack(">H", 1080))
            c.settimeout(None)
            up.settimeout(None)
            self._pipe(c, up)
        except (EOFError, OSError, AssertionError, ValueError):
            pass
        finally:
            c.close()
            if up is not None:
                up.close()

    @staticmethod
    def _pipe(a, b):
        socks = [a, b]
        while True:
            r, _, _ = select.select(socks, [], [], 30)
            if not r:
                return
            for s in r:
                data = s.recv(65536)
                if not data:
                    return
                (b if s is a else a).sendall(data)
