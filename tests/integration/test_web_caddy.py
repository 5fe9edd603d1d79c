"""WEB proxy mode in the image's topology, without the container: tgfront
owns the public port, fronts every non-FakeTLS connection to Caddy (PROXY
v2, real TLS with Caddy's internal CA), and Caddy, configured from the
image's own config-templates/Caddyfile.tmpl rendered by rootfs/init's awk,
routes the bridge's requests to tgfront's loopback WEB listener.

The client speaks TLS through the public port, as the WebView does, checks
the certificate against Caddy's CA, fetches the bridge page, opens the
carrier and round-trips MTProto to the fake DC over several streams; a
wrong capability and a wrong token get exactly the site's answer.

Needs a Caddy binary: CADDY_BIN, else `caddy` on PATH, else the image
build's cache (out/cache/caddy/usr/bin/caddy); skipped without one."""

import os
import re
import shutil
import socket
import ssl
import subprocess
import time

import pytest

import webclient as wc
from conftest import ROOT, SECRET_HOST, Daemon, _finish, free_port
from helpers import rand
from test_web import dd_secret, key16, req_pq_multi_packet


def caddy_bin():
    for c in (os.environ.get("CADDY_BIN"), shutil.which("caddy"),
              os.path.join(ROOT, "out", "cache", "caddy", "usr", "bin", "caddy")):
        if c and os.access(c, os.X_OK):
            return c
    return None


def render(template, values):
    """The image's own renderer: RENDER_AWK from rootfs/init."""
    with open(os.path.join(ROOT, "rootfs", "init")) as f:
        init = f.read()
    prog = re.search(r"RENDER_AWK='(.*?)'\n", init, re.S).group(1)
    env = {"TPL_" + k: v for k, v in values.items()}
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    out = subprocess.run(["awk", prog, template], env=env, capture_output=True, check=True)
    return out.stdout.decode()


