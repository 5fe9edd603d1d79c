"""Fixtures and helpers for the load and fault suite.

The integration harness (tests/integration: Daemon, tgclient, FakeDC,
FrontingBackend) is imported, not copied. Its conftest is loaded under
another module name so that pytest's own `conftest` for this folder does not
shadow it. Figures measured by the tests are collected with figure() and
printed in a block before pytest's final summary line.
"""

import importlib.util
import os
import resource
import sys
import time
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
IT = os.path.abspath(os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
sys.path.insert(0, IT)

_spec = importlib.util.spec_from_file_location("it_conftest", os.path.join(IT, "conftest.py"))
itc = importlib.util.module_from_spec(_spec)
sys.modules["it_conftest"] = itc
_spec.loader.exec_module(itc)

# fixtures of the integration harness, reused as they are
from it_conftest import backend, backend_session, fakedc, secret, workdir  # noqa: E402,F401
from server_proc import raise_nofile  # noqa: E402

Daemon = itc.Daemon
finish_daemon = itc._finish

# The client side of these tests holds thousands of sockets itself.
NOFILE_HARD = raise_nofile()

_FIGURES = []


def figure(name, value, unit=""):
    """Records a measured figure; printed now (pytest -s) and in the summary."""
    text = "%-58s %s %s" % (name, value, unit)
    _FIGURES.append(text.rstrip())
    print("FIGURE " + text, flush=True)


def pytest_terminal_summary(terminalreporter):
    if _FIGURES:
        terminalreporter.section("stress figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)


def nofile_limit(soft, hard=None):
    """preexec_fn giving the daemon this RLIMIT_NOFILE (hard defaults to ours)."""
    hard = NOFILE_HARD if hard is None else hard

    def apply():
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return apply


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def wait_fds(pid, at_most, timeout):
    """Waits until the process has at most at_most descriptors; returns the count."""
    deadline = time.monotonic() + timeout
    n = fd_count(pid)
    while n > at_most and time.monotonic() < deadline:
        time.sleep(0.1)
        n = fd_count(pid)
    return n


def scrape(d, timeout=5):
    """The daemon's Prometheus text as {'name{labels}': value} (prefix
    stripped), or None when the stats listener does not answer (a daemon
    out of descriptors): callers report that rather than crash."""
    url = "http://127.0.0.1:%d/" % d.stats_port
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            text = r.read().decode()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, val = line.rpartition(" ")
        if key.startswith("mtg_"):
            key = key[4:]
        out[key] = float(val)
    return out


def closed_by(m, reason):
    return m.get('connections_closed_total{reason="%s"}' % reason, 0)


def closed_delta(before, after):
    """{reason: count} for every close reason that moved."""
    if before is None or after is None:
        return "metrics unavailable (stats listener did not answer)"
    out = {}
    for k, v in after.items():
        if k.startswith("connections_closed_total{") and v != before.get(k, 0):
            out[k.split('"')[1]] = v - before.get(k, 0)
    return out


@pytest.fixture
def make_daemon(workdir, secret, fakedc, backend_session):
    """Like the integration fixture, plus preexec_fn; quiet by default
    (debug logging of thousands of connections only costs CPU)."""
    made = []

    def make(start=True, **kw):
        kw.setdefault("dc_addr", fakedc.addr)
        kw.setdefault("backend_addr", backend_session.addr)
        top = {"debug": False}
        top.update(kw.pop("top", {}) or {})
        d = Daemon(workdir, secret, top=top, **kw)
        made.append(d)
        return d.start() if start else d
    yield make
    for d in made:
        if d.proc is not None and d.rc is None:
            finish_daemon(d)
