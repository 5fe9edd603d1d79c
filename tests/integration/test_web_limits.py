"""The FakeTLS path's limits on the WEB proxy: a named secret's
max-connections and quota, the daemon's concurrency, and the per-secret
metrics, with one WEB stream counting as one connection.

A limited secret's bridge page and carrier look like the site (as for a
wrong capability); a stream over a limit on an open carrier gets the v1
mux's CLOSE for that stream only, is counted and logged (rate-limited).
The WEB and FakeTLS paths share one count per secret: a FakeTLS client of a
secret whose WEB streams hold its max-connections is fronted."""

import os
import re
import signal
import time

import tgclient
import webclient as wc
from conftest import SECRET_HOST, free_port
from helpers import rand
from test_secrets import assert_hello_fronted, assert_served, scrape, total, value, wait_log
from test_web import _site_answer, dd_secret, key16, session

STREAM_REFUSED = r"client 127\.0\.0\.1 of secret '%s': %s: stream refused \(CLOSE\)"


def web_daemon(make_daemon, named, limits=None, top=None):
    port = free_port()
    tables = {"secrets": {n: tgclient.secret_hex(s) for n, s in named.items()},
              "web": {"enabled": True, "bind-to": "127.0.0.1:%d" % port}}
    for name, kv in (limits or {}).items():
        tables["secret-limits." + name] = kv
    t = {"secret": None}
    t.update(top or {})
    d = make_daemon(top=t, tables=tables)
    d.web_addr = ("127.0.0.1", port)
    return d


def secrets(*names):
    return {n: tgclient.make_secret(SECRET_HOST) for n in names}


def open_relaying(mux, secret, n):
    """n streams, each proven to relay with a round trip to the fake DC."""
    ids = []
    for i in range(n):
        sid = mux.open(key16(secret), dc=2)
        marker = b"stream-%d-" % i + os.urandom(4).hex().encode()
        mux.send(sid, marker)
        assert mux.recv_exact(sid, len(marker)) == marker, "stream %d did not relay" % i
        ids.append(sid)
    return ids


def wait_refused(mux, sid, timeout=5.0):
    deadline = time.time() + timeout
    while sid not in mux.closed_by_relay and time.time() < deadline:
        mux.pump()
    assert sid in mux.closed_by_relay, "stream %d was not refused with CLOSE" % sid


def close_stream(car, sid):
    car.send_frames(wc.frame(wc.CLOSE, sid))


def wait_metric(d, name, want, timeout=5.0, **labels):
    deadline = time.time() + timeout
    while True:
        got = value(scrape(d), name, **labels)
        if got == want or time.time() > deadline:
            assert got == want, "%s%s = %s, want %s" % (name, labels, got, want)
            return
        time.sleep(0.05)


def is_site(d, target):
    plain = _site_answer(d, "/")
    r = _site_answer(d, target)
    return r.raw_head == plain.raw_head and r.body == plain.body


def bridge(secret_bytes):
    return "/?bridge=" + wc.capability(SECRET_HOST, secret_bytes)


def test_max_connections_admits_n_web_streams_and_refuses_the_next(make_daemon, backend):
    named = secrets("alice", "bob")
    d = web_daemon(make_daemon, named, limits={"alice": {"max-connections": 2}})
    alice, bob = named["alice"], named["bob"]
    _, car = session(d, dd_secret(alice))
    mux = wc.Mux(car)
    mark = len(d.stderr())
    ids = open_relaying(mux, alice, 2)
    m = scrape(d)
    assert value(m, "mtg_secret_connections", secret="alice") == 2
    assert value(m, "mtg_secret_accepted_total", secret="alice") == 2

    # the third stream, and a fourth right after it: CLOSE each, the carrier stays
    extra = [mux.open(key16(alice)), mux.open(key16(alice))]
    for sid in extra:
        wait_refused(mux, sid)
    for sid in ids:
        mux.send(sid, b"still")
        assert mux.recv_exact(sid, 5) == b"still"
    m = scrape(d)
    assert value(m, "mtg_secret_refused_total", secret="alice", reason="max_connections") == 2
    assert value(m, "mtg_web_limited_total", at="stream", reason="max_connections") == 2
    assert value(m, "mtg_secret_connections", secret="alice") == 2
    # logged once: the second refusal within the interval is only counted
    wait_log(d, STREAM_REFUSED % ("alice", "max_connections"), after=mark)
    time.sleep(0.2)
    assert len(re.findall(STREAM_REFUSED % ("alice", "max_connections"),
                          d.stderr()[mark:])) == 1, "the refusal log is not rate-limited"

    # the same count as the FakeTLS path's: alice's FakeTLS client is
    # fronted, alice's bridge page is the site, bob is not limited by alice
    assert_hello_fronted(d, backend, alice)
    assert is_site(d, bridge(dd_secret(alice))) and is_site(d, bridge(key16(alice)))
    assert _site_answer(d, bridge(dd_secret(bob))).status == 200
    assert_served(d, bob)
    m = scrape(d)
    assert value(m, "mtg_secret_refused_total", secret="alice", reason="max_connections") == 5
    assert value(m, "mtg_web_limited_total", at="page", reason="max_connections") == 2

    # a stream the client closes gives its slot back: the next one relays
    close_stream(car, ids[0])
    wait_metric(d, "mtg_secret_connections", 1, secret="alice")
    assert _site_answer(d, bridge(dd_secret(alice))).status == 200
    open_relaying(mux, alice, 1)
    car.sock.close()
    wait_metric(d, "mtg_secret_connections", 0, secret="alice")


