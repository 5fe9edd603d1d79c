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
import select
import signal
import time

import tgclient
import webclient as wc
from conftest import SECRET_HOST, free_port, hostport
from helpers import rand, round_trip
from test_secrets import (assert_hello_fronted, assert_served, client, scrape, total, value,
                          wait_log)
from test_web import _site_answer, dd_secret, key16, session

STREAM_REFUSED = r"client 127\.0\.0\.1 of secret '%s': %s: stream refused \(CLOSE\)"


def web_daemon(make_daemon, named, limits=None, top=None, tables=None, **kw):
    port = free_port()
    tabs = {"secrets": {n: tgclient.secret_hex(s) for n, s in named.items()},
            "web": {"enabled": True, "bind-to": "127.0.0.1:%d" % port}}
    for name, kv in (limits or {}).items():
        tabs["secret-limits." + name] = kv
    for name, kv in (tables or {}).items():
        tabs.setdefault(name, {}).update(kv)
    t = {"secret": None}
    t.update(top or {})
    d = make_daemon(top=t, tables=tabs, **kw)
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


def bare_open(mux):
    """OPEN and nothing else: no obfuscated2 init ever follows."""
    sid = mux.next_id
    mux.next_id += 1
    mux.c.send_frames(wc.frame(wc.OPEN, sid))
    return sid


def pump_until(mux, done, timeout):
    """Reads the relay's frames until done() or timeout seconds; returns
    done(). The carrier's own idle timeout (30 s here) is far off."""
    deadline = time.time() + timeout
    while not done() and time.time() < deadline:
        r, _, _ = select.select([mux.c.sock], [], [], 0.1)
        if r or mux.c.buf:
            mux.pump()
    return done()


def probe_stream(mux, secret, timeout=5.0):
    """A new stream: its id when it relays (admitted), None when the relay
    refuses it with CLOSE."""
    marker = b"probe-" + os.urandom(4).hex().encode()
    sid = mux.open(key16(secret), dc=2, first_payload=marker)
    st = mux.streams[sid]
    ok = pump_until(mux, lambda: sid in mux.closed_by_relay or len(st["rx"]) >= len(marker),
                    timeout)
    assert ok, "stream %d neither relayed nor was refused" % sid
    if sid in mux.closed_by_relay:
        return None
    assert mux.recv_exact(sid, len(marker)) == marker
    return sid


