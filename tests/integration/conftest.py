"""Fixtures: a fake DC, a fronting backend and the real daemon on loopback.

The daemon binary comes from TGFRONT_BIN (default out/musl/tgfront relative
to the repository root).  Each daemon gets a generated config in a temp dir;
its stderr is collected, and at teardown it is stopped with SIGTERM (by PID)
and its stderr must not contain a sanitizer report.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)

import tgclient  # noqa: E402
from fakedc import FakeDC  # noqa: E402
from fronting_backend import FrontingBackend  # noqa: E402

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "WARNING: AddressSanitizer")
SECRET_HOST = "example.com"


def tgfront_bin():
    b = os.environ.get("TGFRONT_BIN", os.path.join(ROOT, "out", "musl", "tgfront"))
    if not os.path.isabs(b):
        b = os.path.join(ROOT, b)
    return b


_HANDED_OUT = set()


def free_port(host="127.0.0.1"):
    """A port free now that this process never handed out before: the
    caller binds it later (a daemon's listener), and until then a second
    call could be given the same closed port (about once in 14,000), such
    as a test's WEB port and the daemon's stats port."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    while True:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.bind((host, 0))
        p = s.getsockname()[1]
        s.close()
        if p not in _HANDED_OUT:
            _HANDED_OUT.add(p)
            return p


def hostport(host, port):
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def toml_str(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_str(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_config(top, tables):
    """top: dict of top-level keys; tables: dict name -> dict (None values
    are dropped).  Keys in [datacenters] are written bare (numbers)."""
    lines = []
    for k, v in top.items():
        if v is not None:
            lines.append("%s = %s" % (k, toml_str(v)))
    for name, kv in tables.items():
        if not kv:
            continue
        lines.append("")
        lines.append("[%s]" % name)
        for k, v in kv.items():
            if v is not None:
                lines.append("%s = %s" % (k, toml_str(v)))
    return "\n".join(lines) + "\n"


class Daemon:
    """One tgfront process with its config, ports and stderr."""

    def __init__(self, workdir, secret, dc_addr, backend_addr, bind_host="127.0.0.1",
                 dc_overrides=None, top=None, tables=None, stats=True, preexec_fn=None):
        self.workdir = workdir
        self.preexec_fn = preexec_fn   # runs in the child before exec (e.g. setrlimit)
        self.secret = secret
        self.bind_host = bind_host
        self.port = free_port(bind_host)
        self.stats_port = None
        while stats and self.stats_port in (None, self.port):
            # two free_port calls may hand out the same just-closed port
            self.stats_port = free_port("127.0.0.1")
        dcs = dc_overrides
        if dcs is None:
            dcs = {i: [hostport(*dc_addr)] for i in range(1, 6)}
        cfg_top = {
            "secret": tgclient.secret_hex(secret),
            "bind-to": hostport(bind_host, self.port),
            "debug": True,
            "tolerate-time-skewness": "3s",
            "concurrency": 64,
        }
        cfg_top.update(top or {})
        t = {
            "domain-fronting": {"host": backend_addr[0], "port": backend_addr[1],
                                "proxy-protocol": True},
            "network.timeout": {"handshake": "3s", "idle": "30s"},
            "defense.anti-replay": {"enabled": True, "max-size": "1mib",
                                    "error-rate": 0.001},
            # The recording backends are not TLS sites, and a probe would be
            # one more connection they record; the site profile has its own
            # suite against a real Caddy (tests/probes/test_site_profile.py).
            "site-profile": {"enabled": False},
        }
        if stats:
            t["stats.prometheus"] = {"enabled": True,
                                     "bind-to": hostport("127.0.0.1", self.stats_port)}
        for name, kv in (tables or {}).items():
            t.setdefault(name, {}).update(kv)
        t["datacenters"] = {str(k): v for k, v in dcs.items()}
        self.config_text = render_config(cfg_top, t)
        self.config_path = os.path.join(workdir, "config-%d.toml" % self.port)
        with open(self.config_path, "w") as f:
            f.write(self.config_text)
        self.stderr_path = os.path.join(workdir, "stderr-%d.log" % self.port)
        self.proc = None
        self.rc = None

    @property
    def addr(self):
        return (self.bind_host, self.port)

    def start(self, timeout=10.0):
        """Runs the daemon and returns once it reports readiness: with
        --ready-fd it writes one newline after its listeners (the proxy and
        the stats socket) are open, as s6 expects; it closes the descriptor
        unwritten only by exiting."""
        self._errf = open(self.stderr_path, "wb")
        ours, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen([tgfront_bin(), "run", self.config_path,
                                          "--ready-fd", str(theirs.fileno())],
                                         stdin=subprocess.DEVNULL, stdout=self._errf,
                                         stderr=self._errf, pass_fds=(theirs.fileno(),),
                                         preexec_fn=self.preexec_fn)
            theirs.close()
            ours.settimeout(timeout)
            try:
                note = ours.recv(1)
            except socket.timeout:
                raise RuntimeError("tgfront not ready in %ss:\n%s" % (timeout, self.stderr()))
        finally:
            theirs.close()
            ours.close()
        if note == b"\n":
            return self
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        raise RuntimeError("tgfront closed --ready-fd without a newline (exit status %s) at "
                           "start:\n%s\nconfig:\n%s"
                           % (self.proc.returncode, self.stderr(), self.config_text))

    def _can_connect(self):
        fam = socket.AF_INET6 if ":" in self.bind_host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(0.2)
        try:
            s.connect(self.addr)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def pid(self):
        return self.proc.pid

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None

    def signal(self, sig):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait(self, timeout):
        try:
            self.rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.rc

    def stop(self, timeout=15.0):
        """SIGTERM, wait; SIGKILL if it hangs.  Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                self.rc = "hung after SIGTERM"
                self._errf.close()
                return self.rc
        self.rc = self.proc.returncode
        self._errf.close()
        return self.rc

    def sanitizer_report(self):
        err = self.stderr()
        for m in SANITIZER_MARKS:
            if m in err:
                return err
        return None

    def client(self, **kw):
        kw.setdefault("dc", 2)
        return tgclient.FakeTLSClient(self.addr, self.secret, **kw)


@pytest.fixture(scope="session")
def workdir():
    d = tempfile.mkdtemp(prefix="tgf-it-")
    yield d


@pytest.fixture(scope="session")
def secret():
    return tgclient.make_secret(SECRET_HOST)


@pytest.fixture(scope="session")
def fakedc():
    dc = FakeDC().start()
    yield dc
    dc.stop()


@pytest.fixture(scope="session")
def backend_session():
    b = FrontingBackend().start()
    yield b
    b.stop()


@pytest.fixture
def backend(backend_session):
    """The shared backend with a clean record and no canned answers."""
    backend_session.reset_state()
    yield backend_session
    backend_session.reset_state()


def _finish(d):
    rc = d.stop()
    rep = d.sanitizer_report()
    assert rep is None, "sanitizer report in tgfront stderr:\n" + rep[-6000:]
    assert rc == 0, "tgfront exit status %r after SIGTERM; stderr tail:\n%s" % (rc, d.stderr()[-3000:])


@pytest.fixture(scope="session")
def daemon_session(workdir, secret, fakedc, backend_session):
    d = Daemon(workdir, secret, fakedc.addr, backend_session.addr).start()
    yield d
    _finish(d)


@pytest.fixture
def daemon(daemon_session):
    assert daemon_session.proc.poll() is None, \
        "shared tgfront died earlier:\n" + daemon_session.stderr()[-3000:]
    return daemon_session


@pytest.fixture
def make_daemon(workdir, secret, fakedc, backend_session):
    """Factory for a daemon with its own config; stopped and checked at teardown."""
    made = []

    def make(start=True, **kw):
        kw.setdefault("dc_addr", fakedc.addr)
        kw.setdefault("backend_addr", backend_session.addr)
        d = Daemon(workdir, secret, **kw)
        made.append(d)
        return d.start() if start else d
    yield make
    for d in made:
        if d.proc is not None and d.rc is None:
            _finish(d)
        elif d.proc is not None:
            rep = d.sanitizer_report()
            assert rep is None, "sanitizer report in tgfront stderr:\n" + rep[-6000:]
