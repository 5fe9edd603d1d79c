"""Independent FakeTLS + obfuscated2 client for tgfront's integration tests.

Written from the protocol notes (shared/reference/mtg-facts.md section 3 and
protocol-notes.md), not from the daemon's code, so that a shared
misunderstanding cannot hide a bug.  Only python3-cryptography is used.

Wire summary (client side):
  ClientHello record 16 03 01, random = HMAC-SHA256(K, record with random
  zeroed) with the last 4 bytes XOR LE32(unix time).
  Server answer: 16 03 03 handshake, 14 03 03 00 01 01, one 17 03 03 record;
  server random = HMAC(K, client_random || answer with its random zeroed).
  Then CCS + 17 03 03 records carrying the obfuscated2 stream; the first 64
  bytes are the init frame (tag dd dd dd dd, DC as signed LE16).
"""

import base64
import hashlib
import hmac
import os
import socket
import struct
import time

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

TLS_MAX_CLIENT_RECORD = 2878   # what tdlib sends
CCS = b"\x14\x03\x03\x00\x01\x01"
TAG_PADDED = b"\xdd\xdd\xdd\xdd"

_GREASE = [0x0a0a + 0x1010 * i for i in range(16)]


class ProtocolError(Exception):
    """The server's answer is not what a FakeTLS proxy must send."""


# ---------------------------------------------------------------- secrets

def make_secret(host, key=None):
    """Returns the binary ee-secret: ee | key16 | host."""
    if key is None:
        key = os.urandom(16)
    if isinstance(host, str):
        host = host.encode()
    assert len(key) == 16
    return b"\xee" + key + host


def secret_hex(secret):
    return secret.hex()


def secret_b64(secret):
    return base64.urlsafe_b64encode(secret).rstrip(b"=").decode()


def parse_secret(text):
    """Accepts hex or base64url (padded or not). Returns (key16, host bytes)."""
    text = text.strip()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        pad = "=" * (-len(text) % 4)
        raw = base64.urlsafe_b64decode(text + pad)
    if len(raw) < 18 or raw[0] != 0xEE:
        raise ValueError("not an ee-secret")
    return raw[1:17], raw[17:]


# ---------------------------------------------------------------- ClientHello

def _u16(n):
    return struct.pack(">H", n)


def _u24(n):
    return struct.pack(">I", n)[1:]


def _ext(etype, body):
    return _u16(etype) + _u16(len(body)) + body


def _grease_pick():
    g = list(_GREASE)
    # four distinct GREASE values, like Chrome/tdlib
    out = []
    while len(out) < 4:
        v = g[os.urandom(1)[0] % 16]
        if v not in out:
            out.append(v)
    return out


def build_client_hello_body(sni, session_id=None, ciphers=None, pq=False):
    """Builds the handshake body (after 01 LLLLLL) of a tdlib/Chrome-like
    ClientHello with a zero random.  pq adds an X25519MLKEM768 (0x11ec) key
    share of 1216 bytes like current tdlib (hello ~1.8 KB).
    Returns (body, offset_of_random_in_body)."""
    if session_id is None:
        session_id = os.urandom(32)
    if isinstance(sni, str):
        sni = sni.encode()
    g = _grease_pick()
    if ciphers is None:
        ciphers = [g[0], 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c,
                   0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d,
                   0x002f, 0x0035]
    cs = b"".join(_u16(c) for c in ciphers)

    exts = []
    exts.append(_ext(g[1], b""))
    if sni is not None:
        name = b"\x00" + _u16(len(sni)) + sni
        exts.append(_ext(0x0000, _u16(len(name)) + name))
    exts.append(_ext(0x0017, b""))                       # extended_master_secret
    exts.append(_ext(0xff01, b"\x00"))                   # renegotiation_info
    groups = b"".join(_u16(x) for x in (g[2], 0x001d, 0x0017, 0x0018))
    exts.append(_ext(0x000a, _u16(len(groups)) + groups))
    exts.append(_ext(0x000b, b"\x01\x00"))               # ec_point_formats
    exts.append(_ext(0x0023, b""))                       # session_ticket
    alpn = b"\x02h2\x08http/1.1"
    exts.append(_ext(0x0010, _u16(len(alpn)) + alpn))
    exts.append(_ext(0x0005, b"\x01\x00\x00\x00\x00"))   # status_request
    sig = b"".join(_u16(x) for x in (0x0403, 0x0804, 0x0401, 0x0503, 0x0805,
                                       0x0501, 0x0806, 0x0601))
    exts.append(_ext(0x000d, _u16(len(sig)) + sig))
    exts.append(_ext(0x0012, b""))                       # SCT
    shares = _u16(g[2]) + _u16(1) + b"\x00"
    if pq:
        shares += _u16(0x11ec) + _u16(1216) + os.urandom(1216)
    shares += _u16(0x001d) + _u16(32) + os.urandom(32)
    exts.append(_ext(0x0033, _u16(len(shares)) + shares))
    exts.append(_ext(0x002d, b"\x01\x01"))               # psk_key_exchange_modes
    vers = _u16(g[3]) + _u16(0x0304) + _u16(0x0303)
    exts.append(_ext(0x002b, bytes([len(vers)]) + vers))
    exts.append(_ext(0x001b, b"\x02\x00\x02"))           # compress_certificate
    exts.append(_ext(g[0], b"\x00"))          # trailing GREASE (distinct from g[1])

    head = b"\x03\x03" + b"\x00" * 32 + bytes([len(session_id)]) + session_id
    head += _u16(len(cs)) + cs + b"\x01\x00"
    ext_blob = b"".join(exts)
    # tdlib: a hello shorter than 513 bytes gets padding to exactly 517.
    record_len = 5 + 4 + len(head) + 2 + len(ext_blob)
    if record_len < 513:
        pad = 517 - record_len - 4
        ext_blob += _ext(0x0015, b"\x00" * pad)
    body = head + _u16(len(ext_blob)) + ext_blob
    return body, 2


