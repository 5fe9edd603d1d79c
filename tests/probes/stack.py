"""The two sites a prober compares, built from the image's own templates.

  reference  a stock Caddy listening directly (what a censor compares with):
             config-templates/Caddyfile.tmpl as /init renders it, minus the
             proxy_protocol listener wrapper.
  fronted    the same Caddyfile with the wrapper (exactly the image's), behind
             tgfront (config-templates/tgfront.toml.tmpl as /init renders it,
             [domain-fronting] proxy-protocol = true) and a fake DC.

Both Caddys share one data directory, so they serve the same internal-CA
certificate and their TLS flights have the same lengths. The site root is a
temp dir with the image's index.html and a large file; /upload is proxied to
a sink that reads and discards the body (Caddy itself has no handler that
consumes a request body).
"""

import hashlib
import http.server
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import tgclient  # noqa: E402
from fakedc import FakeDC  # noqa: E402

DOMAIN = "tgfront.test"
BIG_SIZE = 100 * 1000 * 1000


_HANDED_OUT = set()


def free_port():
    """A free port this process never handed out before (the caller binds
    it later; until then a second call could get the same closed port)."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p not in _HANDED_OUT:
            _HANDED_OUT.add(p)
            return p


def render(template_path, values):
    """/init's RENDER_AWK in Python: @NAME@ is replaced; a line starting with
    @?NAME@ is kept (without the marker) only when NAME is non-empty."""
    out = []
    with open(template_path) as f:
        for line in f.read().split("\n"):
            m = re.match(r"^@\?([A-Z_]+)@", line)
            if m:
                if not values.get(m.group(1)):
                    continue
                line = line[m.end():]

            def sub(m):
                return str(values[m.group(1)])
            out.append(re.sub(r"@([A-Z_]+)@", sub, line))
    return "\n".join(out)


def drop_block(text, opener):
    """Removes the Caddyfile block whose first line ends with opener."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.strip() == opener:
            depth = 0
            for j in range(i, len(lines)):
                depth += lines[j].count("{") - lines[j].count("}")
                if depth == 0:
                    return "\n".join(lines[:i] + lines[j + 1:])
    raise AssertionError("block %r not found in the Caddyfile" % opener)


def wait_port(port, timeout, proc=None, what="", log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited with %s at start:\n%s" % (
                what, proc.returncode, read_tail(log)))
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("%s not listening on %d after %ss:\n%s" % (what, port, timeout, read_tail(log)))


def read_tail(path, n=4000):
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")[-n:]
    except OSError:
        return ""


class Proc:
    def __init__(self, argv, log, env=None):
        self.log = log
        self._f = open(log, "wb")
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._f,
                                  stderr=self._f, env=env)

    def stop(self):
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.p.pid, signal.SIGKILL)
                self.p.wait()
        self._f.close()
        return self.p.returncode

    def text(self):
        return read_tail(self.log, 1 << 24)


class _SinkHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        h = hashlib.sha256()
        left = n
        while left:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
        body = ("%d %s\n" % (n - left, h.hexdigest())).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def version_string(self):
        return "sink"

    def date_time_string(self, timestamp=None):
        return "masked"

    def log_message(self, *a):
        pass


class Sink:
    """HTTP upstream that reads and discards a POST body, answering with its
    length and SHA-256 (both sites proxy /upload here)."""

    def __init__(self):
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SinkHandler)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def image_caddy_godebug():
    """The GODEBUG the image's Caddy service sets (rootfs/etc/s6/services/
    caddy/run), so the test sites negotiate as the image's does."""
    with open(os.path.join(ROOT, "rootfs", "etc", "s6", "services", "caddy", "run")) as f:
        m = re.search(r"^\S*/export GODEBUG (\S+)$", f.read(), re.M)
    assert m, "the caddy service sets no GODEBUG"
    return m.group(1)


def caddy_bin():
    b = os.environ.get("CADDY_BIN", os.path.join(ROOT, "out", "cache", "caddy", "usr", "bin", "caddy"))
    if not os.path.isabs(b):
        b = os.path.join(ROOT, b)
    return b


def tgfront_bin():
    b = os.environ.get("TGFRONT_BIN", os.path.join(ROOT, "out", "musl", "tgfront"))
    if not os.path.isabs(b):
        b = os.path.join(ROOT, b)
    return b


