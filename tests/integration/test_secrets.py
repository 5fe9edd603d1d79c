"""Named secrets: several served at once with per-secret metrics that add
up, limits (max-connections, expiry, quota) that front the client instead
of closing it, SIGHUP changing the secrets while a long relay runs, and the
clock-skew warning."""

import os
import re
import signal
import threading
import time
import urllib.request

import tgclient
from conftest import SECRET_HOST, render_config
from helpers import assert_fronted, join_or_fail, raw_connect, recv_n, round_trip

REPLY = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


def secrets(*names):
    return {n: tgclient.make_secret(SECRET_HOST) for n in names}


def named_daemon(make_daemon, named, limits=None, top=None, start=True):
    """A daemon serving the secrets in named (name -> secret bytes), with no
    top-level secret unless top gives one."""
    tables = {"secrets": {n: tgclient.secret_hex(s) for n, s in named.items()}}
    for name, kv in (limits or {}).items():
        tables["secret-limits." + name] = kv
    t = {"secret": None}
    t.update(top or {})
    return make_daemon(top=t, tables=tables, start=start)


def client(d, secret, **kw):
    kw.setdefault("dc", 2)
    return tgclient.FakeTLSClient(d.addr, secret, **kw)


def scrape(d):
    with urllib.request.urlopen("http://127.0.0.1:%d/" % d.stats_port, timeout=5) as r:
        return r.read().decode()


