"""ClientHellos shaped like tdlib's (td/mtproto/TlsInit.cpp, written from
its op list, not from tgfront's code) and the two ways of reading what a
server answers:

  read_like_tdlib  exactly what TlsInit::wait_hello_response accepts: a
                   16 03 03 record (length skipped), then 14 03 03 00 01 01
                   17 03 03 and one record (length skipped), then the HMAC
                   over client random || those bytes with the random zeroed.
  read_flight      a real TLS 1.3 server's first flight: ServerHello, CCS,
                   then every encrypted record until the server goes quiet.

Shapes: "mlkem" (tdlib since 2025-11: X25519MLKEM768 + X25519 shares) and
"x25519" (tdlib before: an X25519 share only)."""

import hashlib
import hmac
import os
import select
import socket
import struct
import time

Q = 3329
SHAPES = ("x25519", "mlkem")


def _u16(n):
    return struct.pack(">H", n)


def _ext(t, body):
    return _u16(t) + _u16(len(body)) + body


def _grease():
    g = bytearray(b & 0xF0 | 0x0A for b in os.urandom(7))
    for i in range(1, 7, 2):
        if g[i] == g[i - 1]:
            g[i] ^= 0x10
    return [bytes([b, b]) for b in g]


def mlkem_ek():
    """An ML-KEM-768 encapsulation key: 768 coefficients < q (tdlib draws
    each as random % 3329), then 32 random bytes."""
    out = bytearray()
    for _ in range(384):
        a, b = (struct.unpack("<I", os.urandom(4))[0] % Q for _ in range(2))
        out += bytes([a & 255, (a >> 8) | ((b & 15) << 4), b >> 4])
    return bytes(out) + os.urandom(32)


def x25519_key():
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives import serialization
    return X25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def build_hello(shape, sni, key=None, ts=None):
    """One 16 03 01 record. With key (the secret's 16 bytes) the random is
    the FakeTLS digest; without, it is random (a browser-like hello)."""
    g = _grease()
    sni = sni.encode() if isinstance(sni, str) else sni
    mlkem = shape == "mlkem"
    exts = [_ext(struct.unpack(">H", g[2])[0], b"")]
    name = b"\x00" + _u16(len(sni)) + sni
    exts.append(_ext(0x0000, _u16(len(name)) + name))
    exts.append(bytes.fromhex("000500050100000000"))
    groups = g[4] + (bytes.fromhex("11ec001d00170018") if mlkem else bytes.fromhex("001d00170018"))
    exts.append(_ext(0x000A, _u16(len(groups)) + groups))
    exts.append(bytes.fromhex("000b00020100"))
    exts.append(bytes.fromhex("000d0012001004030804040105030805050108060601"))
    exts.append(bytes.fromhex("0010000e000c02683208687474702f312e31"))
    exts += [bytes.fromhex(h) for h in ("00120000", "00170000", "001b0003020002", "00230000")]
    exts.append(bytes.fromhex("002b000706") + g[6] + bytes.fromhex("03040303"))
    exts.append(bytes.fromhex("002d00020101"))
    shares = g[4] + b"\x00\x01\x00"
    if mlkem:
        shares += bytes.fromhex("11ec04c0") + mlkem_ek() + x25519_key()
    shares += bytes.fromhex("001d0020") + x25519_key()
    exts.append(_ext(0x0033, _u16(len(shares)) + shares))
    exts.append(bytes.fromhex("44cd00050003026832" if mlkem else "446900050003026832"))
    if mlkem:
        # encrypted_client_hello (outer, GREASE-like): tdlib's current hello
        # has one; tgfront's prober leaves it out, so this checks that a
        # site without ECH keys answers the same either way.
        payload = os.urandom(144 + 32 * (os.urandom(1)[0] % 4))
        ech = bytes.fromhex("0000010001") + os.urandom(1) + b"\x00\x20" + os.urandom(32)
        exts.append(_ext(0xFE0D, ech + _u16(len(payload)) + payload))
    exts.append(bytes.fromhex("ff01000100"))
    exts.append(g[3] + b"\x00\x01\x00")
    head = b"\x03\x03" + b"\x00" * 32 + b"\x20" + os.urandom(32)
    head += b"\x00\x20" + g[0] + bytes.fromhex("130113021303c02bc02fc02cc030cca9cca8c013c014009c009d002f0035") + b"\x01\x00"
    blob = b"".join(exts)
    if 5 + 4 + len(head) + 2 + len(blob) < 513:
        pad = 517 - (5 + 4 + len(head) + 2 + len(blob)) - 4
        blob += _ext(0x0015, b"\x00" * pad)
    body = head + _u16(len(blob)) + blob
    hs = b"\x01" + struct.pack(">I", len(body))[1:] + body
    rec = b"\x16\x03\x01" + _u16(len(hs)) + hs
    if key is None:
        return rec[:11] + os.urandom(32) + rec[43:]
    d = hmac.new(key, rec, hashlib.sha256).digest()
    t = struct.unpack("<I", d[28:32])[0] ^ (int(time.time()) if ts is None else ts)
    return rec[:11] + d[:28] + struct.pack("<I", t & 0xFFFFFFFF) + rec[43:]