class Stack:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tgf-probe-")
        self.srv = os.path.join(self.dir, "srv")
        os.makedirs(self.srv)
        shutil.copy(os.path.join(ROOT, "rootfs", "srv", "index.html"), self.srv)
        self.big_path = os.path.join(self.srv, "big.bin")
        self._write_big()
        self.data = os.path.join(self.dir, "data")
        os.makedirs(self.data)
        self.secret = tgclient.make_secret(DOMAIN)
        self.procs = []
        self.sink = None
        self.dc = None

    def _write_big(self):
        h = hashlib.sha256()
        block = os.urandom(1 << 20)
        with open(self.big_path, "wb") as f:
            left = BIG_SIZE
            while left:
                b = block[:min(left, len(block))]
                f.write(b)
                h.update(b)
                left -= len(b)
        self.big_sha = h.hexdigest()

    # -- configs

    def caddyfile(self, name, https_port, http_port, wrapper):
        values = {
            "DOMAIN": DOMAIN, "HTTP_PORT": http_port, "BACKEND_PORT": https_port,
            "EMAIL": "", "ACME_CA": "", "INTERNAL": "1", "REDIRECT_TO": DOMAIN,
            # DEBUG (the image's LOG_LEVEL=debug) so the log shows how each
            # connection ended for the site (reset or EOF); it changes no bytes.
            "CADDY_LOG_LEVEL": "DEBUG",
        }
        text = render(os.path.join(ROOT, "config-templates", "Caddyfile.tmpl"), values)
        if not wrapper:
            # The stock reference: the same server block without the wrappers
            # (Caddy refuses a lone `tls` wrapper: it is the default).
            text = drop_block(text, "listener_wrappers {")
        # The test's site: its root, and /upload to the discarding sink.
        text, n = re.subn(r"\troot \* /srv\n", "\troot * %s\n\treverse_proxy /upload 127.0.0.1:%d\n"
                          % (self.srv, self.sink.port), text)
        assert n == 1, "root * /srv not found in Caddyfile.tmpl"
        path = os.path.join(self.dir, "Caddyfile-" + name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def tgfront_config(self, port, backend_port):
        values = {
            "SECRET": self.secret.hex(), "BIND_TO": "127.0.0.1:%d" % port,
            "CONCURRENCY": 4096, "PREFER_IP": "prefer-ipv6", "DEBUG": "false",
            "BACKEND_PORT": backend_port, "DIAL_TIMEOUT": "10s", "IDLE_TIMEOUT": "5m",
            "HANDSHAKE_TIMEOUT": "10s", "ANTI_REPLAY": "true", "ANTI_REPLAY_MAX_SIZE": "1mib",
            "ANTI_REPLAY_ERROR_RATE": "0.001", "STATS": "", "STATS_BIND": "", "OPS_TABLES": "",
            "SECRETS_TABLE": "",
            "DATACENTERS": "[datacenters]\n" + "\n".join(
                '%d = ["127.0.0.1:%d"]' % (i, self.dc.port) for i in range(1, 6)),
        }
        text = render(os.path.join(ROOT, "config-templates", "tgfront.toml.tmpl"), values)
        path = os.path.join(self.dir, "tgfront.toml")
        with open(path, "w") as f:
            f.write(text)
        return path

    # -- processes

    def start_caddy(self, name, wrapper):
        https_port, http_port = free_port(), free_port()
        cfg = self.caddyfile(name, https_port, http_port, wrapper)
        env = {"PATH": "/usr/bin:/bin", "HOME": self.data, "XDG_DATA_HOME": self.data,
               "XDG_CONFIG_HOME": os.path.join(self.dir, "config-" + name),
               "GODEBUG": image_caddy_godebug()}
        log = os.path.join(self.dir, "caddy-%s.log" % name)
        p = Proc([caddy_bin(), "run", "--config", cfg, "--adapter", "caddyfile"], log, env)
        self.procs.append(p)
        wait_port(https_port, 30, p.p, "caddy " + name, log)
        return p, https_port

    def wait_cert(self, timeout=30):
        crt = os.path.join(self.data, "caddy", "certificates", "local", DOMAIN, DOMAIN + ".crt")
        deadline = time.monotonic() + timeout
        while not os.path.exists(crt):
            if time.monotonic() > deadline:
                raise RuntimeError("caddy issued no internal certificate:\n" + self.ref_caddy.text()[-4000:])
            time.sleep(0.1)

    @property
    def ca_path(self):
        return os.path.join(self.data, "caddy", "pki", "authorities", "local", "root.crt")

    def start(self):
        self.sink = Sink()
        self.dc = FakeDC().start()
        self.ref_caddy, self.ref_port = self.start_caddy("reference", wrapper=False)
        self.wait_cert()
        # Started after the certificate exists, so it loads the same one.
        self.front_caddy, self.front_caddy_port = self.start_caddy("fronted", wrapper=True)
        self.tg_port = free_port()
        cfg = self.tgfront_config(self.tg_port, self.front_caddy_port)
        self.tgfront = Proc([tgfront_bin(), "run", cfg], os.path.join(self.dir, "tgfront.log"))
        self.procs.append(self.tgfront)
        wait_port(self.tg_port, 10, self.tgfront.p, "tgfront", self.tgfront.log)
        return self

    def stop(self):
        codes = {}
        for p in reversed(self.procs):
            codes[p.log] = p.stop()
        if self.dc:
            self.dc.stop()
        if self.sink:
            self.sink.stop()
        try:
            os.unlink(self.big_path)
        except OSError:
            pass
        return codes

    def client(self, **kw):
        """A FakeTLS client holding the secret, pointed at tgfront."""
        return tgclient.FakeTLSClient(("127.0.0.1", self.tg_port), self.secret, **kw)
