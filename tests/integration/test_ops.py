"""Operations (issue 10): SOCKS5 upstreams, access lists from a file and
an https URL, metrics that promtool accepts, JSON logs."""

import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.request

import pytest

from helpers import assert_fronted, assert_one_close_notify, rand, round_trip, wait_data
from socks5server import Socks5Server
from tlsutil import HTTPSServer, TestCA


def scrape(d):
    url = "http://127.0.0.1:%d/" % d.stats_port
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def sample(text, name, **labels):
    """The value of one sample (labels must match exactly as given)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        key, _, val = line.rpartition(" ")
        if key.split("{")[0] != name:
            continue
        if all('%s="%s"' % kv in key for kv in labels.items()):
            return float(val)
    raise AssertionError("no sample %s %r in:\n%s" % (name, labels, text))


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


# ---- SOCKS5 upstreams ----------------------------------------------------

@pytest.fixture
def socks():
    servers = []

    def make(**kw):
        s = Socks5Server(**kw).start()
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.stop()


def test_socks5_without_credentials(make_daemon, fakedc, socks):
    s = socks()
    d = make_daemon(tables={"network": {"proxies": ["socks5://%s:%d" % s.addr]}})
    with d.client() as c:
        c.connect()
        data = rand(200000)
        assert round_trip(c, data) == data
    assert s.connects, "the DC dial did not go through the SOCKS5 server"
    host, port, user = s.connects[0]
    assert (host, port) == tuple(fakedc.addr) and user is None


def test_socks5_with_credentials(make_daemon, fakedc, socks):
    s = socks(user="alice", password="p@ss:w0rd")
    url = "socks5h://alice:p%40ss%3Aw0rd@" + "%s:%d" % s.addr
    d = make_daemon(tables={"network": {"proxies": [url]}})
    with d.client() as c:
        c.connect()
        data = rand(50000)
        assert round_trip(c, data) == data
    assert s.connects and s.connects[0][2] == "alice"
    assert s.auth_failures == 0
    assert "p@ss" not in d.stderr() and "w0rd" not in d.stderr()


def test_socks5_wrong_password_closes_and_says_why(make_daemon, socks):
    s = socks(user="alice", password="right")
    d = make_daemon(tables={"network": {"proxies": ["socks5://alice:wrong@%s:%d" % s.addr]}})
    with d.client() as c:
        c.connect()
        # the client was closed as a Go TLS server closes: close_notify, FIN
        assert_one_close_notify(c.recv_closing_records(10), "SOCKS5 login refused")
    assert s.auth_failures >= 1
    wait_until(lambda: "refused the user name or password" in d.stderr(), 5, "the log line")
    assert "wrong" not in d.stderr()


def test_socks5_connect_refused_by_proxy(make_daemon, socks):
    s = socks()
    s.refuse = 2
    d = make_daemon(tables={"network": {"proxies": ["socks5://%s:%d" % s.addr]}})
    with d.client() as c:
        c.connect()
        assert_one_close_notify(c.recv_closing_records(10), "SOCKS5 CONNECT refused")
    wait_until(lambda: "connection not allowed by ruleset" in d.stderr(), 5, "the log line")
    text = scrape(d)
    assert sample(text, "mtg_connections_closed_total", reason="dc_unreachable") >= 1


# ---- access lists --------------------------------------------------------

def telegram_fronted(d, backend):
    """A proven Telegram hello from 127.0.0.1 reaches the site byte for byte."""
    c = d.client()
    c.open()
    try:
        c.send_hello()
        assert_fronted(backend, c.sock, c.hello)
    finally:
        c.sock.close()


def telegram_served(d):
    with d.client() as c:
        c.connect()
        assert round_trip(c, b"ping" * 100) == b"ping" * 100


def test_blocklist_file_and_https_url(make_daemon, backend, workdir):
    ca = TestCA(workdir)
    cert, key = ca.issue(["localhost", "127.0.0.1"])
    web = HTTPSServer(cert, key, files={"/level1.netset": b"# remote\n192.0.2.0/24\n198.51.100.7\n"})
    web.start()
    path = os.path.join(workdir, "block-%d.netset" % os.getpid())
    with open(path, "w") as f:
        f.write("# local list\n127.0.0.2\n")
    try:
        d = make_daemon(tables={
            "network": {"ca-file": ca.path},
            "defense.blocklist": {"enabled": True, "update-each": "1s",
                                  "urls": [path, "https://localhost:%d/level1.netset" % web.addr[1]]},
        })
        text = scrape(d)
        assert sample(text, "mtg_iplist_size", ip_list="blocklist") == 3
        telegram_served(d)
        assert sample(scrape(d), "mtg_ip_blocklisted_total", ip_list="blocklist") == 0

        # The file now lists the client: the next refresh fronts it.
        with open(path + ".new", "w") as f:
            f.write("127.0.0.0/8 # loopback\n")
        os.rename(path + ".new", path)
        wait_until(lambda: sample(scrape(d), "mtg_iplist_size", ip_list="blocklist") == 3 and
                   "blocklist refreshed" in d.stderr() and _blocks(d, backend), 10,
                   "the refreshed list to block 127.0.0.1")
        telegram_fronted(d, backend)
        assert sample(scrape(d), "mtg_ip_blocklisted_total", ip_list="blocklist") >= 2
        assert len(web.requests) >= 2, "the https source was not fetched again"

        # A failed refresh (the URL answers 404) keeps the previous list.
        web.files.clear()
        n = len(web.requests)
        wait_until(lambda: len(web.requests) >= n + 2, 10, "two more refreshes")
        assert "refresh failed; keeping the previous list" in d.stderr()
        assert "HTTP status 404" in d.stderr()
        assert sample(scrape(d), "mtg_iplist_size", ip_list="blocklist") == 3
        telegram_fronted(d, backend)
    finally:
        web.stop()


def test_lists_load_once_for_every_worker(make_daemon, backend, workdir):
    """workers = 3: the https source is fetched once at start-up and once per
    refresh for the whole process (not once per worker), and every worker
    fronts a client the refreshed list names."""
    ca = TestCA(workdir)
    cert, key = ca.issue(["localhost", "127.0.0.1"])
    web = HTTPSServer(cert, key, files={"/l.netset": b"192.0.2.0/24\n"})
    web.start()
    try:
        d = make_daemon(top={"workers": 3}, tables={
            "network": {"ca-file": ca.path},
            "defense.blocklist": {"enabled": True, "update-each": "1s",
                                  "urls": ["https://localhost:%d/l.netset" % web.addr[1]]},
        })
        assert len(web.requests) == 1, "start-up fetched the source %d times" % len(web.requests)
        assert d.stderr().count("blocklist: 1 entries") == 1, d.stderr()[-2000:]
        web.files["/l.netset"] = b"127.0.0.0/8\n"
        wait_until(lambda: d.stderr().count("blocklist refreshed") >= 3, 10,
                   "every worker to take the refresh")
        time.sleep(2.5)
        n = len(web.requests)
        time.sleep(2.2)
        assert len(web.requests) - n <= 3, "more than one fetch a second: %d in 2.2 s" % (
            len(web.requests) - n)
        for _ in range(6):   # spread over the workers by the balance
            telegram_fronted(d, backend)
    finally:
        web.stop()


def _blocks(d, backend):
    """True once a Telegram client is fronted (the blocklist took effect)."""
    c = d.client()
    c.open()
    try:
        c.send_hello()
        try:
            assert_fronted(backend, c.sock, c.hello, timeout=1.0)
            return True
        except AssertionError:
            return False
    finally:
        c.sock.close()


def test_https_source_with_untrusted_certificate_is_refused(make_daemon, workdir):
    ca, other = TestCA(workdir), TestCA(workdir, "another CA")
    cert, key = other.issue(["localhost"])
    web = HTTPSServer(cert, key, files={"/l": b"127.0.0.1\n"}).start()
    try:
        d = make_daemon(tables={
            "network": {"ca-file": ca.path},
            "defense.blocklist": {"enabled": True,
                                  "urls": ["https://localhost:%d/l" % web.addr[1]]},
        })
        assert "does not lead to a trusted CA" in d.stderr()
        assert sample(scrape(d), "mtg_iplist_size", ip_list="blocklist") == 0
        telegram_served(d)
    finally:
        web.stop()


def test_allowlist_fronts_everyone_else(make_daemon, backend, workdir):
    path = os.path.join(workdir, "allow-%d.netset" % os.getpid())
    with open(path, "w") as f:
        f.write("10.0.0.0/8\n2001:db8::/32\n")
    d = make_daemon(tables={"defense.allowlist": {"enabled": True, "urls": [path]}})
    telegram_fronted(d, backend)
    text = scrape(d)
    assert sample(text, "mtg_ip_blocklisted_total", ip_list="allowlist") == 1
    assert sample(text, "mtg_iplist_size", ip_list="allowlist") == 2
    # A fronted client holds no concurrency slot: the gauge of inspected
    # connections does not grow.
    assert sample(text, "mtg_concurrency_limited_total") == 0


# ---- metrics -------------------------------------------------------------

PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool missing (Debian's prometheus package)")
def test_promtool_accepts_a_scrape_during_traffic(make_daemon, backend, workdir):
    d = make_daemon()
    backend.reply_on_data = b"HTTP/1.1 400 Bad Request\r\n\r\n"
    stop = threading.Event()
    errors = []

    def traffic():
        while not stop.is_set():
            try:
                with d.client() as c:
                    c.connect()
                    round_trip(c, rand(20000))
                s = __import__("socket").create_connection(d.addr, timeout=5)
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                s.recv(100)
                s.close()
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
                return
    threads = [threading.Thread(target=traffic) for _ in range(3)]
    for t in threads:
        t.start()
    held = d.client()
    held.__enter__()
    try:
        held.connect()
        round_trip(held, b"x" * 1000)
        time.sleep(1.0)
        text = scrape(d)           # taken while relays run
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        held.__exit__(None, None, None)
    assert not errors, errors
    out = os.path.join(workdir, "scrape-%d.txt" % d.port)
    with open(out, "w") as f:
        f.write(text)
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    assert r.returncode == 0, "promtool check metrics failed:\n%s\n%s" % (
        (r.stdout + r.stderr).decode(), text)
    assert sample(text, "mtg_telegram_connections") >= 1
    assert sample(text, "mtg_handshake_duration_seconds_count") >= 2
    assert sample(text, "mtg_handshake_duration_seconds_bucket", le="+Inf") == \
        sample(text, "mtg_handshake_duration_seconds_count")
    buckets = [float(v) for v in re.findall(
        r'^mtg_handshake_duration_seconds_bucket\{le="[^"]+"\} (\S+)$', text, re.M)]
    assert buckets == sorted(buckets), "buckets are not cumulative"
    print("\nscrape saved to %s (%d lines), promtool: ok" % (out, len(text.splitlines())))


# ---- logs ----------------------------------------------------------------

def test_json_logs(make_daemon, backend):
    d = make_daemon(top={"log-format": "json"})
    telegram_served(d)
    s = __import__("socket").create_connection(d.addr, timeout=5)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    s.close()
    time.sleep(0.5)
    lines = [l for l in d.stderr().splitlines() if l.strip()]
    assert len(lines) >= 3
    for line in lines:
        obj = json.loads(line)
        assert set(obj) == {"level", "timestamp", "logger", "message"}, obj
        assert obj["level"] in ("debug", "info", "warn", "error")
        assert abs(obj["timestamp"] / 1000 - time.time()) < 60
    assert any("listening on" in json.loads(l)["message"] for l in lines)


DASHBOARD = os.path.join(os.path.dirname(__file__), "..", "..", "rootfs", "usr", "share",
                         "tgfront", "grafana-dashboard.json")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool missing (Debian's prometheus package)")
def test_grafana_dashboard_queries_parse_and_use_served_names(make_daemon, workdir):
    """Every panel query is valid PromQL (promtool check rules, with
    Grafana's variables filled in) and names only metrics a scrape has."""
    with open(DASHBOARD) as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    d = make_daemon()
    with d.client() as c:
        c.connect()
        round_trip(c, b"x" * 100)
    text = scrape(d)
    served = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    rules = ["groups:", "  - name: dashboard", "    rules:"]
    for i, e in enumerate(exprs):
        for name in re.findall(r"\b(mtg_[a-z_]+)", e):
            base = re.sub(r"_(bucket|sum|count)$", "", name) if "histogram" in name or \
                name.endswith("_bucket") else name
            assert base in served, "dashboard uses %s, which the scrape lacks" % name
        q = e.replace("$__rate_interval", "5m").replace("$job", ".*").replace("$instance", ".*")
        rules.append("      - record: dashboard:expr%d" % i)
        rules.append("        expr: %s" % json.dumps(q))
    path = os.path.join(workdir, "dashboard-rules.yml")
    with open(path, "w") as f:
        f.write("\n".join(rules) + "\n")
    r = subprocess.run([PROMTOOL, "check", "rules", path], capture_output=True, timeout=30)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()


def test_blocklist_checks_the_load_balancers_client_address(make_daemon, backend, workdir):
    """Behind a load balancer (proxy-protocol-listener) the list sees the
    address from its PROXY header, not the balancer's."""
    from test_limits import proxy_v2
    path = os.path.join(workdir, "lb-block-%d.netset" % os.getpid())
    with open(path, "w") as f:
        f.write("198.51.100.0/24\n")
    d = make_daemon(top={"proxy-protocol-listener": True},
                    tables={"defense.blocklist": {"enabled": True, "urls": [path]}})
    ok = d.client()
    ok.open()
    try:
        ok.sock.sendall(proxy_v2("10.9.8.7", 4000, "10.0.0.1", 443))
        ok.send_hello()
        ok.read_server_answer()
        ok.start_obfs2()
        assert round_trip(ok, b"allowed") == b"allowed"
    finally:
        ok.close()
    bad = d.client()
    bad.open()
    try:
        bad.sock.sendall(proxy_v2("198.51.100.9", 5555, "10.0.0.1", 443))
        hello = bad.build_hello()
        bad.sock.sendall(hello)
        conn = backend.wait_conn_with(lambda c: c.proxy is not None and
                                      c.proxy.src == "198.51.100.9", 5)
        assert conn is not None, "the blocked client did not reach the site"
        got = wait_data(backend, conn, hello)
        assert got == hello, "the site got %d bytes, not the hello" % len(got)
    finally:
        bad.sock.close()
    assert sample(scrape(d), "mtg_ip_blocklisted_total", ip_list="blocklist") == 1