def sign_hello(record, key, ts=None):
    """record: a single 16 03 01 record whose random (offset 11..43) is zero.
    Returns the record with the FakeTLS digest written in."""
    if ts is None:
        ts = int(time.time())
    assert record[11:43] == b"\x00" * 32
    digest = hmac.new(key, record, hashlib.sha256).digest()
    tail = struct.unpack("<I", digest[28:32])[0] ^ (ts & 0xFFFFFFFF)
    rnd = digest[:28] + struct.pack("<I", tail)
    return record[:11] + rnd + record[43:]


def build_client_hello(key, sni, ts=None, session_id=None, pq=False):
    """One-record signed ClientHello."""
    body, _ = build_client_hello_body(sni, session_id=session_id, pq=pq)
    hs = b"\x01" + _u24(len(body)) + body
    record = b"\x16\x03\x01" + _u16(len(hs)) + hs
    return sign_hello(record, key, ts)


def fragment_hello(record, cuts):
    """Splits a signed one-record hello into several 16 03 01 records.
    cuts are offsets into the handshake message (record payload) where a new
    record starts, e.g. [100] -> 2 records."""
    payload = record[5:]
    points = [0] + sorted(cuts) + [len(payload)]
    out = b""
    for a, b in zip(points, points[1:]):
        assert b > a, "empty fragment"
        out += b"\x16\x03\x01" + _u16(b - a) + payload[a:b]
    return out


# ---------------------------------------------------------------- obfs2

def _ctr(key, iv):
    return Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()


_FORBIDDEN_STARTS = (b"HEAD", b"POST", b"GET ", b"OPTI", b"\x16\x03\x01\x02",
                     b"\xdd\xdd\xdd\xdd", b"\xee\xee\xee\xee")


def frame_head_ok(frame):
    """The rules a client applies to the plaintext first 8 bytes."""
    return (frame[0] != 0xEF and frame[:4] not in _FORBIDDEN_STARTS
            and frame[4:8] != b"\x00\x00\x00\x00")


def make_init_frame(dc, tag=TAG_PADDED):
    while True:
        frame = bytearray(os.urandom(64))
        if frame_head_ok(frame):
            break
    frame[56:60] = tag
    frame[60:62] = struct.pack("<h", dc)
    return bytes(frame)


def obfs2_ciphers(frame, secret_key=None):
    """Returns (send, recv) AES-CTR contexts for the side that generated the
    frame.  With secret_key (client<->proxy) keys are SHA-256(k || secret)."""
    k_send, iv_send = frame[8:40], frame[40:56]
    rev = frame[8:56][::-1]
    k_recv, iv_recv = rev[:32], rev[32:48]
    if secret_key is not None:
        k_send = hashlib.sha256(k_send + secret_key).digest()
        k_recv = hashlib.sha256(k_recv + secret_key).digest()
    return _ctr(k_send, iv_send), _ctr(k_recv, iv_recv)


def peer_ciphers(frame, secret_key=None):
    """(send, recv) for the side that RECEIVED the frame."""
    s, r = obfs2_ciphers(frame, secret_key)
    # the receiver decrypts with the sender's send keys and vice versa
    return r, s


def wire_frame(frame, send_cipher):
    """Encrypts the frame with the sender's stream; bytes 0..55 stay plain."""
    enc = send_cipher.update(frame)
    return frame[:56] + enc[56:64]


# ---------------------------------------------------------------- socket utils