def open_until_refused(mux, car, secret, timeout=10.0):
    """After a reload: new streams until one is refused (the config has
    reached the loop that serves WEB sessions). Streams admitted before it
    did are closed again, so they hold nothing."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        sid = probe_stream(mux, secret)
        if sid is None:
            return
        close_stream(car, sid)
        time.sleep(0.05)
    raise AssertionError("no new stream refused within %ss of the reload" % timeout)


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
    # four loops even on one CPU: WEB streams (worker 0) and FakeTLS
    # clients (any worker) share one count
    d = web_daemon(make_daemon, named, limits={"alice": {"max-connections": 2}},
                   top={"workers": 4})
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
    # logged before worker 0 adopts it (through its control eventfd): the
    # callers poll for the effect they expect
    wait_log(d, r"reloaded ", after=mark)


def test_reload_limits_apply_to_new_web_streams(make_daemon):
    named = secrets("bob")
    d = web_daemon(make_daemon, named)
    bob = named["bob"]
    _, car = session(d, dd_secret(bob))
    mux = wc.Mux(car)
    ids = open_relaying(mux, bob, 2)

    reload(d, d.config_text + "\n[secret-limits.bob]\nmax-connections = 2\n")
    open_until_refused(mux, car, bob)
    for sid in ids:   # the streams open before the reload keep relaying
        mux.send(sid, b"kept")
        assert mux.recv_exact(sid, 4) == b"kept"
    close_stream(car, ids[0])
    wait_metric(d, "mtg_secret_connections", 1, secret="bob")
    open_relaying(mux, bob, 1)

    reload(d, d.config_text + '\n[secret-limits.bob]\nexpires = "2020-01-01T00:00:00Z"\n')
    open_until_refused(mux, car, bob)
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


def test_bare_open_gives_its_slot_back_at_the_handshake_timeout(make_daemon, backend):
    """A stream whose obfuscated2 init never comes holds its secret's
    connection only until the handshake timeout, as a FakeTLS client that
    never finishes its hello: CLOSE for it, the slot back, the carrier on."""
    named = secrets("alice")
    alice = named["alice"]
    d = web_daemon(make_daemon, named, limits={"alice": {"max-connections": 1}},
                   tables={"network.timeout": {"handshake": "1s"}})
    _, car = session(d, dd_secret(alice))
    mux = wc.Mux(car)
    t0 = time.time()
    bare = bare_open(mux)
    wait_metric(d, "mtg_secret_connections", 1, secret="alice")
    assert_hello_fronted(d, backend, alice)   # the bare OPEN holds alice's one
    assert pump_until(mux, lambda: bare in mux.closed_by_relay, 6.0), \
        "a stream without its init still open %.1f s after its OPEN" % (time.time() - t0)
    assert time.time() - t0 >= 0.9, "closed before the handshake timeout"
    wait_metric(d, "mtg_secret_connections", 0, secret="alice")
    assert value(scrape(d), "mtg_web_streams_init_timeout_total") == 1
    open_relaying(mux, alice, 1)   # the carrier goes on, the slot is free
    car.sock.close()


def test_bare_opens_give_the_concurrency_back_at_the_handshake_timeout(make_daemon, backend):
    """Bare OPENs on one carrier that fill the daemon's concurrency front
    other secrets' FakeTLS clients only until the handshake timeout."""
    named = secrets("alice", "bob")
    d = web_daemon(make_daemon, named, top={"concurrency": 3},
                   tables={"network.timeout": {"handshake": "1s"}})
    _, car = session(d, dd_secret(named["alice"]))
    mux = wc.Mux(car)
    bare = [bare_open(mux) for _ in range(3)]
    wait_metric(d, "mtg_secret_connections", 3, secret="alice")
    assert_hello_fronted(d, backend, named["bob"])
    assert pump_until(mux, lambda: mux.closed_by_relay >= set(bare), 6.0), \
        "bare OPENs still hold the concurrency: %s closed of %s" % (mux.closed_by_relay, bare)
    wait_metric(d, "mtg_secret_connections", 0, secret="alice")
    assert_served(d, named["bob"])
    car.sock.close()


def test_silent_web_stream_idles_out_while_a_busy_one_goes_on(make_daemon):
    """A relayed stream with no bytes either way for the idle timeout is
    closed (CLOSE, slot back), as a FakeTLS relay is; a stream that moves
    bytes on the same carrier is not, nor is the carrier."""
    named = secrets("alice")
    alice = named["alice"]
    d = web_daemon(make_daemon, named, tables={"network.timeout": {"idle": "2s"}})
    _, car = session(d, dd_secret(alice))
    mux = wc.Mux(car)
    busy, quiet = open_relaying(mux, alice, 2)
    t0 = time.time()
    while time.time() - t0 < 5.0:
        data = os.urandom(32)
        mux.send(busy, data)
        assert mux.recv_exact(busy, len(data)) == data, "the busy stream stopped relaying"
        time.sleep(0.3)
    assert quiet in mux.closed_by_relay, "a stream silent for 5 s outlived idle = 2s"
    assert busy not in mux.closed_by_relay, "a stream moving bytes idled out"
    m = scrape(d)
    assert value(m, "mtg_secret_connections", secret="alice") == 1
    assert value(m, "mtg_web_streams_idle_total") == 1
    assert value(m, "mtg_web_carriers") == 1
    car.sock.close()