def test_over_quota_secret_gets_the_site_and_no_new_stream(make_daemon, backend):
    named = secrets("q", "other")
    d = web_daemon(make_daemon, named, limits={"q": {"quota": "16kib", "quota-period": "24h"}})
    q = named["q"]
    # a page (and its token) fetched while the quota is not used up yet
    s = wc.connect(d.web_addr)
    page = wc.http_get(s, SECRET_HOST, bridge(dd_secret(q)))
    s.close()
    assert page.status == 200
    path, token = wc.page_params(page.body)

    _, car = session(d, dd_secret(q))
    mux = wc.Mux(car)
    sid = mux.open(key16(q), dc=2)
    data = rand(20000)
    assert mux.echo(sid, data) == data   # over the quota within one stream: not cut
    m = scrape(d)
    assert value(m, "mtg_secret_quota_used", secret="q") >= 40000
    assert value(m, "mtg_secret_traffic_total", secret="q", direction="from_client") >= 20000
    assert value(m, "mtg_secret_traffic_total", secret="q", direction="to_client") >= 20000

    # a new stream on the open carrier: CLOSE; the open stream goes on
    late = mux.open(key16(q))
    wait_refused(mux, late)
    mux.send(sid, b"on")
    assert mux.recv_exact(sid, 2) == b"on"
    # the capability (either form) and the earlier page's token meet the site
    assert is_site(d, bridge(dd_secret(q))) and is_site(d, bridge(key16(q)))
    plain = _site_answer(d, path)
    c = wc.Carrier(wc.connect(d.web_addr), SECRET_HOST, path, token)
    assert c.response.raw_head == plain.raw_head, "an over-quota secret's token opened a carrier"
    c.sock.close()
    # the FakeTLS path sees the same quota; another secret is served
    assert_hello_fronted(d, backend, q)
    assert _site_answer(d, bridge(dd_secret(named["other"]))).status == 200
    m = scrape(d)
    assert value(m, "mtg_web_limited_total", at="stream", reason="quota") == 1
    assert value(m, "mtg_web_limited_total", at="page", reason="quota") == 2
    assert value(m, "mtg_web_limited_total", at="carrier", reason="quota") == 1
    assert value(m, "mtg_secret_refused_total", secret="q", reason="quota") == 5
    car.sock.close()


