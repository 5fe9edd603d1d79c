#!/usr/bin/python3
"""Checks a running image's WEB proxy mode through its public port, as
Telegram Desktop's native side with its WebView would (webclient.py), and
prints one line per check and "N passed, N failed".

Usage: web_image_check.py HOST:PORT DOMAIN LINK_SECRET CAFILE
  LINK_SECRET: the secret of the printed tg://webproxy link (dd + 32 hex).
The image's TG_DATACENTERS must point DCs 2-4 at an echoing fake DC
(fakedc.py --mode echo)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import webclient as wc  # noqa: E402

RESULTS = [0, 0]


def check(ok, what):
    RESULTS[0 if ok else 1] += 1
    print(("ok   - " if ok else "FAIL - ") + what, flush=True)
    return ok


def comparable(r):
    return r.status, sorted((k.lower(), v) for k, v in r.headers if k.lower() != "date"), r.body


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    addr = (host, int(port))
    domain, link_secret, ca = sys.argv[2], sys.argv[3], sys.argv[4]
    sec = bytes.fromhex(link_secret)
    key16 = sec[1:]

    def get(target):
        s = wc.connect(addr, domain, ca)
        try:
            return wc.http_get(s, domain, target)
        finally:
            s.close()

    home = get("/")
    bogus = get("/?bridge=" + wc.capability(domain, b"\xdd" + os.urandom(16)))
    check(comparable(bogus) == comparable(home),
          "a wrong capability gets the site's / byte for byte (status %d)" % bogus.status)
    page = get("/?bridge=" + wc.capability(domain, sec))
    check(page.status == 200 and page.header("cache-control") == "no-store"
          and "script-src 'nonce-" in (page.header("content-security-policy") or ""),
          "the link's capability gets the bridge page")
    missing = get("/api/v1/nothing")
    c = wc.Carrier(wc.connect(addr, domain, ca), domain, "/api/v1/socket",
                   wc.b64u(os.urandom(32)), origin="https://" + domain)
    body = c.buf
    n = int(c.response.header("content-length") or 0)
    while len(body) < n:
        body += c.sock.recv(65536)
    c.response.body = body[:n]
    check(comparable(c.response) == comparable(missing),
          "a wrong token gets the site's answer for an unknown path (status %d)"
          % c.response.status)
    c.sock.close()

    try:
        _, car = wc.bridge_session(addr, domain, sec, tls=True, cafile=ca)
        check(car.response.status == 101 and car.accept_ok, "the carrier opens (101)")
        car.hello()
        check(True, "HELLO -> WELCOME alone")
        mux = wc.Mux(car)
        pkts = [b"\x28\x00\x00\x00" + os.urandom(40) for _ in range(3)]
        ids = [mux.open(key16, dc=2 + i, first_payload=p) for i, p in enumerate(pkts)]
        ok = all(mux.recv_exact(s, len(p)) == p for s, p in zip(ids, pkts))
        big = os.urandom(3 << 20)
        ok = ok and mux.echo(ids[0], big) == big
        check(ok, "three streams round-trip to the fake DC (3 MiB on one)")
        car.sock.close()
    except Exception as e:   # noqa: BLE001 - report, do not hide
        check(False, "carrier round trip: %r" % (e,))
    print("%d passed, %d failed" % tuple(RESULTS))
    sys.exit(1 if RESULTS[1] else 0)


if __name__ == "__main__":
    main()
