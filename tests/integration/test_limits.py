"""The concurrency limit and the inbound PROXY listener: website visitors
never use up Telegram's slots, over-limit connections behind a load
balancer are fronted with the real client's address, gauges stay right, and
fronted connections outlive the relay idle timeout."""

import json
import socket
import struct
import subprocess
import time
import urllib.request

from conftest import tgfront_bin
from helpers import raw_connect, recv_n, round_trip, sees_eof

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v2(src, sport, dst, dport):
    """A PROXY v2 header as a load balancer in front of tgfront sends it."""
    if ":" in src:
        body = (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
                + struct.pack(">HH", sport, dport))
        return SIG + b"\x21\x21" + struct.pack(">H", len(body)) + body
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack(">HH", sport, dport)
    return SIG + b"\x21\x11" + struct.pack(">H", len(body)) + body


def metrics(d):
    with urllib.request.urlopen("http://127.0.0.1:%d/" % d.stats_port, timeout=5) as r:
        return r.read().decode()


def gauge(text, name, family):
    want = '%s{ip_family="%s"} ' % (name, family)
    for line in text.splitlines():
        if line.startswith(want):
            return float(line[len(want):])
    raise AssertionError("no %s in metrics" % want)


def test_fronted_visitors_do_not_take_telegram_slots(make_daemon, fakedc, backend):
    d = make_daemon(top={"concurrency": 1})
    visitors = [raw_connect(d.addr) for _ in range(3)]
    try:
        for v in visitors:
            v.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        # every visitor's bytes at the site, not just its early connection
        # (opened at accept): only then has each left the inspection slot
        assert backend.wait_for(lambda conns: sum(1 for x in conns if x.data) >= 3, 5), \
            "visitors not fronted while holding the only inspection slot"
        with d.client() as c:
            c.connect()
            assert round_trip(c, b"still relayed") == b"still relayed"
    finally:
        for v in visitors:
            v.close()


def test_over_limit_behind_load_balancer_fronts_real_client(make_daemon, fakedc, backend):
    d = make_daemon(top={"concurrency": 1, "proxy-protocol-listener": True})
    hold = d.client()
    hold.open()
    hold.sock.sendall(proxy_v2("10.9.8.7", 4000, "10.0.0.1", 443))
    hold.send_hello()
    hold.read_server_answer()
    hold.start_obfs2()
    try:
        assert round_trip(hold, b"slot taken") == b"slot taken"
        with raw_connect(d.addr) as s:
            s.sendall(proxy_v2("203.0.113.5", 5555, "10.0.0.1", 443) + b"GET /over HTTP/1.1\r\n\r\n")
            conn = backend.wait_conn_with(lambda c: bytes(c.data).startswith(b"GET /over"), 5)
            assert conn is not None, "over-limit request did not reach the backend"
            assert bytes(conn.data) == b"GET /over HTTP/1.1\r\n\r\n", bytes(conn.data)
            assert (conn.proxy.src, conn.proxy.sport) == ("203.0.113.5", 5555), conn.proxy
    finally:
        hold.close()


def test_client_gauge_follows_proxy_header_family(make_daemon, backend):
    d = make_daemon(top={"proxy-protocol-listener": True})
    backend.reply_on_data = b"ok"
    with raw_connect(d.addr) as s:
        s.sendall(proxy_v2("2001:db8::7", 4000, "2001:db8::1", 443) + b"hello web")
        assert recv_n(s, 2) == b"ok"
        text = metrics(d)
        assert gauge(text, "mtg_client_connections", "ipv6") == 1
        assert gauge(text, "mtg_client_connections", "ipv4") == 0
    deadline = time.monotonic() + 5
    while True:
        text = metrics(d)
        v6, v4 = (gauge(text, "mtg_client_connections", f) for f in ("ipv6", "ipv4"))
        if v6 == 0 and v4 == 0:
            break
        assert v6 < 1e6 and v4 < 1e6, "gauge wrapped: %s" % text
        assert time.monotonic() < deadline, text
        time.sleep(0.1)


def test_fronted_connection_outlives_relay_idle_timeout(make_daemon, backend):
    """A browser's idle keep-alive connection is closed by the web server,
    never by us: our close would be a tell."""
    d = make_daemon(tables={"network.timeout": {"idle": "1s"}})
    backend.reply_on_data = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    with raw_connect(d.addr) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert recv_n(s, 38).startswith(b"HTTP/1.1 200")
        assert not sees_eof(s, 3.0), "tgfront closed an idle fronted connection"


def test_specific_bind_with_loopback_backend_on_same_port_starts(make_daemon, workdir, secret,
                                                                 fakedc):
    """bind-to 127.0.0.2:P with the web server on 127.0.0.1:P is not a loop."""
    d = make_daemon(start=False, bind_host="127.0.0.2", stats=False)
    lines = []
    for line in d.config_text.splitlines():
        if line.startswith("port = "):
            line = "port = %d" % d.port
        lines.append(line)
    with open(d.config_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    d.config_text = "\n".join(lines) + "\n"
    d.start()
    assert d.proc.poll() is None


def test_access_json_escapes_hostname(tmp_path):
    host = b'we"ird\\host'
    secret = "ee" + "11" * 16 + host.hex()
    cfg = tmp_path / "c.toml"
    cfg.write_text('secret = "%s"\nbind-to = "127.0.0.1:443"\n' % secret)
    out = subprocess.run([tgfront_bin(), "access", str(cfg)], capture_output=True, check=True)
    doc = json.loads(out.stdout)
    assert doc["hostname"]["host"] == host.decode()