def series(text, name):
    """{labels text: value} of every sample of metric name."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^%s(\{[^}]*\})? (\S+)$" % re.escape(name), line)
        if m:
            out[m.group(1) or ""] = float(m.group(2))
    return out


def value(text, name, **labels):
    want = set('%s="%s"' % kv for kv in labels.items())
    for lab, v in series(text, name).items():
        have = set(lab.strip("{}").split(",")) if lab else set()
        if want <= have:
            return v
    raise AssertionError("no %s%s in metrics:\n%s" % (name, labels, text[-2000:]))


def total(text, name, **labels):
    s = 0.0
    want = set('%s="%s"' % kv for kv in labels.items())
    for lab, v in series(text, name).items():
        if want <= set(lab.strip("{}").split(",")):
            s += v
    return s


def hello_for(secret, ts=None):
    return tgclient.build_client_hello(secret[1:17], SECRET_HOST.encode(), ts=ts)


def assert_hello_fronted(d, backend, secret, ts=None):
    """A hello that proves secret is fronted: the site gets it byte for byte
    behind our PROXY header and its answer reaches the client."""
    backend.reply_on_data = REPLY
    hello = hello_for(secret, ts)
    with raw_connect(d.addr) as s:
        s.sendall(hello)
        assert_fronted(backend, s, hello)
        assert recv_n(s, len(REPLY)) == REPLY, "the site's answer did not reach the client"


def assert_served(d, secret, data=b"served"):
    with client(d, secret) as c:
        c.connect()
        assert round_trip(c, data) == data


def test_two_named_secrets_served_at_once_with_metrics_that_add_up(make_daemon, fakedc):
    named = secrets("alice", "bob")
    d = named_daemon(make_daemon, named)
    a, b = client(d, named["alice"]), client(d, named["bob"])
    try:
        a.connect()
        b.connect()
        assert round_trip(a, os.urandom(3000)) is not None
        assert round_trip(b, os.urandom(70000)) is not None
        m = scrape(d)
        assert value(m, "mtg_secret_connections", secret="alice") == 1
        assert value(m, "mtg_secret_connections", secret="bob") == 1
        assert total(m, "mtg_secret_connections") == total(m, "mtg_telegram_connections") == 2
    finally:
        a.close()
        b.close()
    # both closed: the gauges fall back and the traffic adds up per direction
    deadline = time.time() + 5
    while time.time() < deadline:
        m = scrape(d)
        if total(m, "mtg_secret_connections") == 0:
            break
        time.sleep(0.05)
    assert total(m, "mtg_secret_connections") == 0 == total(m, "mtg_telegram_connections")
    for direction in ("to_client", "from_client"):
        per_secret = total(m, "mtg_secret_traffic_total", direction=direction)
        assert per_secret == total(m, "mtg_telegram_traffic_total", direction=direction) > 0, direction
    assert value(m, "mtg_secret_traffic_total", secret="bob", direction="from_client") >= 70000
    assert 3000 <= value(m, "mtg_secret_traffic_total", secret="alice", direction="from_client") < 70000
    assert value(m, "mtg_secret_accepted_total", secret="alice") == 1
    assert value(m, "mtg_secret_accepted_total", secret="bob") == 1
    for s in named.values():   # the label is the name, never the key
        assert s[1:17].hex() not in m and tgclient.secret_hex(s) not in m


def test_single_secret_is_named_default_next_to_named_ones(make_daemon, fakedc, secret):
    named = secrets("alice")
    d = named_daemon(make_daemon, named, top={"secret": tgclient.secret_hex(secret)})
    assert_served(d, secret)
    assert_served(d, named["alice"])
    m = scrape(d)
    assert value(m, "mtg_secret_accepted_total", secret="default") == 1
    assert value(m, "mtg_secret_accepted_total", secret="alice") == 1


def test_max_connections_fronts_the_extra_client(make_daemon, fakedc, backend):
    named = secrets("bob", "carol")
    d = named_daemon(make_daemon, named, limits={"bob": {"max-connections": 1}})
    first = client(d, named["bob"])
    try:
        first.connect()
        assert round_trip(first, b"one") == b"one"
        assert_hello_fronted(d, backend, named["bob"])
        assert_served(d, named["carol"])   # another secret is not limited by bob's
    finally:
        first.close()
    deadline = time.time() + 5
    while value(scrape(d), "mtg_secret_connections", secret="bob") != 0:
        assert time.time() < deadline, "bob's connection still counted after close"
        time.sleep(0.05)
    assert_served(d, named["bob"])   # the slot came back
    m = scrape(d)
    assert value(m, "mtg_secret_refused_total", secret="bob", reason="max_connections") == 1
    assert value(m, "mtg_secret_accepted_total", secret="bob") == 2


def test_expired_secret_is_fronted_and_a_valid_one_served(make_daemon, fakedc, backend):
    named = secrets("old", "new")
    d = named_daemon(make_daemon, named, limits={
        "old": {"expires": "2020-01-01T00:00:00Z"},
        "new": {"expires": "2999-12-31T23:59:59+02:00"}})
    assert_hello_fronted(d, backend, named["old"])
    assert_served(d, named["new"])
    m = scrape(d)
    assert value(m, "mtg_secret_refused_total", secret="old", reason="expired") == 1
    assert value(m, "mtg_secret_accepted_total", secret="old") == 0


def test_quota_used_up_fronts_the_next_client(make_daemon, fakedc, backend):
    named = secrets("q")
    d = named_daemon(make_daemon, named, limits={"q": {"quota": "16kib", "quota-period": "24h"}})
    assert_served(d, named["q"], os.urandom(20000))   # over the quota within one connection
    m = scrape(d)
    assert value(m, "mtg_secret_quota_used", secret="q") >= 40000
    assert_hello_fronted(d, backend, named["q"])
    assert value(scrape(d), "mtg_secret_refused_total", secret="q", reason="quota") == 1


def wait_log(d, pattern, timeout=5.0, after=0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = re.search(pattern, d.stderr()[after:])
        if m:
            return m
        time.sleep(0.05)
    raise AssertionError("no log line matching %r; stderr tail:\n%s" % (pattern, d.stderr()[-3000:]))


def test_sighup_changes_secrets_while_a_long_relay_runs(make_daemon, fakedc, backend):
    named = secrets("alice", "bob")
    d = named_daemon(make_daemon, named)
    chunks = [os.urandom(4096) for _ in range(40)]
    long_relay = client(d, named["alice"])
    long_relay.connect()
    got, errors = bytearray(), []

    def stream():
        # about 4 s of traffic, spanning the reload
        try:
            for ch in chunks:
                long_relay.send(ch)
                got.extend(long_relay.recv_exact(len(ch)))
                time.sleep(0.1)
        except Exception as e:   # reported below, not lost in the thread
            errors.append(e)

    t = threading.Thread(target=stream)
    t.start()
    time.sleep(0.5)
    # alice removed, bob kept, carol new
    carol = tgclient.make_secret(SECRET_HOST)
    new_text = re.sub(r"(?m)^alice = .*\n", "", d.config_text)
    new_text = new_text.replace("[secrets]\n", "[secrets]\ncarol = \"%s\"\n"
                                % tgclient.secret_hex(carol))
    with open(d.config_path, "w") as f:
        f.write(new_text)
    mark = len(d.stderr())
    d.signal(signal.SIGHUP)
    wait_log(d, r"reloaded .*: 2 secrets \(carol, bob\); the connections open now \(1\) keep",
             after=mark)
    assert_served(d, carol)
    assert_served(d, named["bob"])
    assert_hello_fronted(d, backend, named["alice"])
    join_or_fail(t, 30, "long relay")
    assert not errors, "long relay failed across the reload: %r" % errors
    assert bytes(got) == b"".join(chunks), "long relay's echo differs after the reload"
    long_relay.close()

    # An invalid file is logged with its error and the running config stays.
    with open(d.config_path, "w") as f:
        f.write(new_text.replace("[secrets]\n", "[secrets]\nbad name = \"ee00\"\n"))
    mark = len(d.stderr())
    d.signal(signal.SIGHUP)
    wait_log(d, r"reload failed, keeping the running configuration: .*config-\d+\.toml:\d+: ",
             after=mark)
    assert_served(d, carol)
    assert_hello_fronted(d, backend, named["alice"])
    assert d.proc.poll() is None


def test_sighup_changes_limits_for_new_connections(make_daemon, fakedc, backend):
    named = secrets("bob")
    d = named_daemon(make_daemon, named)
    assert_served(d, named["bob"])
    text = d.config_text + '\n[secret-limits.bob]\nexpires = "2020-01-01T00:00:00Z"\n'
    with open(d.config_path, "w") as f:
        f.write(text)
    mark = len(d.stderr())
    d.signal(signal.SIGHUP)
    wait_log(d, r"reloaded ", after=mark)
    assert_hello_fronted(d, backend, named["bob"])
    # bob's numbers survive the reload (same name, same slot)
    m = scrape(d)
    assert value(m, "mtg_secret_accepted_total", secret="bob") == 1
    assert value(m, "mtg_secret_refused_total", secret="bob", reason="expired") == 1


def test_reload_keeps_restart_only_keys_with_a_warning(make_daemon, fakedc):
    named = secrets("bob")
    d = named_daemon(make_daemon, named)
    text = d.config_text.replace('bind-to = "127.0.0.1:%d"' % d.port,
                                 'bind-to = "127.0.0.1:%d"' % (d.port + 1))
    assert text != d.config_text
    with open(d.config_path, "w") as f:
        f.write(text)
    mark = len(d.stderr())
    d.signal(signal.SIGHUP)
    wait_log(d, r"reload: 'bind-to' changed; it takes effect at the next restart", after=mark)
    wait_log(d, r"reloaded ", after=mark)
    assert_served(d, named["bob"])   # still on the old port


def test_reload_warns_about_workers_log_format_and_web_listener(make_daemon, fakedc):
    """Keys read once at start-up are kept with a warning, not silently
    ignored (README: a changed value takes effect at the next restart)."""
    named = secrets("bob")
    d = named_daemon(make_daemon, named)
    assert "workers" not in d.config_text and "log-format" not in d.config_text
    text = 'workers = 3\nlog-format = "json"\n' + d.config_text + \
        '\n[web]\nenabled = true\nbind-to = "127.0.0.1:1"\n'
    with open(d.config_path, "w") as f:
        f.write(text)
    mark = len(d.stderr())
    d.signal(signal.SIGHUP)
    wait_log(d, r"reloaded ", after=mark)
    for key in ("workers", "log-format", "web.enabled", "web.bind-to"):
        wait_log(d, r"reload: '%s' changed; it takes effect at the next restart" % re.escape(key),
                 after=mark)
    assert_served(d, named["bob"])


def test_skewed_client_is_fronted_with_a_rate_limited_warning(make_daemon, fakedc, backend):
    named = secrets("phone")
    d = named_daemon(make_daemon, named)
    mark = len(d.stderr())
    for _ in range(3):
        assert_hello_fronted(d, backend, named["phone"], ts=int(time.time()) - 120)
    line = wait_log(d, r"warn conn(?:\[w\d+\])?: client 127\.0\.0\.1 proved secret 'phone' but its clock is "
                       r"(\d+) s behind ours.*Sync the clock.*NTP.*phone", after=mark)
    assert 118 <= int(line.group(1)) <= 122
    time.sleep(0.2)
    warned = re.findall(r"proved secret 'phone' but its clock", d.stderr()[mark:])
    assert len(warned) == 1, "the skew warning is not rate-limited: %d lines" % len(warned)
    m = scrape(d)
    assert value(m, "mtg_secret_refused_total", secret="phone", reason="time_skew") == 3
    assert value(m, "mtg_handshake_rejected_total", reason="time_skew") == 3
    assert -122 <= value(m, "mtg_client_clock_skew_seconds") <= -118
    # a wrong key with the same skew is no client of ours: not counted, not warned
    assert_hello_fronted(d, backend, tgclient.make_secret(SECRET_HOST), ts=int(time.time()) - 120)
    assert value(scrape(d), "mtg_secret_refused_total", secret="phone", reason="time_skew") == 3


def test_config_needs_a_secret_and_one_hostname(make_daemon, tmp_path):
    from conftest import tgfront_bin
    import subprocess

    def check(text):
        p = tmp_path / "c.toml"
        p.write_text(text)
        return subprocess.run([tgfront_bin(), "access", str(p)], capture_output=True, text=True)

    a = tgclient.secret_hex(tgclient.make_secret("example.com"))
    other = tgclient.secret_hex(tgclient.make_secret("example.org"))
    r = check('bind-to = "127.0.0.1:1"\n')
    assert r.returncode != 0 and "missing required key 'secret'" in r.stderr
    r = check('bind-to = "127.0.0.1:1"\n[secrets]\na = "%s"\nb = "%s"\n' % (a, other))
    assert r.returncode != 0 and "same hostname" in r.stderr, r.stderr
    r = check('bind-to = "127.0.0.1:1"\n[secrets]\na = "%s"\n[secret-limits.zed]\n'
              'max-connections = 1\n' % a)
    assert r.returncode != 0 and "c.toml:5:" in r.stderr and "names no secret" in r.stderr
    r = check('bind-to = "127.0.0.1:1"\n[secrets]\na = "%s"\nb = "%s"\n' % (a, a))
    assert r.returncode != 0 and "same key" in r.stderr


def test_access_prints_every_secret(tmp_path):
    import json
    import subprocess
    from conftest import tgfront_bin
    named = secrets("alice", "bob")
    p = tmp_path / "c.toml"
    p.write_text(render_config({"bind-to": "127.0.0.1:443"},
                               {"secrets": {n: tgclient.secret_hex(s) for n, s in named.items()}}))
    r = subprocess.run([tgfront_bin(), "access", str(p)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert list(out["secrets"]) == ["alice", "bob"]
    for n, s in named.items():
        assert out["secrets"][n]["secret"]["hex"] == tgclient.secret_hex(s)
        assert tgclient.secret_hex(s) in out["secrets"][n]["hostname"]["tg_url"] or \
            tgclient.secret_b64(s) in out["secrets"][n]["hostname"]["tg_url"]
    assert out["secret"]["hex"] == tgclient.secret_hex(named["alice"])   # mtg's shape


def test_simple_run_serves_its_secret(backend_session):
    """simple-run has no file: its SECRET is the one secret ("default"), so
    a client holding it gets the FakeTLS answer (and SIGHUP changes nothing)."""
    import socket
    import subprocess
    from conftest import free_port, tgfront_bin
    port = free_port()
    secret = tgclient.make_secret(SECRET_HOST)
    ours, theirs = socket.socketpair()
    p = subprocess.Popen([tgfront_bin(), "simple-run", "127.0.0.1:%d" % port,
                          tgclient.secret_hex(secret), "--domain-fronting-ip", "127.0.0.1",
                          "-p", str(backend_session.addr[1]), "--ready-fd", str(theirs.fileno())],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, pass_fds=(theirs.fileno(),))
    try:
        theirs.close()
        ours.settimeout(10)
        assert ours.recv(1) == b"\n", "simple-run not ready"
        p.send_signal(signal.SIGHUP)
        for _ in range(2):
            c = tgclient.FakeTLSClient(("127.0.0.1", port), secret)
            c.open()
            c.send_hello()
            c.read_server_answer()   # raises unless the answer proves the secret
            c.close()
    finally:
        ours.close()
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=10)
    assert p.returncode == 0, out
    assert b"no configuration file to re-read (simple-run)" in out, out