class Stack:
    """Caddy from the image's template behind tgfront, on loopback."""

    def __init__(self, workdir, secret, fakedc, d, public_port=None):
        cb = caddy_bin()
        if not cb:
            if os.environ.get("TGF_REQUIRE_WEB_DEPS"):
                pytest.fail("no caddy binary (CADDY_BIN)")
            pytest.skip("no caddy binary (set CADDY_BIN)")
        self.dir = d
        site = d / "srv"
        site.mkdir()
        (site / "index.html").write_text("<!doctype html><title>site</title><p>hello\n")
        backend_port, http_port, web_port = free_port(), free_port(), free_port()
        while len({backend_port, http_port, web_port, public_port}) < 4:
            web_port = free_port()
        text = render(os.path.join(ROOT, "config-templates", "Caddyfile.tmpl"), {
            "DOMAIN": SECRET_HOST, "HTTP_PORT": str(http_port),
            "BACKEND_PORT": str(backend_port), "EMAIL": "", "ACME_CA": "", "INTERNAL": "1",
            "CADDY_LOG_LEVEL": "INFO", "REDIRECT_TO": SECRET_HOST, "WEB": "1",
            "WEB_PORT": str(web_port), "WEB_SOCKET_PATH": "/api/v1/socket"})
        text = text.replace("root * /srv", "root * %s" % site)
        # each log to its own file: the access logs are checked for secrets
        n = 0
        while "output stdout" in text:
            text = text.replace("output stdout", "output file %s" % (d / ("log-%d.json" % n)), 1)
            n += 1
        cf = d / "Caddyfile"
        cf.write_text(text)
        env = dict(os.environ, XDG_DATA_HOME=str(d / "data"),
                   XDG_CONFIG_HOME=str(d / "config"), HOME=str(d))
        self.log = open(d / "caddy.log", "wb")
        self.caddy = subprocess.Popen([cb, "run", "--config", str(cf), "--adapter", "caddyfile"],
                                      env=env, stdout=self.log, stderr=self.log,
                                      stdin=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", backend_port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError("caddy did not start:\n" + (d / "caddy.log").read_text()[-3000:])
        top = {"bind-to": "127.0.0.1:%d" % public_port} if public_port else None
        self.daemon = Daemon(workdir, secret, fakedc.addr, ("127.0.0.1", backend_port), top=top,
                             tables={"web": {"enabled": True,
                                             "bind-to": "127.0.0.1:%d" % web_port}})
        if public_port:
            self.daemon.port = public_port
        self.daemon.start()
        self.addr = self.daemon.addr
        ca = d / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        self.ca = str(ca)
        # Caddy issues its internal certificate in the background after start.
        deadline = time.time() + 30
        while True:
            try:
                wc.connect(self.addr, SECRET_HOST, self.ca, timeout=3).close()
                break
            except (OSError, ssl.SSLError):
                if time.time() > deadline:
                    raise RuntimeError("no TLS through tgfront to caddy:\n" +
                                       (d / "caddy.log").read_text()[-3000:])
                time.sleep(0.3)

    def __getitem__(self, k):
        return {"daemon": self.daemon, "addr": self.addr, "ca": self.ca, "dir": self.dir}[k]

    def stop(self):
        if getattr(self, "daemon", None) is not None and self.daemon.proc is not None:
            _finish(self.daemon)
            self.daemon = None
        self.caddy.terminate()
        try:
            self.caddy.wait(10)
        except subprocess.TimeoutExpired:
            self.caddy.kill()
        self.log.close()


@pytest.fixture(scope="module")
def stack(workdir, secret, fakedc, tmp_path_factory):
    st = Stack(workdir, secret, fakedc, tmp_path_factory.mktemp("caddy"))
    yield st
    st.stop()


def tls(stack):
    return wc.connect(stack["addr"], SECRET_HOST, stack["ca"])


def get(stack, target, extra=()):
    s = tls(stack)
    try:
        return wc.http_get(s, SECRET_HOST, target, extra)
    finally:
        s.close()


def comparable(resp):
    """Status, headers and body, without the ones that change per request."""
    hs = sorted((k.lower(), v) for k, v in resp.headers if k.lower() not in ("date",))
    return resp.status, hs, resp.body


def site_answers(stack):
    from test_web import metrics
    for line in metrics(stack["daemon"]).splitlines():
        if line.startswith('mtg_web_answers_total{answer="site"}'):
            return int(float(line.split()[-1]))
    raise AssertionError("no site answer metric")


def test_site_unchanged_and_wrong_capability_is_the_site(stack, secret):
    before = site_answers(stack)
    home = get(stack, "/")
    assert home.status == 200 and b"hello" in home.body
    for target in ("/?bridge=" + wc.capability(SECRET_HOST, b"\xdd" + os.urandom(16)),
                   "/?bridge=AAAA", "/?bridge="):
        r = get(stack, target)
        assert comparable(r) == comparable(home), (target, r.headers, home.headers)
    missing = get(stack, "/api/v1/nothing")
    r = get(stack, "/api/v1/socket")
    assert comparable(r) == comparable(missing), (r.headers, missing.headers)
    # they did go through tgfront (which handed them back), not around it
    assert site_answers(stack) - before == 4


def test_bridge_page_through_caddy(stack, secret):
    r = get(stack, "/?bridge=" + wc.capability(SECRET_HOST, dd_secret(secret)))
    assert r.status == 200
    assert r.header("cache-control") == "no-store"
    assert "script-src 'nonce-" in r.header("content-security-policy")
    assert r.header("x-tgfront-route") is None


def test_round_trip_through_443(stack, secret, fakedc):
    # from 127.0.0.2: an address only the PROXY header and X-Forwarded-For
    # can carry to the WEB listener (Caddy itself talks from 127.0.0.1)
    page, car = wc.bridge_session(stack["addr"], SECRET_HOST, dd_secret(secret), tls=True,
                                  cafile=stack["ca"], source="127.0.0.2")
    assert car.response.status == 101 and car.accept_ok, car.response.raw_head
    car.hello()
    mux = wc.Mux(car)
    pkts = [req_pq_multi_packet() for _ in range(3)]
    ids = [mux.open(key16(secret), dc=2 + i, first_payload=p) for i, p in enumerate(pkts)]
    for sid, p in zip(ids, pkts):
        assert mux.recv_exact(sid, len(p)) == p
    big = rand(2 << 20)
    assert mux.echo(ids[0], big) == big
    car.sock.close()
    # the client's address came through Caddy (X-Forwarded-For), not Caddy's
    assert "carrier opened for 127.0.0.2" in stack["daemon"].stderr()


def test_no_capability_or_token_in_caddy_logs(stack, secret):
    """Caddy logs every request as JSON; the bridge's must not put the
    capability (query) or the token (a header) there."""
    cap = wc.capability(SECRET_HOST, dd_secret(secret))
    page, car = wc.bridge_session(stack["addr"], SECRET_HOST, dd_secret(secret), tls=True,
                                  cafile=stack["ca"])
    car.hello()
    token = wc.page_params(page.body)[1]
    car.sock.close()
    s = tls(stack)   # a HEAD goes to the site, not to tgfront: still not logged
    s.sendall(("HEAD /?bridge=%s HTTP/1.1\r\nHost: %s\r\n\r\n" % (cap, SECRET_HOST)).encode())
    wc.read_response(s, head_only=True)
    s.close()
    get(stack, "/logged-marker")
    get(stack, "/?logged=1")
    # Caddy writes a request's line after its answer: wait for the last two
    # (the requests before them were answered, and so logged, earlier).
    deadline = time.time() + 10
    while True:
        logs = "".join(p.read_text() for p in stack["dir"].glob("log-*.json"))
        if ("/logged-marker" in logs and "/?logged=1" in logs) or time.time() > deadline:
            break
        time.sleep(0.1)
    assert "/logged-marker" in logs, "the access log is not where the test looks"
    assert "/?logged=1" in logs, "the site's own / must still be logged"
    assert cap not in logs and token not in logs


def test_wrong_token_is_the_site(stack, secret):
    missing = get(stack, "/api/v1/socket")
    c = wc.Carrier(tls(stack), SECRET_HOST, "/api/v1/socket", wc.b64u(os.urandom(32)),
                   origin="https://" + SECRET_HOST)
    body = c.buf
    n = int(c.response.header("content-length") or 0)
    while len(body) < n:
        body += c.sock.recv(65536)
    c.response.body = body[:n]
    assert comparable(c.response) == comparable(missing), (c.response.headers, missing.headers)
    c.sock.close()
