"""Issue 6, descriptors: containers often start a process with a soft
RLIMIT_NOFILE of 1024. With that soft limit (and a higher hard one), 1,500
silent connections must all be fronted (each reaches the fronting backend
with a PROXY header naming it) and none closed by us, while Telegram clients
are still served: the daemon raises its soft limit to the hard one and keeps
a reserve so no accepted connection lacks its second descriptor."""

import select
import socket
import time

from conftest import NOFILE_HARD, closed_delta, fd_count, figure, nofile_limit, scrape, wait_fds
from fronting_backend import FrontingBackend

SILENT = 1500
SOFT = 1024
VALID = 5


class BigBackend(FrontingBackend):
    """The harness's backend (one thread per connection, recording PROXY
    headers) with a listen backlog for a burst of 1,500 fronting connections."""
    backlog = 4096


def closed_sockets(socks):
    """Sockets the peer has closed (FIN or RST): the backend never writes,
    so any readable/hang-up event on a silent client is a close by us."""
    p = select.poll()
    for s in socks:
        p.register(s.fileno(), select.POLLIN | select.POLLRDHUP | select.POLLHUP | select.POLLERR)
    return len(p.poll(0))


def test_1500_silent_connections_with_soft_limit_1024(make_daemon):
    be = BigBackend().start()
    socks = []
    try:
        d = make_daemon(backend_addr=be.addr, preexec_fn=nofile_limit(SOFT),
                        top={"concurrency": 4096},
                        tables={"network.timeout": {"handshake": "2s", "idle": "300s"}})
        with open("/proc/%d/limits" % d.pid()) as f:
            lim = [l for l in f if l.startswith("Max open files")][0].split()
        figure("daemon RLIMIT_NOFILE soft/hard: given / after start-up",
               "%d/%d / %s/%s" % (SOFT, NOFILE_HARD, lim[3], lim[4]))
        time.sleep(0.2)
        base_fds = fd_count(d.pid())
        m0 = scrape(d)
        t0 = time.monotonic()
        for _ in range(SILENT):
            s = socket.create_connection(d.addr, timeout=5)
            socks.append(s)
        figure("silent connections opened", len(socks), "in %.2f s" % (time.monotonic() - t0))

        # Telegram clients while the silent ones are held
        served, times = 0, []
        for _ in range(VALID):
            t = time.monotonic()
            try:
                with d.client(timeout=3) as c:
                    # payload with the init frame: one write, no Nagle delay
                    c.connect(first_payload=b"still served")
                    if c.recv_exact(12) == b"still served":
                        served += 1
                        times.append(time.monotonic() - t)
            except (OSError, EOFError) as e:
                figure("valid client failed", repr(e))
        figure("valid clients served while %d silent held" % SILENT, "%d/%d" % (served, VALID),
               "(max %.3f s)" % max(times) if times else "")

        ports = {s.getsockname()[1] for s in socks}

        def fronted(conns):
            got = {c.proxy.sport for c in conns if c.proxy is not None} & ports
            return got if len(got) == len(ports) else None
        deadline = 20
        be.wait_for(fronted, deadline)
        with be.lock:
            got = {c.proxy.sport for c in be.conns if c.proxy is not None} & ports
        peak_fds = fd_count(d.pid())
        n_closed = closed_sockets(socks)
        m1 = scrape(d)
        figure("silent connections fronted (PROXY header at backend)",
               "%d/%d" % (len(got), SILENT), "within %d s" % deadline)
        figure("silent connections closed by the daemon", n_closed)
        figure("daemon descriptors: baseline / with %d silent" % SILENT,
               "%d / %d" % (base_fds, peak_fds))
        figure("close reasons meanwhile", closed_delta(m0, m1) or "{}")
        alive = d.proc.poll() is None

        for s in socks:
            s.close()
        socks = []
        left = wait_fds(d.pid(), base_fds, 20) if alive else -1
        figure("daemon descriptors after all closed (baseline %d)" % base_fds, left)

        problems = []
        if not alive:
            problems.append("tgfront died:\n" + d.stderr()[-3000:])
        if served != VALID:
            problems.append("only %d of %d valid clients served with %d silent held"
                            % (served, VALID, SILENT))
        if len(got) != SILENT:
            problems.append("%d of %d silent connections reached the fronting backend"
                            % (len(got), SILENT))
        if n_closed:
            problems.append("%d silent connections closed by the daemon" % n_closed)
        if left > base_fds:
            problems.append("descriptors left: %d (baseline %d)" % (left, base_fds))
        assert not problems, "; ".join(problems)
    finally:
        for s in socks:
            s.close()
        be.stop()