def _recv_exact(sock, n):
    b = bytearray()
    while len(b) < n:
        c = sock.recv(n - len(b))
        if not c:
            raise EOFError("EOF after %d of %d bytes" % (len(b), n))
        b += c
    return bytes(b)


def read_like_tdlib(sock, hello, key):
    """tdlib's wait_hello_response, byte for byte. Returns the answer."""
    buf = b""
    for prefix in (b"\x16\x03\x03", b"\x14\x03\x03\x00\x01\x01\x17\x03\x03"):
        got = _recv_exact(sock, len(prefix) + 2)
        if got[:len(prefix)] != prefix:
            raise AssertionError("First part of response to hello is invalid: %s" % got.hex())
        skip = struct.unpack(">H", got[-2:])[0]
        buf += got + _recv_exact(sock, skip)
    zeroed = buf[:11] + b"\x00" * 32 + buf[43:]
    want = hmac.new(key, hello[11:43] + zeroed, hashlib.sha256).digest()
    if want != buf[11:43]:
        raise AssertionError("Response hash mismatch")
    return buf


def _records(raw):
    recs, off = [], 0
    while off + 5 <= len(raw):
        n = struct.unpack(">H", raw[off + 3:off + 5])[0]
        if off + 5 + n > len(raw):
            break
        recs.append((raw[off], n))
        off += 5 + n
    return recs


def read_flight(sock, quiet=0.3, limit=8.0, expect=None):
    """ServerHello record, CCS, encrypted records until `quiet` s of
    silence (or, with expect, as soon as that many encrypted records are
    in). Returns (serverhello_record, [record lengths])."""
    sh = _recv_exact(sock, 5)
    sh += _recv_exact(sock, struct.unpack(">H", sh[3:5])[0])
    raw = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        r, _, _ = select.select([sock], [], [], quiet)
        if not r:
            break
        c = sock.recv(65536)
        if not c:
            break
        raw += c
        if expect is not None and len(_records(raw)) >= expect + 1:
            break
    recs = _records(raw)
    assert recs and recs[0] == (0x14, 1), "no CCS after the ServerHello: %r" % recs[:2]
    assert all(t == 0x17 for t, _ in recs[1:]), recs
    return sh, [n for _, n in recs[1:]]


def parse_server_hello(rec):
    """(cipher, [extension types], group, share bytes, server random, sid)."""
    assert rec[:3] == b"\x16\x03\x03" and rec[5] == 2, rec[:8].hex()
    b = rec[9:]
    rnd = b[2:34]
    sid_len = b[34]
    sid = b[35:35 + sid_len]
    off = 35 + sid_len
    cipher = struct.unpack(">H", b[off:off + 2])[0]
    off += 3
    end = off + 2 + struct.unpack(">H", b[off:off + 2])[0]
    off += 2
    order, group, share = [], None, b""
    while off < end:
        t, n = struct.unpack(">HH", b[off:off + 4])
        order.append(t)
        if t == 0x0033:
            group = struct.unpack(">H", b[off + 4:off + 6])[0]
            share = b[off + 8:off + 4 + n]
        off += 4 + n
    return cipher, order, group, share, rnd, sid


def x25519_on_curve(pub):
    """A real X25519 public key is a point of the curve, not of its twist:
    y^2 = x^3 + 486662 x^2 + x must be a square mod p."""
    p = 2 ** 255 - 19
    x = int.from_bytes(pub, "little") & ((1 << 255) - 1)
    y2 = (x * x * x + 486662 * x * x + x) % p
    return y2 != 0 and pow(y2, (p - 1) // 2, p) == 1


def mlkem_u_coefficients(ct):
    """The 768 10-bit coefficients of an ML-KEM-768 ciphertext's first part."""
    v = int.from_bytes(ct[:960], "little")
    return [(v >> (10 * i)) & 1023 for i in range(768)]


def compress10_heavy_mass():
    """Compress_10 of a uniform value mod q lands in a bucket with 4
    preimages with this probability (random 10-bit values: 257/1024)."""
    sizes = [0] * 1024
    for x in range(Q):
        sizes[((x << 10) + Q // 2) // Q & 1023] += 1
    heavy = {c for c in range(1024) if sizes[c] == 4}
    return heavy, sum(sizes[c] for c in heavy) / Q


def proxy_v2(src, dst):
    """A PROXY v2 header (TCP4) for a direct connection to a Caddy that
    requires one."""
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    body = socket.inet_aton(src[0]) + socket.inet_aton(dst[0]) + struct.pack(">HH", src[1], dst[1])
    return sig + b"\x21\x11" + _u16(len(body)) + body
