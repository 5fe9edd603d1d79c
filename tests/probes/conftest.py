"""One run of the whole catalog per session (a few minutes, most of it the
long probes watched in parallel); each probe is then its own test item, and
the table is printed at the end."""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import probes  # noqa: E402
import runner  # noqa: E402
import stack  # noqa: E402

_STATE = {}
REPORT = os.environ.get("PROBE_REPORT", os.path.join(stack.ROOT, "out", "test-logs", "probes-report.txt"))


# PROBE_NULL=1 points the second target at the reference Caddy too: every
# probe must then come out "same", which checks the suite's own noise
# (randomness, tolerances) rather than tgfront.
NULL = os.environ.get("PROBE_NULL") == "1"


def selected():
    """PROBES=substring[,substring] runs only matching probes (debugging)."""
    want = [w for w in os.environ.get("PROBES", "").split(",") if w]
    return lambda p: (not want or any(w in p.name for w in want)) and not (NULL and p.needs_tgfront)


@pytest.fixture(scope="session")
def probe_results():
    from test_probes import ALLOW
    st = stack.Stack().start()
    _STATE["stack"] = st
    try:
        targets = [probes.Target("caddy", st.ref_port, st.ref_caddy.log, st),
                   probes.Target("tgfront", st.tg_port, st.front_caddy.log, st)]
        if NULL:
            targets[1] = probes.Target("tgfront", st.ref_port, st.ref_caddy.log, st)
        results = runner.run(st, probes.catalog(), targets, selected())
        runner.judge(results, ALLOW)
        runner.settle(results, targets, st, ALLOW)
        _STATE["results"] = results
        os.makedirs(os.path.dirname(REPORT), exist_ok=True)
        with open(REPORT, "w") as f:
            f.write(runner.table(results) + "\n\n" + runner.report(results, st))
        _STATE["tgfront_alive"] = st.tgfront.p.poll() is None
        yield {r.probe.name: r for r in results}
    finally:
        _STATE["codes"] = st.stop()
        _STATE["tgfront_log"] = st.tgfront.text()


def pytest_terminal_summary(terminalreporter):
    results = _STATE.get("results")
    if not results:
        return
    terminalreporter.write_sep("=", "probe table (reference: stock Caddy; tgfront: the same site fronted)")
    terminalreporter.write_line(runner.table(results))
    terminalreporter.write_line("tolerance: times agree within max(%d ms, %d %%); full report: %s" % (
        runner.observe.TIME_ABS * 1000, runner.observe.TIME_REL * 100, REPORT))
    for r in results:
        for n in getattr(r, "notes", []):
            terminalreporter.write_line("re-examined: %s: %s" % (r.probe.name, n))
