"""Runs the catalog against both targets, attaches what the site logged for
each connection, and judges every probe.

Quick probes run one after the other (each against both targets at the same
moment); long ones (watched past Caddy's 60 s timers) run in threads from
the start; bulk transfers run last, one target at a time.
"""

import json
import re
import threading
import time
import traceback

import observe
import probes
from observe import Obs


class Result:
    def __init__(self, probe):
        self.probe = probe
        self.ref = None
        self.got = None
        self.diffs = []
        self.allowed = []     # (diff, reason)
        self.verdict = None


def _run_one(probe, target, ctx, out, key):
    try:
        out[key] = probe.fn(target, ctx)
    except Exception as e:  # the failure is the observation
        o = Obs(b"", None, None, None)
        o.extra["error"] = "%s: %s" % (type(e).__name__, e)
        o.extra["traceback"] = traceback.format_exc()[-600:]
        out[key] = o


def _start_pair(probe, targets, st):
    """Threads that run probe against both targets; returns (threads, out)."""
    out = {}
    try:
        ctx = probe.prepare(st) if probe.prepare else {}
    except Exception as e:
        o = Obs(b"", None, None, None)
        o.extra["error"] = "prepare: %s: %s" % (type(e).__name__, e)
        out["caddy"] = out["tgfront"] = o
        return [], out
    ths = []
    for t in targets:
        if probe.tg_only and t.name == "caddy":
            continue
        th = threading.Thread(target=_run_one, args=(probe, t, ctx, out, t.name), daemon=True)
        th.start()
        ths.append(th)
    return ths, out


def site_messages(log_path):
    """(client address, port) -> what Caddy's Go http server logged for it
    (handshake errors and the like), addresses removed."""
    msgs = {}
    try:
        with open(log_path, errors="replace") as f:
            for line in f:
                try:
                    j = json.loads(line)
                except ValueError:
                    continue
                if j.get("logger") != "http.stdlib":
                    continue
                m = re.search(r"from ([\d.]+):(\d+): (.*)$", j.get("msg", ""))
                if not m:
                    continue
                text = re.sub(r"(read|write) tcp \S+->\S+: ", "", m.group(3))
                msgs.setdefault((m.group(1), int(m.group(2))), []).append(text)
    except OSError:
        pass
    return msgs


def _attach_logs(o, msgs):
    for p in o.parts:
        _attach_logs(p, msgs)
    if o.laddr is not None:
        o.extra["site log"] = msgs.get(tuple(o.laddr), [])


def run(st, catalog, targets, only=None):
    results = [Result(p) for p in catalog if not only or only(p)]
    by_group = {"long": [], "quick": [], "bulk": []}
    for r in results:
        by_group[r.probe.group].append(r)
    running = []
    for r in by_group["long"]:
        ths, out = _start_pair(r.probe, targets, st)
        running.append((r, ths, out))
    for r in by_group["quick"]:
        ths, out = _start_pair(r.probe, targets, st)
        for th in ths:
            th.join()
        r.ref, r.got = out.get("caddy"), out.get("tgfront")
    for r in by_group["bulk"]:
        out = {}
        ctx = r.probe.prepare(st) if r.probe.prepare else {}
        for t in targets:
            _run_one(r.probe, t, ctx, out, t.name)
        r.ref, r.got = out.get("caddy"), out.get("tgfront")
    for r, ths, out in running:
        for th in ths:
            th.join()
        r.ref, r.got = out.get("caddy"), out.get("tgfront")
    time.sleep(1.0)   # the site logs a connection's end after our close
    _attach_all(results, targets)
    return results


def _attach_all(results, targets):
    logs = {t.name: site_messages(t.site_log) for t in targets}
    for r in results:
        if r.ref is not None:
            _attach_logs(r.ref, logs["caddy"])
        if r.got is not None:
            _attach_logs(r.got, logs["tgfront"])


def judge(results, allow):
    """Fills verdicts. allow: probe name -> [(substring of a diff, reason)]."""
    for r in results:
        _judge_one(r, allow)
    return results


def _judge_one(r, allow):
    p = r.probe
    r.allowed = []
    if p.tg_only:
        err = r.got.extra.get("error") if r.got else "no observation"
        r.diffs = [] if (r.got and r.got.faketls and not err) else ["valid client failed: %s" % err]
        r.verdict = "ok (tgfront only)" if not r.diffs else "FAIL"
        return
    if r.ref is None or r.got is None:
        r.diffs = ["no observation"]
    elif "error" in r.ref.extra and "error" not in r.got.extra:
        # the reference itself broke: the probe is wrong, not tgfront
        r.diffs = ["probe failed against the reference: %s" % r.ref.extra["error"]]
    else:
        r.diffs = (p.judge or observe.compare)(r.ref, r.got)
    rules = allow.get(p.name, [])
    left = []
    for d in r.diffs:
        why = next((reason for sub, reason in rules if sub in d), None)
        if why:
            r.allowed.append((d, why))
        else:
            left.append(d)
    r.diffs = left
    if left:
        r.verdict = "DIFFERENT"
    elif r.allowed:
        r.verdict = "same (allowed difference)"
    else:
        r.verdict = "same"


# What the machine's load alone can cause. The site logs a connection's end
# after our close, through a goroutine that a busy machine runs late: a
# "site log" difference is looked at again for up to LOG_SETTLE seconds
# (logs only grow). The two targets are timed at the same moment, but 50 ms
# of scheduling noise is not rare on a loaded machine (seen: first byte at
# 1 ms vs 69 ms; a 100 MB transfer 1.0 s vs 2.3 s while other jobs ran): a
# quick or bulk probe whose only differences are times is run again, up to
# TIMING_TRIES times in all, and the difference stands only when every run
# shows one. tgfront delaying something really does that in every run; noise
# that strikes one probe run in 30 strikes six in a row about once in 1e9.
LOG_SETTLE = 10.0
TIMING_TRIES = 6
_TIMING = re.compile(r"^(conn \d+: )*(first byte at|closed at|transfer took) ")
_SITE_LOG = re.compile(r"^(conn \d+: )*site log: ")


