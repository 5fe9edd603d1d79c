"""Issue 6's differential suite: a prober must not be able to tell tgfront
(fronting Caddy through the image's PROXY-protocol listener) from a stock
Caddy serving the same site. Every probe's difference fails its test unless
ALLOW names it with the reason it is inherent."""

import pytest

import probes
from conftest import _STATE

# probe name -> [(substring of the difference, why it is inherent)].
# Keep this short and honest: timing within observe.TIME_ABS/TIME_REL is
# not a difference at all; the bulk duration bound is in probes.judge_bulk.
ALLOW = {}

NAMES = [p.name for p in probes.catalog()]


@pytest.mark.parametrize("name", NAMES)
def test_probe(probe_results, name):
    r = probe_results.get(name)
    if r is None:
        pytest.skip("not selected (PROBES)")
    assert not r.diffs, "%s: a prober can tell tgfront from Caddy:\n  %s\nCaddy:   %s\ntgfront: %s" % (
        name, "\n  ".join(r.diffs), r.ref.summary() if r.ref else "-", r.got.summary() if r.got else "-")


def test_daemon_survived(probe_results):
    assert _STATE.get("tgfront_alive"), "tgfront died during the probes"