def test_per_secret_metrics_count_web_traffic(make_daemon):
    named = secrets("alice", "bob")
    d = web_daemon(make_daemon, named)
    _, a = session(d, dd_secret(named["alice"]))
    _, b = session(d, key16(named["bob"]))
    am, bm = wc.Mux(a), wc.Mux(b)
    a1, a2 = am.open(key16(named["alice"])), am.open(key16(named["alice"]), dc=4)
    b1 = bm.open(key16(named["bob"]), tag=b"\xef" * 4)
    for mux, sid, n in ((am, a1, 3000), (am, a2, 70000), (bm, b1, 300000)):
        data = rand(n)
        assert mux.echo(sid, data) == data
    m = scrape(d)
    assert value(m, "mtg_secret_connections", secret="alice") == 2
    assert value(m, "mtg_secret_connections", secret="bob") == 1
    assert total(m, "mtg_secret_connections") == total(m, "mtg_telegram_connections") == 3
    a.sock.close()
    b.sock.close()
    deadline = time.time() + 5
    while total(scrape(d), "mtg_secret_connections") != 0:
        assert time.time() < deadline, "WEB streams still counted after their carriers closed"
        time.sleep(0.05)
    m = scrape(d)
    assert total(m, "mtg_telegram_connections") == 0
    for direction in ("to_client", "from_client"):
        per_secret = total(m, "mtg_secret_traffic_total", direction=direction)
        assert per_secret == total(m, "mtg_telegram_traffic_total", direction=direction), direction
    # each stream's bytes, plus the 64-byte init of each toward the DC (as
    # the DC's series counts them)
    traffic = "\n".join(l for l in m.splitlines() if "traffic_total{" in l)
    for name, up, streams in (("alice", 73000, 2), ("bob", 300000, 1)):
        assert value(m, "mtg_secret_traffic_total", secret=name,
                     direction="from_client") == up + 64 * streams, traffic
        assert value(m, "mtg_secret_traffic_total", secret=name,
                     direction="to_client") == up, traffic
    assert value(m, "mtg_secret_accepted_total", secret="alice") == 2
    assert value(m, "mtg_secret_accepted_total", secret="bob") == 1
    assert value(m, "mtg_secret_quota_used", secret="bob") >= 600000


def reload(d, text):
    with open(d.config_path, "w") as f:
        f.write(text)
    mark = len(d.stderr())
    d.signal(signal.SIGHUP)
    wait_log(d, r"reloaded ", after=mark)
    time.sleep(0.3)   # worker 0 adopts it through its control eventfd


def test_reload_limits_apply_to_new_web_streams(make_daemon):
    named = secrets("bob")
    d = web_daemon(make_daemon, named)
    bob = named["bob"]
    _, car = session(d, dd_secret(bob))
    mux = wc.Mux(car)
    ids = open_relaying(mux, bob, 2)

    reload(d, d.config_text + "\n[secret-limits.bob]\nmax-connections = 2\n")
    refused = mux.open(key16(bob))
    wait_refused(mux, refused)
    for sid in ids:   # the streams open before the reload keep relaying
        mux.send(sid, b"kept")
        assert mux.recv_exact(sid, 4) == b"kept"
    close_stream(car, ids[0])
    wait_metric(d, "mtg_secret_connections", 1, secret="bob")
    open_relaying(mux, bob, 1)

    reload(d, d.config_text + '\n[secret-limits.bob]\nexpires = "2020-01-01T00:00:00Z"\n')
    late = mux.open(key16(bob))
    wait_refused(mux, late)
    assert is_site(d, bridge(dd_secret(bob)))
    m = scrape(d)
    assert value(m, "mtg_web_limited_total", at="stream", reason="max_connections") == 1
    assert value(m, "mtg_web_limited_total", at="stream", reason="expired") == 1
    assert value(m, "mtg_secret_refused_total", secret="bob", reason="expired") == 2
    car.sock.close()


def test_concurrency_counts_web_streams(make_daemon, backend):
    named = secrets("alice")
    d = web_daemon(make_daemon, named, top={"concurrency": 2})
    alice = named["alice"]
    _, car = session(d, dd_secret(alice))
    mux = wc.Mux(car)
    ids = open_relaying(mux, alice, 2)
    over = mux.open(key16(alice))
    wait_refused(mux, over)
    m = scrape(d)
    assert value(m, "mtg_web_limited_total", at="stream", reason="concurrency") == 1
    assert value(m, "mtg_concurrency_limited_total") == 1
    # not the secret's refusal: it never got that far
    assert value(m, "mtg_secret_refused_total", secret="alice", reason="max_connections") == 0
    # the daemon's one count: a FakeTLS client is fronted while the two run
    assert_hello_fronted(d, backend, alice)
    close_stream(car, ids[0])
    wait_metric(d, "mtg_secret_connections", 1, secret="alice")
    assert_served(d, alice)
    # the FakeTLS client's slot comes back when the daemon sees it close
    wait_metric(d, "mtg_secret_connections", 1, secret="alice")
    open_relaying(mux, alice, 1)
    car.sock.close()
