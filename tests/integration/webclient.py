"""Independent WEB proxy client: plays Telegram Desktop's native side of
tg://webproxy together with its hidden WebView, without a browser.

Written from shared/reference/webproxy-facts.md (sections 1.5, 2, 3.1,
3.4-3.6), not from the daemon's code:
  - capability = base64url_nopad(HMAC-SHA256(secret bytes as the link has
    them, "tdesktop-web-proxy-bridge-v1\\n" + host));
  - GET /?bridge=CAP gives the bridge page, whose script holds the carrier
    path and a single-use token;
  - the carrier is an RFC 6455 WebSocket (client frames masked) with
    subprotocol "tproxy-v1.<token>", each message one or more v1 frames
    type:u8 | stream:u24 | len:u32 | payload;
  - HELLO (10 000000 00000001 01) -> WELCOME (11 000000 00000000) alone;
  - per stream: OPEN, then DATA carrying exactly the bytes tdesktop would
    write to an MTProxy socket (64-byte obfuscated2 frame, tag dd for a dd
    secret, then AES-CTR bytes); WINDOW returns credit; CLOSE aborts.

Works over a plain socket (the daemon's loopback listener) or a TLS socket
(the image through :443).
"""

import base64
import hashlib
import hmac
import os
import re
import socket
import ssl
import struct

import tgclient

HELLO = bytes.fromhex("100000000000000101")
WELCOME = bytes.fromhex("1100000000000000")
OPEN, DATA, CLOSE, WINDOW, PING, PONG, T_HELLO, T_WELCOME, BYE = (
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x10, 0x11, 0x1f)
WINDOW_INIT = 4 << 20


