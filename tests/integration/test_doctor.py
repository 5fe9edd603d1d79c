"""doctor: against the image's Caddyfile (a local Caddy with its internal
CA, behind a required PROXY v2 header), a fake DC, and broken setups, each
of which must produce its own FAIL line. doctor runs in this suite's
loopback-only namespace like everything else."""

import os
import resource
import socket
import subprocess
import sys
import threading
import time

import pytest

import tgclient
from conftest import ROOT, free_port, hostport, render_config, tgfront_bin
from socks5server import Socks5Server
from tlsutil import HTTPSServer, TestCA

sys.path.insert(0, os.path.join(ROOT, "tests", "probes"))
from stack import Proc, caddy_bin, render, wait_port  # noqa: E402

HOST = "localhost"


@pytest.fixture(scope="module")
def caddy(tmp_path_factory):
    """The image's Caddyfile for DOMAIN=localhost with TLS=internal."""
    if not os.access(caddy_bin(), os.X_OK):
        pytest.skip("no Caddy binary (./build.sh rootfs fetches it into out/cache)")
    d = str(tmp_path_factory.mktemp("caddy"))
    https_port, http_port = free_port(), free_port()
    values = {"DOMAIN": HOST, "HTTP_PORT": http_port, "BACKEND_PORT": https_port, "EMAIL": "",
              "ACME_CA": "", "INTERNAL": "1", "REDIRECT_TO": HOST, "CADDY_LOG_LEVEL": "INFO"}
    text = render(os.path.join(ROOT, "config-templates", "Caddyfile.tmpl"), values)
    text = text.replace("\troot * /srv\n", "\troot * %s\n" % d)
    cfg = os.path.join(d, "Caddyfile")
    with open(cfg, "w") as f:
        f.write(text)
    with open(os.path.join(d, "index.html"), "w") as f:
        f.write("<html>site</html>\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": d, "XDG_DATA_HOME": d,
           "XDG_CONFIG_HOME": os.path.join(d, "config")}
    p = Proc([caddy_bin(), "run", "--config", cfg, "--adapter", "caddyfile"],
             os.path.join(d, "caddy.log"), env)
    try:
        wait_port(https_port, 30, p.p, "caddy", p.log)
        root = os.path.join(d, "caddy", "pki", "authorities", "local", "root.crt")
        crt = os.path.join(d, "caddy", "certificates", "local", HOST, HOST + ".crt")
        deadline = time.monotonic() + 30
        while not (os.path.exists(root) and os.path.exists(crt)):
            if time.monotonic() > deadline:
                raise RuntimeError("caddy issued no certificate:\n" + p.text()[-3000:])
            time.sleep(0.1)
        yield {"port": https_port, "root": root, "dir": d}
    finally:
        p.stop()


def write_config(workdir, front_port, dc_port, top=None, tables=None, secret_host=HOST,
                 proxy_protocol=True):
    secret = tgclient.make_secret(secret_host)
    port = free_port()
    cfg_top = {"secret": tgclient.secret_hex(secret), "bind-to": hostport("127.0.0.1", port),
               "concurrency": 64}
    cfg_top.update(top or {})
    t = {"domain-fronting": {"host": "127.0.0.1", "port": front_port,
                             "proxy-protocol": proxy_protocol},
         "network.timeout": {"tcp": "2s"},
         "datacenters": {str(i): [hostport("127.0.0.1", dc_port)] for i in (1, 2, 3, 4, 5, 203)}}
    for name, kv in (tables or {}).items():
        t.setdefault(name, {}).update(kv)
    path = os.path.join(workdir, "doctor-%d.toml" % port)
    with open(path, "w") as f:
        f.write(render_config(cfg_top, t))
    return path, port


def doctor(*args, preexec_fn=None):
    r = subprocess.run([tgfront_bin(), "doctor"] + list(args), capture_output=True,
                       timeout=120, preexec_fn=preexec_fn)
    out = r.stdout.decode()
    print("\n$ tgfront doctor %s\n%s%s(exit %d)" % (" ".join(args), out, r.stderr.decode(),
                                                   r.returncode))
    return r.returncode, out


def lines(out, word):
    return [l for l in out.splitlines() if l.startswith(word)]


def has_line(out, prefix):
    return any(l.startswith(prefix) for l in out.splitlines())


