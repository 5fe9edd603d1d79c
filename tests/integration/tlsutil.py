"""A throw-away CA and server certificates (python3-cryptography), and a
small HTTPS server that may send a skewed Date, for the list and doctor
tests."""

import datetime
import http.server
import os
import socket
import ssl
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class TestCA:
    __test__ = False   # not a pytest class
    def __init__(self, workdir, name="tgfront test CA", rsa_key=False):
        from cryptography.hazmat.primitives.asymmetric import rsa
        self.workdir = workdir
        self.key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if rsa_key
                    else ec.generate_private_key(ec.SECP256R1()))
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder()
                     .subject_name(_name(name)).issuer_name(_name(name))
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .add_extension(x509.KeyUsage(True, False, False, False, False, True, True,
                                                  False, False), True)
                     .sign(self.key, hashes.SHA256()))
        self.path = os.path.join(workdir, "ca-%d.pem" % id(self))
        with open(self.path, "wb") as f:
            f.write(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, names, expired=False, rsa_key=False):
        """Writes a server certificate for names (DNS names or IPs) and its
        key (P-256, or RSA-2048: the ECDHE_RSA suites); returns (cert_path,
        key_path)."""
        import ipaddress
        from cryptography.hazmat.primitives.asymmetric import rsa
        key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if rsa_key
               else ec.generate_private_key(ec.SECP256R1()))
        now = datetime.datetime.now(datetime.timezone.utc)
        start = now - datetime.timedelta(days=10 if expired else 1)
        end = now - datetime.timedelta(days=1) if expired else now + datetime.timedelta(days=10)
        sans = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        cert = (x509.CertificateBuilder()
                .subject_name(_name(names[0])).issuer_name(self.cert.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(end)
                .add_extension(x509.SubjectAlternativeName(sans), False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
                .sign(self.key, hashes.SHA256()))
        base = os.path.join(self.workdir, "srv-%s-%d" % (names[0], id(cert)))
        with open(base + ".crt", "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
            f.write(self.cert.public_bytes(serialization.Encoding.PEM))
        with open(base + ".key", "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        return base + ".crt", base + ".key"


class HTTPSServer:
    """Serves `files` ({path: bytes}) over TLS with the given certificate.
    date_skew shifts the Date header; strip_proxy drops a PROXY v2 header
    first (as a site behind tgfront would get from doctor). Counts GETs."""

    def __init__(self, cert, key, files=None, date_skew=0, strip_proxy=False,
                 host="127.0.0.1"):
        self.files = dict(files or {})
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *a):
                pass

            def date_time_string(self, timestamp=None):
                import time
                return super().date_time_string(time.time() + date_skew)

            def _answer(self, body_wanted):
                outer.requests.append(self.path)
                body = outer.files.get(self.path)
                if body is None:
                    self.send_response(404)
                    body = b"not found\n"
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body_wanted:
                    self.wfile.write(body)

            def do_GET(self):
                self._answer(True)

            def do_HEAD(self):
                self._answer(False)

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.ctx = ctx
        self.strip_proxy = strip_proxy
        self.httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        raw_get_request = self.httpd.get_request

        def get_request():
            s, addr = raw_get_request()
            if outer.strip_proxy:
                s.settimeout(5)
                head = s.recv(16, socket.MSG_PEEK)
                if head.startswith(b"\r\n\r\n\x00\r\nQUIT\n"):
                    fixed = s.recv(16)
                    extra = int.from_bytes(fixed[14:16], "big")
                    while extra:
                        extra -= len(s.recv(extra))
            return ctx.wrap_socket(s, server_side=True), addr
        self.httpd.get_request = get_request
        self.addr = self.httpd.server_address[:2]

    def start(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
