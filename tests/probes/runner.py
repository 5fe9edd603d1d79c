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
    logs = {t.name: site_messages(t.site_log) for t in targets}
    for r in results:
        if r.ref is not None:
            _attach_logs(r.ref, logs["caddy"])
        if r.got is not None:
            _attach_logs(r.got, logs["tgfront"])
    return results


def judge(results, allow):
    """Fills verdicts. allow: probe name -> [(substring of a diff, reason)]."""
    for r in results:
        p = r.probe
        if p.tg_only:
            err = r.got.extra.get("error") if r.got else "no observation"
            r.diffs = [] if (r.got and r.got.faketls and not err) else ["valid client failed: %s" % err]
            r.verdict = "ok (tgfront only)" if not r.diffs else "FAIL"
            continue
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
    return results


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
        if not r.probe.tg_only:
            out.append("  caddy:")
            out += _detail(r.ref)
        out.append("  tgfront:")
        out += _detail(r.got)
    return "\n".join(out) + "\n"