def test_doctor_all_ok_against_caddy(caddy, fakedc, workdir):
    cfg, _ = write_config(workdir, caddy["port"], fakedc.port)
    rc, out = doctor(cfg, "--ca-file", caddy["root"], "--ipv4", "127.0.0.1")
    assert rc == 0, out
    assert not lines(out, "FAIL") and not lines(out, "WARN"), out
    for name in ("config", "fronting loop", "fronting target", "fronting TLS", "certificate",
                 "clock", "hostname", "telegram", "descriptors"):
        assert has_line(out, "OK   %s: " % name), "no OK line for %s:\n%s" % (name, out)
    assert len([l for l in lines(out, "OK   telegram:")]) == 6   # DCs 1-5 and 203
    assert "DC 2 reachable at 127.0.0.1:%d" % fakedc.port in out


def test_doctor_without_ca_file_fails_the_certificate(caddy, fakedc, workdir):
    cfg, _ = write_config(workdir, caddy["port"], fakedc.port)
    rc, out = doctor(cfg, "--ipv4", "127.0.0.1",
                     "--ca-file", "/etc/ssl/certs/ca-certificates.crt")
    assert rc == 1
    assert has_line(out, "OK   fronting TLS: ")
    assert has_line(out, "FAIL certificate: the certificate chain does not lead to a trusted CA")


def test_doctor_without_proxy_header_fails_tls(caddy, fakedc, workdir):
    """Caddy requires the PROXY header: a config that does not send one can
    not reach the site over TLS, and doctor says what to set."""
    cfg, _ = write_config(workdir, caddy["port"], fakedc.port, proxy_protocol=False)
    rc, out = doctor(cfg, "--ca-file", caddy["root"], "--ipv4", "127.0.0.1")
    assert rc == 1
    assert has_line(out, "FAIL fronting TLS: ")
    assert "proxy-protocol = true" in out


def test_doctor_invalid_config(workdir):
    path = os.path.join(workdir, "doctor-bad.toml")
    with open(path, "w") as f:
        f.write('secret = "nope"\nbind-to = "127.0.0.1:1"\n')
    rc, out = doctor(path)
    assert rc == 1
    assert has_line(out, "FAIL config: %s:1: key 'secret' is invalid" % path), out


def test_doctor_missing_default_config_fails():
    rc, out = doctor()
    assert rc == 1
    assert has_line(out, "FAIL config: /run/tgfront/config.toml: cannot open"), out


def test_doctor_fronting_target_down(fakedc, workdir):
    cfg, _ = write_config(workdir, free_port(), fakedc.port)
    rc, out = doctor(cfg, "--ipv4", "127.0.0.1")
    assert rc == 1
    assert has_line(out, "FAIL fronting target: 127.0.0.1:"), out
    assert "Connection refused" in out


def test_doctor_fronting_target_not_tls(fakedc, workdir):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                return
            c.settimeout(2)
            try:
                c.recv(4096)
                c.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            c.close()
    threading.Thread(target=serve, daemon=True).start()
    try:
        cfg, _ = write_config(workdir, srv.getsockname()[1], fakedc.port)
        rc, out = doctor(cfg, "--ipv4", "127.0.0.1")
    finally:
        stop.set()
        srv.close()
    assert rc == 1
    assert has_line(out, "OK   fronting target: ")
    assert has_line(out, "FAIL fronting TLS: 127.0.0.1 does not answer TLS for localhost"), out


def test_doctor_certificate_for_another_name(fakedc, workdir):
    ca = TestCA(workdir)
    cert, key = ca.issue(["other.example"])
    web = HTTPSServer(cert, key, strip_proxy=True).start()
    try:
        cfg, _ = write_config(workdir, web.addr[1], fakedc.port)
        rc, out = doctor(cfg, "--ca-file", ca.path, "--ipv4", "127.0.0.1")
    finally:
        web.stop()
    assert rc == 1
    assert has_line(out, "FAIL certificate: the certificate is not valid for this host name"), out


def test_doctor_rsa_certificate(fakedc, workdir):
    """An RSA CA and server key: the ECDHE_RSA suites and RSA signatures."""
    ca = TestCA(workdir, rsa_key=True)
    cert, key = ca.issue([HOST], rsa_key=True)
    web = HTTPSServer(cert, key, strip_proxy=True, files={"/": b"hi\n"}).start()
    try:
        cfg, _ = write_config(workdir, web.addr[1], fakedc.port)
        rc, out = doctor(cfg, "--ca-file", ca.path, "--ipv4", "127.0.0.1")
    finally:
        web.stop()
    assert rc == 0, out
    assert has_line(out, "OK   certificate: valid for localhost"), out