def b64u(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def capability(host, secret_bytes):
    ctx = b"tdesktop-web-proxy-bridge-v1\n" + host.encode()
    return b64u(hmac.new(secret_bytes, ctx, hashlib.sha256).digest())


def frame(t, sid, payload=b""):
    return bytes([t]) + sid.to_bytes(3, "big") + struct.pack(">I", len(payload)) + payload


def parse_frames(msg):
    out, o = [], 0
    while o < len(msg):
        if len(msg) - o < 8:
            raise tgclient.ProtocolError("partial frame header")
        t, sid, ln = msg[o], int.from_bytes(msg[o + 1:o + 4], "big"), \
            struct.unpack(">I", msg[o + 4:o + 8])[0]
        if len(msg) - o - 8 < ln:
            raise tgclient.ProtocolError("partial frame payload")
        out.append((t, sid, msg[o + 8:o + 8 + ln]))
        o += 8 + ln
    return out


class HTTPResponse:
    def __init__(self, status, headers, body, raw_head):
        self.status, self.headers, self.body, self.raw_head = status, headers, body, raw_head

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


def connect(addr, tls_host=None, cafile=None, timeout=10.0, source=None):
    s = socket.create_connection(addr, timeout=timeout,
                                 source_address=(source, 0) if source else None)
    if tls_host:
        ctx = ssl.create_default_context(cafile=cafile)
        if cafile is None:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        s = ctx.wrap_socket(s, server_hostname=tls_host)
    return s


def read_response(sock, buf=b"", head_only=False):
    """Reads one HTTP/1.1 response; returns (response, leftover bytes)."""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            raise EOFError("connection closed in the response head: %r" % buf[:200])
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = [tuple(x.split(":", 1)) for x in lines[1:]]
    headers = [(k, v.strip()) for k, v in headers]
    resp = HTTPResponse(status, headers, b"", head + b"\r\n\r\n")
    if head_only:
        return resp, rest
    ln = resp.header("content-length")
    if ln is not None:
        n = int(ln)
        while len(rest) < n:
            d = sock.recv(65536)
            if not d:
                raise EOFError("connection closed in the body")
            rest += d
        resp.body, rest = rest[:n], rest[n:]
    elif resp.header("transfer-encoding"):
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += sock.recv(65536)
            line, rest = rest.split(b"\r\n", 1)
            n = int(line.split(b";")[0], 16)
            while len(rest) < n + 2:
                rest += sock.recv(65536)
            body += rest[:n]
            rest = rest[n + 2:]
            if n == 0:
                break
        resp.body = body
    return resp, rest


def http_get(sock, host, target, extra=()):
    req = "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: webclient\r\nAccept: */*\r\n" % (
        target, host)
    for k, v in extra:
        req += "%s: %s\r\n" % (k, v)
    sock.sendall((req + "\r\n").encode())
    return read_response(sock)[0]


def page_params(body):
    """The carrier path and token from the bridge page's script."""
    m = re.search(rb"WSP='([^']*)',TOK='([A-Za-z0-9_-]{43})'", body)
    if not m:
        raise tgclient.ProtocolError("no carrier parameters in the page")
    return m.group(1).decode(), m.group(2).decode()


class Carrier:
    """The WebSocket carrier with the v1 mux, as the native side sees it."""

    def __init__(self, sock, host, path, token, origin=None):
        self.sock = sock
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Protocol: tproxy-v1.%s\r\n" % (path, host, key, token))
        if origin:
            req += "Origin: %s\r\n" % origin
        sock.sendall((req + "\r\n").encode())
        self.response, self.buf = read_response(sock, head_only=True)
        self.accept_ok = False
        if self.response.status == 101:
            want = base64.b64encode(hashlib.sha1(
                (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            self.accept_ok = self.response.header("sec-websocket-accept") == want
        self.close_code = None

    # -- RFC 6455, client side

    def send_ws(self, payload, opcode=2, fin=True, mask=True):
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        mbit = 0x80 if mask else 0
        if n < 126:
            h = bytes([b0, mbit | n])
        elif n < 65536:
            h = bytes([b0, mbit | 126]) + struct.pack(">H", n)
        else:
            h = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
        if mask:
            m = os.urandom(4)
            body = bytes(b ^ m[i & 3] for i, b in enumerate(payload)) if n < 4096 else \
                _xor_mask(payload, m)
            self.sock.sendall(h + m + body)
        else:
            self.sock.sendall(h + payload)

    def _need(self, n):
        while len(self.buf) < n:
            d = self.sock.recv(262144)
            if not d:
                raise EOFError("carrier closed")
            self.buf += d

    def recv_ws(self):
        """One server frame: (opcode, fin, payload). Server frames are unmasked."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        if b1 & 0x80:
            raise tgclient.ProtocolError("masked server frame")
        n, o = b1 & 0x7f, 2
        if n == 126:
            self._need(4)
            n, o = struct.unpack(">H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, o = struct.unpack(">Q", self.buf[2:10])[0], 10
        self._need(o + n)
        payload = self.buf[o:o + n]
        self.buf = self.buf[o + n:]
        return b0 & 0x0f, bool(b0 & 0x80), payload

    def recv_message(self):
        """The next binary message (pings answered); None after a close."""
        parts = []
        while True:
            op, fin, p = self.recv_ws()
            if op == 8:
                self.close_code = struct.unpack(">H", p[:2])[0] if len(p) >= 2 else 1005
                return None
            if op == 9:
                self.send_ws(p, opcode=10)
                continue
            if op == 10:
                continue
            if op == 1:
                raise tgclient.ProtocolError("text message from the relay")
            parts.append(p)
            if fin:
                return b"".join(parts)

    # -- v1 frames

    def send_frames(self, *frames):
        self.send_ws(b"".join(frames))

    def hello(self):
        self.send_frames(HELLO)
        msg = self.recv_message()
        if msg != WELCOME:
            raise tgclient.ProtocolError("expected WELCOME alone, got %r" % (msg,))


def _xor_mask(data, m):
    n = len(data)
    mm = (m * ((n + 3) // 4))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(mm, "big")).to_bytes(n, "big")


class Mux:
    """Streams over a Carrier, reading the relay's frames into per-stream
    buffers and returning credit as tdesktop does (after reading)."""

    def __init__(self, carrier):
        self.c = carrier
        self.streams = {}
        self.next_id = 1
        self.closed_by_relay = set()
        self.pings = 0

    def open(self, key16, dc=2, tag=tgclient.TAG_PADDED, first_payload=b""):
        sid = self.next_id
        self.next_id += 1
        init = tgclient.make_init_frame(dc, tag)
        enc, dec = tgclient.obfs2_ciphers(init, key16)
        st = {"enc": enc, "dec": dec, "rx": b"", "tx_window": WINDOW_INIT, "unacked": 0}
        self.streams[sid] = st
        data = tgclient.wire_frame(init, enc) + enc.update(first_payload)
        self.c.send_frames(frame(OPEN, sid), frame(DATA, sid, data))
        st["tx_window"] -= len(data)
        return sid

    def send(self, sid, data, chunk=65536):
        st = self.streams[sid]
        enc = st["enc"].update(data)
        o = 0
        while o < len(enc):
            while st["tx_window"] <= 0:
                self.pump()
            n = min(chunk, len(enc) - o, st["tx_window"])
            self.c.send_frames(frame(DATA, sid, enc[o:o + n]))
            st["tx_window"] -= n
            o += n

    def pump(self):
        msg = self.c.recv_message()
        if msg is None:
            raise EOFError("carrier closed by the relay (%s)" % self.c.close_code)
        for t, sid, p in parse_frames(msg):
            if t == DATA:
                st = self.streams[sid]
                st["rx"] += st["dec"].update(p)
                st["unacked"] += len(p)
                if st["unacked"] >= 256 * 1024:
                    self.c.send_frames(frame(WINDOW, sid, struct.pack(">I", st["unacked"])))
                    st["unacked"] = 0
            elif t == WINDOW:
                self.streams[sid]["tx_window"] += struct.unpack(">I", p)[0]
            elif t == CLOSE:
                self.closed_by_relay.add(sid)
            elif t == PING:
                self.pings += 1
                self.c.send_frames(frame(PONG, 0, p))
            elif t == BYE:
                raise EOFError("BYE")
            else:
                raise tgclient.ProtocolError("unexpected frame type %#x" % t)

    def echo(self, sid, data, chunk=16384):
        """Sends data on stream sid while reading what comes back, in one
        thread (a TLS socket is not for two), as an echoing DC returns it.
        Returns the len(data) bytes received."""
        import select
        st = self.streams[sid]
        sock = self.c.sock
        enc = st["enc"].update(data)
        o = 0
        while len(st["rx"]) < len(data):
            if sid in self.closed_by_relay:
                raise EOFError("stream %d closed by the relay" % sid)
            can_send = o < len(enc) and st["tx_window"] > 0
            pending = getattr(sock, "pending", lambda: 0)() or len(self.c.buf)
            r, w, _ = select.select([sock], [sock] if can_send else [], [], 10)
            if r or pending:
                self.pump()
            elif w:
                n = min(chunk, len(enc) - o, st["tx_window"])
                self.c.send_frames(frame(DATA, sid, enc[o:o + n]))
                st["tx_window"] -= n
                o += n
            elif not r:
                raise TimeoutError("no progress for 10 s")
        out, st["rx"] = st["rx"][:len(data)], st["rx"][len(data):]
        return out

    def recv_exact(self, sid, n):
        st = self.streams[sid]
        while len(st["rx"]) < n:
            if sid in self.closed_by_relay:
                raise EOFError("stream %d closed by the relay" % sid)
            self.pump()
        out, st["rx"] = st["rx"][:n], st["rx"][n:]
        return out


def bridge_session(addr, host, secret_bytes, tls=False, cafile=None, timeout=10.0,
                   source=None):
    """Fetches the bridge page and opens the carrier on a second connection,
    as the WebView does. Returns (page response, Carrier)."""
    cap = capability(host, secret_bytes)
    s1 = connect(addr, host if tls else None, cafile, timeout, source)
    page = http_get(s1, host, "/?bridge=" + cap)
    s1.close()
    if page.status != 200:
        raise tgclient.ProtocolError("bridge page: status %d" % page.status)
    path, token = page_params(page.body)
    s2 = connect(addr, host if tls else None, cafile, timeout, source)
    return page, Carrier(s2, host, path, token, origin="https://" + host)