def test_renamed_secret_streams_follow_its_key(make_daemon):
    """A reload that renames bob to robert (same key) puts the new streams
    of bob's open carrier under robert's limits, as FakeTLS hellos are."""
    named = secrets("bob")
    bob = named["bob"]
    d = web_daemon(make_daemon, named)
    _, car = session(d, dd_secret(bob))
    mux = wc.Mux(car)
    open_relaying(mux, bob, 1)
    text = d.config_text.replace("\nbob = ", "\nrobert = ")
    assert text != d.config_text
    reload(d, text + "\n[secret-limits.robert]\nmax-connections = 1\n")
    # new streams until one counts under robert (those before worker 0
    # adopted the config count under bob and are closed again)
    deadline = time.time() + 10
    while True:
        sid = probe_stream(mux, bob)
        assert sid is not None, "a stream refused before robert's limit was reached"
        if total(scrape(d), "mtg_secret_connections", secret="robert") == 1:
            break
        close_stream(car, sid)
        assert time.time() < deadline, "new streams of a renamed secret never counted under it"
        time.sleep(0.05)
    assert probe_stream(mux, bob) is None, "robert's max-connections did not refuse a stream"
    m = scrape(d)
    assert value(m, "mtg_secret_connections", secret="robert") == 1
    assert value(m, "mtg_secret_refused_total", secret="robert", reason="max_connections") == 1
    car.sock.close()


def test_faketls_traffic_using_up_the_quota_refuses_web(make_daemon, fakedc):
    """The quota is the secret's, whichever path used it: FakeTLS bytes
    over it make the WEB page the site and new streams CLOSE."""
    named = secrets("q")
    q = named["q"]
    d = web_daemon(make_daemon, named, limits={"q": {"quota": "16kib", "quota-period": "24h"}})
    _, car = session(d, dd_secret(q))   # open before the quota is used up
    mux = wc.Mux(car)
    data = rand(20000)
    with client(d, q) as c:
        c.connect()
        assert round_trip(c, data) == data
    deadline = time.time() + 5
    while value(scrape(d), "mtg_secret_quota_used", secret="q") < 40000:
        assert time.time() < deadline, "FakeTLS traffic not counted in the quota"
        time.sleep(0.05)
    assert is_site(d, bridge(dd_secret(q)))
    late = mux.open(key16(q))
    wait_refused(mux, late)
    m = scrape(d)
    assert value(m, "mtg_web_limited_total", at="stream", reason="quota") == 1
    assert value(m, "mtg_web_limited_total", at="page", reason="quota") == 1
    car.sock.close()


def test_dc_connect_failure_gives_the_slot_back(make_daemon, fakedc):
    """A stream whose DC refuses the connection is closed and gives its
    secret's connection back: the next stream of a max-connections = 1
    secret relays."""
    named = secrets("alice")
    alice = named["alice"]
    dead = free_port()   # nothing listens there
    dcs = {i: [hostport(*fakedc.addr)] for i in range(1, 6)}
    dcs[3] = [hostport("127.0.0.1", dead)]
    d = web_daemon(make_daemon, named, limits={"alice": {"max-connections": 1}},
                   dc_overrides=dcs)
    _, car = session(d, dd_secret(alice))
    mux = wc.Mux(car)
    for _ in range(2):
        sid = mux.open(key16(alice), dc=3)
        wait_refused(mux, sid)
        wait_metric(d, "mtg_secret_connections", 0, secret="alice")
    m = scrape(d)
    assert value(m, "mtg_web_streams_dc_unreachable_total") == 2
    assert value(m, "mtg_secret_refused_total", secret="alice", reason="max_connections") == 0
    open_relaying(mux, alice, 1)
    wait_metric(d, "mtg_secret_connections", 1, secret="alice")
    car.sock.close()


def test_max_streams_bounds_the_slots_one_carrier_holds(make_daemon):
    """One carrier holds at most max-streams of its secret's connections
    and of the concurrency: an OPEN over it is refused before it takes any."""
    named = secrets("alice")
    alice = named["alice"]
    d = web_daemon(make_daemon, named, tables={"web": {"max-streams": 2}})
    _, car = session(d, dd_secret(alice))
    mux = wc.Mux(car)
    held = [bare_open(mux) for _ in range(2)]
    over = bare_open(mux)
    wait_refused(mux, over)
    m = scrape(d)
    assert value(m, "mtg_secret_connections", secret="alice") == 2
    assert value(m, "mtg_web_streams_refused_total") == 1
    assert value(m, "mtg_secret_accepted_total", secret="alice") == 2
    assert not set(held) & mux.closed_by_relay
    car.sock.close()