def test_doctor_expired_certificate(fakedc, workdir):
    ca = TestCA(workdir)
    cert, key = ca.issue([HOST], expired=True)
    web = HTTPSServer(cert, key, strip_proxy=True).start()
    try:
        cfg, _ = write_config(workdir, web.addr[1], fakedc.port)
        rc, out = doctor(cfg, "--ca-file", ca.path, "--ipv4", "127.0.0.1")
    finally:
        web.stop()
    assert rc == 1
    assert has_line(out, "FAIL certificate: the certificate has expired"), out


@pytest.mark.parametrize("skew,word", [(120, "FAIL"), (-120, "FAIL"), (0, "OK  ")])
def test_doctor_clock_against_the_sites_date(fakedc, workdir, skew, word):
    ca = TestCA(workdir)
    cert, key = ca.issue([HOST])
    web = HTTPSServer(cert, key, date_skew=skew, strip_proxy=True, files={"/": b"hi\n"}).start()
    try:
        cfg, _ = write_config(workdir, web.addr[1], fakedc.port)
        rc, out = doctor(cfg, "--ca-file", ca.path, "--ipv4", "127.0.0.1")
    finally:
        web.stop()
    assert has_line(out, "OK   certificate: valid for localhost"), out
    assert has_line(out, word + " clock: "), out
    if word == "FAIL":
        assert rc == 1
        assert ("behind" if skew > 0 else "ahead of") in out


def test_doctor_hostname_not_this_host(caddy, fakedc, workdir):
    cfg, _ = write_config(workdir, caddy["port"], fakedc.port)
    rc, out = doctor(cfg, "--ca-file", caddy["root"], "--ipv4", "192.0.2.10")
    assert rc == 1
    assert has_line(out, "FAIL hostname: localhost resolves to "), out
    assert "192.0.2.10" in out
    rc, out = doctor(cfg, "--ca-file", caddy["root"])
    assert has_line(out, "WARN hostname: this host's public address is unknown"), out
    assert rc == 0, "a warning alone must not fail:\n" + out


def test_doctor_dc_down(caddy, fakedc, workdir):
    cfg, _ = write_config(workdir, caddy["port"], fakedc.port,
                          tables={"datacenters": {"2": [hostport("127.0.0.1", free_port())]}})
    rc, out = doctor(cfg, "--ca-file", caddy["root"], "--ipv4", "127.0.0.1")
    assert rc == 1
    fails = lines(out, "FAIL")
    assert len(fails) == 1 and fails[0].startswith("FAIL telegram: DC 2 unreachable"), out
    assert has_line(out, "OK   telegram: DC 4 reachable")


def test_doctor_dcs_through_socks5(caddy, fakedc, workdir):
    s = Socks5Server(user="u", password="pw").start()
    try:
        cfg, _ = write_config(workdir, caddy["port"], fakedc.port, tables={
            "network": {"proxies": ["socks5://u:pw@%s:%d" % s.addr]}})
        rc, out = doctor(cfg, "--ca-file", caddy["root"], "--ipv4", "127.0.0.1")
        assert rc == 0, out
        assert "DC 2 reachable at 127.0.0.1:%d via SOCKS5 127.0.0.1:%d" % (
            fakedc.port, s.addr[1]) in out
        assert len(s.connects) == 6
        s.refuse = 2
        rc, out = doctor(cfg, "--ca-file", caddy["root"], "--ipv4", "127.0.0.1")
        assert rc == 1
        assert has_line(out, "FAIL telegram: DC 1 unreachable via SOCKS5"), out
        assert "connection not allowed by ruleset" in out
    finally:
        s.stop()


def test_doctor_fronting_loop(fakedc, workdir):
    port = free_port()
    cfg, _ = write_config(workdir, port, fakedc.port,
                          top={"bind-to": hostport("127.0.0.1", port)})
    rc, out = doctor(cfg, "--ipv4", "127.0.0.1")
    assert rc == 1
    assert has_line(out, "FAIL fronting loop: fronting loop: the fronting target 127.0.0.1:%d"
                    % port), out


def test_doctor_descriptor_limit(caddy, fakedc, workdir):
    cfg, _ = write_config(workdir, caddy["port"], fakedc.port, top={"concurrency": 4096})

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    rc, out = doctor(cfg, "--ca-file", caddy["root"], "--ipv4", "127.0.0.1",
                     preexec_fn=low_limit)
    assert rc == 1
    assert has_line(out, "FAIL descriptors: the hard limit 256 carries 96 connections, fewer "
                    "than concurrency 4096"), out