def settle(results, targets, st, allow):
    """Re-examines differences that load alone can cause (see above); adds
    what it did to each result's notes (r.notes) for the report."""
    _settle_logs(results, targets, allow)
    for r in results:
        if r.probe.group == "long" or not r.diffs or not all(_TIMING.search(d) for d in r.diffs):
            continue
        seen = [list(r.diffs)]
        while len(seen) < TIMING_TRIES:
            again = _rerun(r, targets, st, allow)
            if not again.diffs or not all(_TIMING.search(d) for d in again.diffs):
                break
            seen.append(list(again.diffs))
        if len(seen) < TIMING_TRIES:
            _note(r, "timing difference in %d run(s), not in run %d (%s): %s" % (
                len(seen), len(seen) + 1, again.verdict, " / ".join("; ".join(x) for x in seen)))
            r.ref, r.got, r.diffs, r.allowed, r.verdict = (again.ref, again.got, again.diffs,
                                                           again.allowed, again.verdict)
        else:
            r.diffs = ["%s (in each of %d runs: %s)" % (r.diffs[0], TIMING_TRIES,
                                                       " / ".join("; ".join(x) for x in seen))]
            r.verdict = "DIFFERENT"
    return results


def _settle_logs(results, targets, allow):
    deadline = time.monotonic() + LOG_SETTLE
    while any(_SITE_LOG.search(d) for r in results for d in r.diffs) and time.monotonic() < deadline:
        time.sleep(1.0)
        _attach_all(results, targets)
        for r in results:
            if any(_SITE_LOG.search(d) for d in r.diffs):
                before = list(r.diffs)
                _judge_one(r, allow)
                if r.diffs != before:
                    _note(r, "site log read again: %s" % ("; ".join(before)))


def _note(r, text):
    if not hasattr(r, "notes"):
        r.notes = []
    r.notes.append(text)


def _rerun(r, targets, st, allow):
    """A fresh run of r's probe against both targets, judged."""
    again = Result(r.probe)
    if r.probe.group == "bulk":
        out = {}
        ctx = r.probe.prepare(st) if r.probe.prepare else {}
        for t in targets:
            _run_one(r.probe, t, ctx, out, t.name)
    else:
        ths, out = _start_pair(r.probe, targets, st)
        for th in ths:
            th.join()
    again.ref, again.got = out.get("caddy"), out.get("tgfront")
    time.sleep(1.0)   # as in run(): the site logs a connection's end late
    _attach_all([again], targets)
    _judge_one(again, allow)
    _settle_logs([again], targets, allow)
    return again


def table(results, width=58):
    def cut(s, n):
        return s if len(s) <= n else s[:n - 3] + "..."
    rows = [("probe", "Caddy", "tgfront", "verdict")]
    for r in results:
        rows.append((r.probe.name,
                     "-" if r.probe.tg_only else summary(r.ref),
                     summary(r.got), r.verdict or "?"))
    w0 = max(len(x[0]) for x in rows)
    lines = []
    for a, b, c, d in rows:
        lines.append("%-*s | %-*s | %-*s | %s" % (w0, a, width, cut(b, width), width, cut(c, width), d))
        if len(lines) == 1:
            lines.append("-" * len(lines[0]))
    details = []
    for r in results:
        for d in r.diffs:
            details.append("  %s: %s" % (r.probe.name, d))
        for d, why in r.allowed:
            details.append("  %s: %s (allowed: %s)" % (r.probe.name, d, why))
    if details:
        lines.append("")
        lines.append("differences:")
        lines.extend(details)
    return "\n".join(lines)


def summary(o):
    if o is None:
        return "-"
    if "error" in o.extra:
        return "error: " + o.extra["error"]
    return o.summary()


def _detail(o, indent="    "):
    if o is None:
        return [indent + "-"]
    lines = [indent + o.summary()]
    if o.parts:
        for i, p in enumerate(o.parts):
            lines.append(indent + "conn %d:" % i)
            lines += _detail(p, indent + "  ")
        return lines
    if o.t_first is not None:
        lines.append(indent + "first byte %.3fs" % o.t_first)
    for k, v in sorted(o.extra.items()):
        lines.append(indent + "%s: %r" % (k, v))
    return lines


def report(results, st):
    """Everything observed, for whoever has to fix a difference."""
    out = ["tolerance: times agree within max(%d ms, %d %%); ECDSA signature record +-%d B; "
           "bulk duration: slower by at most max(%.1f s, %d %%)" % (
               observe.TIME_ABS * 1000, observe.TIME_REL * 100, observe.SIG_SLACK,
               probes.BULK_ABS, probes.BULK_REL * 100),
           "logs: %s" % st.dir, ""]
    for r in results:
        out.append("%s: %s" % (r.probe.name, r.verdict))
        for d in r.diffs:
            out.append("  DIFF " + d)
        for d, why in r.allowed:
            out.append("  allowed: %s (%s)" % (d, why))
        for n in getattr(r, "notes", []):
            out.append("  note: " + n)
        if not r.probe.tg_only:
            out.append("  caddy:")
            out += _detail(r.ref)
        out.append("  tgfront:")
        out += _detail(r.got)
    return "\n".join(out) + "\n"