def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("EOF after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def recv_until_eof(sock, limit=1 << 24):
    buf = bytearray()
    while len(buf) < limit:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


# ---------------------------------------------------------------- client

class FakeTLSClient:
    """A Telegram-like client speaking FakeTLS + obfuscated2 to a proxy.

        c = FakeTLSClient(("127.0.0.1", port), secret, dc=2)
        c.connect()              # TCP + hello + verified server answer + init frame
        c.send(b"data"); c.recv_exact(4)
    """

    def __init__(self, addr, secret, dc=2, ts=None, sni=None, session_id=None,
                 key=None, fragments=None, max_record=TLS_MAX_CLIENT_RECORD,
                 timeout=10.0, tag=TAG_PADDED, family=None, pq=False):
        self.addr = addr
        self.secret_key = secret[1:17] if key is None else key
        self.host = secret[17:]
        self.sni = self.host if sni is None else sni
        self.dc = dc
        self.ts = ts
        self.session_id = session_id
        self.fragments = fragments
        self.max_record = max_record
        self.timeout = timeout
        self.tag = tag
        self.family = family
        self.pq = pq
        self.sock = None
        self.hello = None
        self.server_answer = None
        self._rxbuf = bytearray()     # decrypted, not yet returned
        self._rawbuf = bytearray()    # raw TLS bytes not yet parsed
        self._eof = False
        self.was_reset = False        # the stream ended with a reset, not a FIN
        self.max_record_seen = 0      # largest record payload from the server

    # -- steps, usable separately by tests

    def open(self):
        fam = self.family
        if fam is None:
            fam = socket.AF_INET6 if ":" in self.addr[0] else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.addr)
        return self.sock

    def build_hello(self):
        rec = build_client_hello(self.secret_key, self.sni, ts=self.ts,
                                 session_id=self.session_id, pq=self.pq)
        self.hello_record = rec
        self.hello = fragment_hello(rec, self.fragments) if self.fragments else rec
        return self.hello

    def send_hello(self, hello=None):
        if hello is not None:
            self.hello = hello
            if hello[:3] == b"\x16\x03\x01" and len(hello) == 5 + struct.unpack(">H", hello[3:5])[0]:
                self.hello_record = hello
        elif self.hello is None:
            self.build_hello()
        self.sock.sendall(self.hello)

    def _read_record(self, want_prefix):
        hdr = recv_exact(self.sock, 5)
        if hdr[:3] != want_prefix:
            raise ProtocolError("expected a %s record, got %r" % (want_prefix.hex(), hdr))
        ln = struct.unpack(">H", hdr[3:5])[0]
        return hdr + recv_exact(self.sock, ln)

    def read_server_answer(self):
        """Reads and verifies the three-record server answer."""
        hs = self._read_record(b"\x16\x03\x03")
        if hs[5] != 0x02:
            raise ProtocolError("first record is not a 16 03 03 ServerHello: %r" % hs[:16])
        ccs = recv_exact(self.sock, 6)
        if ccs != CCS:
            raise ProtocolError("expected CCS 14 03 03 00 01 01, got %s" % ccs.hex())
        app = self._read_record(b"\x17\x03\x03")
        answer = hs + ccs + app
        srv_random = answer[11:43]
        zeroed = answer[:11] + b"\x00" * 32 + answer[43:]
        client_random = self.hello_record[11:43]
        want = hmac.new(self.secret_key, client_random + zeroed, hashlib.sha256).digest()
        if not hmac.compare_digest(want, srv_random):
            raise ProtocolError("server random does not authenticate")
        # session id echo and the ServerHello shape
        body = hs[9:]
        sid_len = body[34]
        sid = body[35:35 + sid_len]
        csid_len = self.hello_record[43]
        csid = self.hello_record[44:44 + csid_len]
        if sid != csid:
            raise ProtocolError("session id not echoed")
        self.server_answer = answer
        return answer

    def obfs2_bytes(self, first_payload=b""):
        """CCS + records carrying the init frame (and first payload)."""
        frame = make_init_frame(self.dc, self.tag)
        self.frame = frame
        self._enc, self._dec = obfs2_ciphers(frame, self.secret_key)
        data = wire_frame(frame, self._enc) + self._enc.update(first_payload)
        return CCS + self._records(data)

    def start_obfs2(self, first_payload=b""):
        self.sock.sendall(self.obfs2_bytes(first_payload))

    def encrypt_records(self, data):
        """Application-data records for data, without sending them."""
        return self._records(self._enc.update(data))

    def connect(self, first_payload=b""):
        self.open()
        self.send_hello()
        self.read_server_answer()
        self.start_obfs2(first_payload)
        return self

    # -- data

    def _records(self, data):
        out = bytearray()
        for i in range(0, len(data), self.max_record):
            chunk = data[i:i + self.max_record]
            out += b"\x17\x03\x03" + _u16(len(chunk)) + chunk
        return bytes(out)

    def send(self, data):
        if data:
            self.sock.sendall(self._records(self._enc.update(data)))

    def _pump(self):
        """Reads some raw bytes, decrypts complete records. False on EOF."""
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
            self.was_reset = True
        if not chunk:
            self._eof = True
            return False
        self._rawbuf += chunk
        while len(self._rawbuf) >= 5:
            rtype = self._rawbuf[0]
            if self._rawbuf[1:3] != b"\x03\x03":
                raise ProtocolError("bad record version %s" % bytes(self._rawbuf[:5]).hex())
            ln = struct.unpack(">H", self._rawbuf[3:5])[0]
            if len(self._rawbuf) < 5 + ln:
                break
            payload = bytes(self._rawbuf[5:5 + ln])
            del self._rawbuf[:5 + ln]
            self.max_record_seen = max(self.max_record_seen, ln)
            if rtype == 0x17:
                self._rxbuf += self._dec.update(payload)
            elif rtype == 0x14:
                continue
            else:
                raise ProtocolError("unexpected record type 0x%02x" % rtype)
        return True

    def recv(self, n=65536):
        """Returns up to n decrypted bytes (b"" on EOF)."""
        while not self._rxbuf:
            if self._eof or not self._pump():
                return b""
        out = bytes(self._rxbuf[:n])
        del self._rxbuf[:n]
        return out

    def recv_close_notify(self):
        """After the session's last bytes: what a Go TLS server sends before
        its FIN, one 19-byte record (the encrypted close_notify). Its
        payload reaches the stream as the start of a packet that never
        completes (7f LL LL 00: a length longer than what follows in every
        MTProto framing), then EOF: a FIN, not a reset. Raises ProtocolError
        otherwise."""
        tail = bytearray()
        while True:
            b = self.recv()
            if not b:
                break
            tail += b
        if self.was_reset:
            raise ProtocolError("reset instead of a FIN after %d bytes %s"
                                % (len(tail), bytes(tail[:8]).hex()))
        if len(tail) != 19 or tail[0] != 0x7F or tail[2:4] != b"\x00\x00" or tail[1] < 64:
            raise ProtocolError("expected a close_notify-sized record then EOF, got %d bytes %s"
                                % (len(tail), bytes(tail[:8]).hex()))
        return bytes(tail)

    def recv_closing_records(self, timeout=10.0):
        """What the server sends from now until its FIN, read off the wire:
        a list of (record type, raw record, payload decrypted on the
        client's stream). Raises ProtocolError on a reset, on a timeout and
        on bytes that are not whole records; decrypted bytes still unread
        count as a failure too (the caller has read the session first)."""
        if self._rxbuf:
            raise ProtocolError("%d session bytes still unread" % len(self._rxbuf))
        raw = bytearray(self._rawbuf)
        del self._rawbuf[:]
        deadline = time.monotonic() + timeout
        try:
            while not self._eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ProtocolError("no FIN within %.1fs (got %s)" % (timeout, bytes(raw).hex()))
                self.sock.settimeout(left)
                try:
                    chunk = self.sock.recv(65536)
                except socket.timeout:
                    continue
                except ConnectionResetError:
                    raise ProtocolError("reset instead of a FIN after %s" % bytes(raw).hex())
                if not chunk:
                    break
                raw += chunk
        finally:
            self.sock.settimeout(self.timeout)
        self._eof = True
        out = []
        while raw:
            if len(raw) < 5 or raw[1:3] != b"\x03\x03":
                raise ProtocolError("not a whole record before the FIN: %s" % bytes(raw).hex())
            ln = struct.unpack(">H", raw[3:5])[0]
            if len(raw) < 5 + ln:
                raise ProtocolError("record cut short by the FIN: %s" % bytes(raw).hex())
            rec = bytes(raw[:5 + ln])
            del raw[:5 + ln]
            dec = getattr(self, "_dec", None)
            plain = dec.update(rec[5:]) if rec[0] == 0x17 and dec else b""
            out.append((rec[0], rec, plain))
        return out

    def recv_exact(self, n):
        while len(self._rxbuf) < n:
            if self._eof or not self._pump():
                raise EOFError("EOF after %d of %d bytes" % (len(self._rxbuf), n))
        out = bytes(self._rxbuf[:n])
        del self._rxbuf[:n]
        return out

    def wait_closed(self, timeout):
        """True if the server closes the connection within timeout seconds
        (data that arrives meanwhile is discarded)."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    chunk = self.sock.recv(65536)
                except ConnectionResetError:
                    return True
                if not chunk:
                    return True
            return False
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(self.timeout)

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
