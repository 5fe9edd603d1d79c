"""workers = N: several event loops share the listener and one replay filter.
Log lines carry the worker that wrote them ("conn[w1]: ..."), which is how
these tests see which worker served a connection."""

import os
import re
import signal
import time

from helpers import assert_fronted, raw_connect, recv_n, round_trip

REPLY = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
# Threads an emulator adds to the daemon's process: tests/arm64/run.sh sets
# 1 for qemu-user's own. Counted as the daemon's alone, the workers=2 count
# passed under qemu only when it looked before the second worker started.
EMULATOR_THREADS = int(os.environ.get("TGF_EMULATOR_THREADS", "0"))
RELAYING = re.compile(r"conn\[w(\d+)\]: relaying to DC")
REPLAY = re.compile(r"conn\[w(\d+)\]: replay attack has been detected")


def threads_of(pid, want=None, timeout=3.0):
    """The daemon's threads; with want, waits for that many (readiness is
    reported once the listener is open, the worker threads start next)."""
    deadline = time.monotonic() + timeout
    while True:
        tasks = sorted(os.listdir("/proc/%d/task" % pid))
        if want is None or len(tasks) == want or time.monotonic() > deadline:
            return tasks
        time.sleep(0.02)


def new_lines(d, seen):
    text = d.stderr()
    return text[seen:], len(text)


def wait_match(d, seen, pattern, timeout=5.0):
    """The worker number in the first line matching pattern after offset
    seen, and the new offset."""
    deadline = time.monotonic() + timeout
    while True:
        text, end = new_lines(d, seen)
        m = pattern.search(text)
        if m:
            return int(m.group(1)), seen + m.end()
        assert time.monotonic() < deadline, \
            "no line matching %r in:\n%s" % (pattern.pattern, text[-3000:])
        time.sleep(0.02)


def test_workers_one_keeps_one_thread(make_daemon):
    d = make_daemon(top={"workers": 1})
    assert len(threads_of(d.pid())) == 1
    assert "(1 worker)" in d.stderr(), d.stderr()[-2000:]


def test_workers_default_is_cpu_count(make_daemon):
    d = make_daemon()
    want = len(os.sched_getaffinity(0))
    assert len(threads_of(d.pid(), want)) == want, threads_of(d.pid())
    assert "(%d worker" % want in d.stderr(), d.stderr()[-2000:]


def test_both_workers_serve(make_daemon, fakedc):
    """Eight relays opened together land on both workers (the loops balance
    their share of connections), and every one of them relays."""
    d = make_daemon(top={"workers": 2})
    want = 2 + EMULATOR_THREADS
    assert len(threads_of(d.pid(), want)) == want, threads_of(d.pid())
    clients, seen, where = [], 0, []
    for _ in range(8):
        c = d.client().connect()
        clients.append(c)
        w, seen = wait_match(d, seen, RELAYING)
        where.append(w)
    for c in clients:
        data = os.urandom(20000)
        assert round_trip(c, data) == data
    assert sorted(set(where)) == [0, 1], "relays per worker: %r" % where
    assert where.count(0) == 4, "unbalanced: %r" % where
    for c in clients:
        c.close()


def test_replay_caught_on_another_worker(make_daemon, backend, fakedc):
    """A hello relayed by one worker and replayed to the other is fronted:
    the replay filter is shared. The first connection stays open, so the
    replay is balanced onto the other worker in most trials; the test
    needs at least one trial where it was."""
    d = make_daemon(top={"workers": 2})
    backend.reply_on_data = REPLY
    seen, crossed, trials, held = 0, 0, 0, []
    while crossed < 2 and trials < 20:
        trials += 1
        c = d.client()
        hello = c.build_hello()
        c.connect()
        assert round_trip(c, b"first") == b"first"
        held.append(c)
        w_first, seen = wait_match(d, seen, RELAYING)
        s = raw_connect(d.addr)
        held.append(s)
        s.sendall(hello)
        assert_fronted(backend, s, hello)
        assert recv_n(s, len(REPLY)) == REPLY, "the replay was not fronted"
        w_replay, seen = wait_match(d, seen, REPLAY)
        crossed += w_first != w_replay
    for x in held:
        x.close()
    assert crossed >= 1, "no replay landed on the other worker in %d trials" % trials


