"""The fronting target (stands in for Caddy) on loopback.

Per connection it records: an optional PROXY v2 header (parsed and stripped:
command, family, src/dst address and port), every byte received after it in
order, when EOF (the peer's FIN) arrived, and whether the peer reset.

Answers (set on the instance before the client connects):
  reply_on_data  bytes sent once, after the first data arrives
  reply_on_eof   bytes sent after the peer's FIN, then the socket is closed
                 (lets a test check half-close both ways)
  blast          after the first data, send this many bytes, then close
  rst_on_data    after the first data, close with RST (SO_LINGER 0)
  tls            serve TLS (self-signed cert for tls_host) over the stream
                 after the PROXY header, answering one HTTP request; the raw
                 bytes are still recorded (the TLS engine runs on MemoryBIOs)
"""

import datetime
import ipaddress
import os
import socket
import ssl
import struct
import tempfile
import threading
import time

from recorder import RecordingServer

PP2_SIG = b"\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a"


class ProxyHeader:
    def __init__(self, raw, version_cmd, fam_proto, src, sport, dst, dport):
        self.raw = raw
        self.version_cmd = version_cmd
        self.fam_proto = fam_proto
        self.src, self.sport, self.dst, self.dport = src, sport, dst, dport

    @property
    def family(self):
        return {0x11: "TCP4", 0x21: "TCP6", 0x00: "UNSPEC"}.get(self.fam_proto, hex(self.fam_proto))

    def __repr__(self):
        return "PROXY(%s %s:%s -> %s:%s)" % (self.family, self.src, self.sport, self.dst, self.dport)


def parse_proxy_v2(buf):
    """Returns (ProxyHeader, consumed) or (None, 0) if buf does not start with
    the v2 signature; raises ValueError on a malformed header; returns
    (None, -1) if more bytes are needed."""
    if len(buf) < 16:
        if PP2_SIG.startswith(bytes(buf[:12])):
            return None, -1
        return None, 0
    if bytes(buf[:12]) != PP2_SIG:
        return None, 0
    ver_cmd, fam, ln = buf[12], buf[13], struct.unpack(">H", buf[14:16])[0]
    if len(buf) < 16 + ln:
        return None, -1
    body = bytes(buf[16:16 + ln])
    if ver_cmd >> 4 != 2:
        raise ValueError("PROXY version %d" % (ver_cmd >> 4))
    src = dst = None
    sport = dport = None
    if fam == 0x11:
        if ln < 12:
            raise ValueError("short TCP4 block")
        src = str(ipaddress.IPv4Address(body[0:4]))
        dst = str(ipaddress.IPv4Address(body[4:8]))
        sport, dport = struct.unpack(">HH", body[8:12])
    elif fam == 0x21:
        if ln < 36:
            raise ValueError("short TCP6 block")
        src = str(ipaddress.IPv6Address(body[0:16]))
        dst = str(ipaddress.IPv6Address(body[16:32]))
        sport, dport = struct.unpack(">HH", body[32:36])
    return ProxyHeader(bytes(buf[:16 + ln]), ver_cmd, fam, src, sport, dst, dport), 16 + ln


class BackendConn:
    def __init__(self, peer):
        self.peer = peer
        self.proxy = None
        self.proxy_error = None
        self.data = bytearray()
        self.eof = False           # peer sent FIN
        self.reset = False         # peer sent RST
        self.opened = time.monotonic()
        self.eof_at = None
        self.done = False
        self.http_request = None   # TLS mode: decrypted request
        self.tls_handshaken = False


def make_self_signed(host, dirpath):
    """Writes cert.pem/key.pem for host into dirpath; returns their paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(key, hashes.SHA256()))
    cpath = os.path.join(dirpath, "cert.pem")
    kpath = os.path.join(dirpath, "key.pem")
    with open(cpath, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(kpath, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cpath, kpath


class FrontingBackend(RecordingServer):
    backlog = 512

    def __init__(self, host="127.0.0.1", port=0):
        super().__init__(host, port)
        self.reply_on_data = None
        self.reply_on_eof = None
        self.tls = False
        self.blast = 0
        self.rst_on_data = False
        self.blast_sent = 0
        self.tls_host = None
        self.tls_response = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        self._ctx = None

    def enable_tls(self, host):
        d = tempfile.mkdtemp(prefix="tgf-cert-")
        cpath, kpath = make_self_signed(host, d)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cpath, kpath)
        self._ctx = ctx
        self.tls = True
        self.tls_host = host
        self.cert_path = cpath
        return cpath

    def reset_state(self):
        with self.lock:
            self.conns = []
        self.reply_on_data = None
        self.reply_on_eof = None
        self.tls = False
        self.blast = 0
        self.rst_on_data = False
        self.blast_sent = 0

    def new_conn(self, s, peer):
        c = BackendConn(peer)
        c.sock = s
        c.blast = self.blast
        c.rst_on_data = self.rst_on_data
        return c, (self.reply_on_data, self.reply_on_eof, self.tls)

    def close_conn(self, c):
        """Closes c from the site's side (FIN), as its own timeout would."""
        try:
            c.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def serve(self, s, c, reply_on_data, reply_on_eof, tls):
        buf = bytearray()
        header_done = False
        replied = False
        sslobj = inb = outb = None
        if tls:
            inb, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
            sslobj = self._ctx.wrap_bio(inb, outb, server_side=True)
            req = bytearray()
        try:
            while True:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    c.reset = True
                    break
                if not chunk:
                    c.eof = True
                    c.eof_at = time.monotonic()
                    break
                buf += chunk
                if not header_done:
                    try:
                        hdr, used = parse_proxy_v2(buf)
                    except ValueError as e:
                        c.proxy_error = str(e)
                        hdr, used = None, 0
                    if used < 0:
                        continue
                    c.proxy = hdr
                    del buf[:used]
                    header_done = True
                c.data += buf
                new = bytes(buf)
                buf.clear()
                self._changed()
                if tls and new:
                    inb.write(new)
                    self._tls_step(s, c, sslobj, inb, outb, req)
                elif reply_on_data is not None and not replied and c.data:
                    s.sendall(reply_on_data)
                    replied = True
                if c.data and c.rst_on_data:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    break
                if c.data and c.blast:
                    block = os.urandom(65536)
                    while self.blast_sent < c.blast and not self._stop:
                        s.sendall(block)
                        self.blast_sent += len(block)
                    break
            self._changed()
            if c.eof and reply_on_eof is not None:
                s.sendall(reply_on_eof)
        except OSError as e:
            c.proxy_error = c.proxy_error or repr(e)
        finally:
            c.done = True
            try:
                s.close()
            except OSError:
                pass
            self._changed()

    def _tls_step(self, s, c, sslobj, inb, outb, req):
        try:
            if not c.tls_handshaken:
                sslobj.do_handshake()
                c.tls_handshaken = True
            while True:
                try:
                    data = sslobj.read(65536)
                except ssl.SSLWantReadError:
                    break
                if not data:
                    break
                req += data
                if b"\r\n\r\n" in req and c.http_request is None:
                    c.http_request = bytes(req)
                    sslobj.write(self.tls_response)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as e:
            c.proxy_error = "tls: %s" % e
        out = outb.read()
        if out:
            s.sendall(out)