def test_drain_covers_every_worker(make_daemon, fakedc):
    """SIGTERM drains every worker: relays on both keep working right
    after the signal, new connections are refused, the process exits 0."""
    d = make_daemon(top={"workers": 2})
    clients, seen, where = [], 0, []
    for _ in range(6):
        c = d.client().connect()
        clients.append(c)
        w, seen = wait_match(d, seen, RELAYING)
        where.append(w)
    assert sorted(set(where)) == [0, 1], where
    d.signal(signal.SIGTERM)
    # 10 s: the listener closes when the daemon takes the signal, late on a
    # busy machine; the drain (3 s) counts from then, not from here.
    deadline, refused = time.monotonic() + 10, False
    while time.monotonic() < deadline and not refused:
        try:
            raw_connect(d.addr, 0.5).close()
            time.sleep(0.05)
        except (ConnectionRefusedError, ConnectionResetError):
            # Reset: the connect was queued on the listener as it closed.
            refused = True
    assert refused, "listener still accepting 10 s after SIGTERM"
    for c in clients:
        data = os.urandom(30000)
        assert round_trip(c, data) == data, "relay broken right after SIGTERM"
    err = d.stderr()
    for w in (0, 1):
        assert re.search(r"main\[w%d\]: worker %d shutting down" % (w, w), err), err[-3000:]
    assert d.proc.poll() is None, "exited while relays were open"
    for c in clients:
        c.close()
    rc = d.wait(12)
    assert rc == 0, "exit status %r after SIGTERM" % rc


def test_second_sigterm_stops_every_worker(make_daemon, fakedc):
    d = make_daemon(top={"workers": 2})
    clients = [d.client().connect() for _ in range(4)]
    d.signal(signal.SIGTERM)
    # The second signal must come after the daemon took the first (two
    # pending SIGTERMs are one): its log line says so. A fixed 0.3 s could
    # pass first on a busy machine, and the one drain then took its 3 s.
    wait_match(d, 0, re.compile(r"main\[w(\d+)\]: shutting down: no new connections"), 10)
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    rc = d.wait(5)
    assert rc == 0, rc
    assert time.monotonic() - t0 < 2, "the second SIGTERM did not stop at once"
    for c in clients:
        c.close()


def test_metrics_sum_across_workers(make_daemon, fakedc):
    """The stats endpoint sums every worker's counters at scrape time."""
    import urllib.request
    d = make_daemon(top={"workers": 2})
    clients, seen, where = [], 0, []
    for _ in range(6):
        c = d.client().connect()
        assert round_trip(c, b"x" * 100) == b"x" * 100
        clients.append(c)
        w, seen = wait_match(d, seen, RELAYING)
        where.append(w)
    assert sorted(set(where)) == [0, 1], where
    url = "http://127.0.0.1:%d/" % d.stats_port
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith("mtg_telegram_connections{"))
    assert total == 6, "telegram connections summed: %r\n%s" % (total, text[:3000])
    for c in clients:
        c.close()


def test_descriptor_cap_is_for_all_workers(make_daemon, backend):
    """The connection cap comes from the process's descriptor limit and
    holds for both workers together: held fronted connections never drive
    the daemon into EMFILE (a cap per worker would allow twice as many)."""
    import resource
    import subprocess
    from conftest import tgfront_bin
    limit = 48
    d = make_daemon(start=False, stats=False, top={"workers": 2})

    def lower_fd_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    d._errf = open(d.stderr_path, "wb")
    d.proc = subprocess.Popen([tgfront_bin(), "run", d.config_path], stdin=subprocess.DEVNULL,
                              stdout=d._errf, stderr=d._errf, preexec_fn=lower_fd_limit)
    deadline = time.monotonic() + 5
    while "listening on" not in d.stderr() and time.monotonic() < deadline:
        time.sleep(0.02)
    # reserve min(48 / 4, 64 + 3 per worker) = 12: (48 - 12) / 2 = 18
    assert "up to 18 connections" in d.stderr(), d.stderr()[-2000:]
    socks = []
    try:
        for _ in range(40):
            s = raw_connect(d.addr)
            s.sendall(b"G")          # fronted at once; stays open at the site
            socks.append(s)
        time.sleep(1.0)
        fds = len(os.listdir("/proc/%d/fd" % d.pid()))
        assert fds <= limit, "daemon holds %d descriptors, limit %d" % (fds, limit)
        err = d.stderr()
        assert "No file descriptors available" not in err, err[-3000:]
        assert "pausing accepts" not in err, err[-3000:]
        assert d.proc.poll() is None
    finally:
        for s in socks:
            s.close()
    # the backlog drains once descriptors come back; a client is served
    deadline = time.monotonic() + 10
    while True:
        try:
            with d.client() as c:
                c.connect()
                assert round_trip(c, b"ping") == b"ping"
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
