#!/usr/bin/python3
"""Image smoke test helper: a FakeTLS client using SECRET connects to the
proxy, asks for DC 2, and must reach a fake datacenter (started here, on the
address TG_DATACENTERS points at) and round-trip random data. Then the
hybrid group (issue 7): a browser-like hello offering X25519MLKEM768 reaches
the image's Caddy, which must pick it (its GODEBUG), and a FakeTLS hello of
that kind must get the same group from tgfront once it has learned the site.

Run inside the container's network namespace:
  faketls_check.py --secret S --proxy 127.0.0.1:443 --dc-listen 127.0.0.1:4430
Prints one line; exit 0 on success.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "integration"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "probes"))
import fakedc  # noqa: E402
import socket  # noqa: E402
import tdlib_tls  # noqa: E402
import tgclient  # noqa: E402
import time  # noqa: E402


def check_hybrid(addr, key, host):
    """None, or what is wrong with the X25519MLKEM768 answers."""
    with socket.create_connection(addr, 10) as s:
        s.sendall(tdlib_tls.build_hello("mlkem", host))
        sh, _ = tdlib_tls.read_flight(s)
    _, _, group, share, _, _ = tdlib_tls.parse_server_hello(sh)
    if (group, len(share)) != (0x11EC, 1120):
        return "the site picked group 0x%04x (%d-byte share) for a hybrid hello: Caddy's GODEBUG?" % (
            group or 0, len(share))
    # tgfront learns the site's answer in the background, retrying 2, 4, 8,
    # 16, 32 s apart while the site starts (Caddy took 14 s under qemu-user
    # and shared load): wait for it past the 2+4+8+16+32 s of retries.
    wait = 90
    deadline = time.monotonic() + wait
    while True:
        hello = tdlib_tls.build_hello("mlkem", host, key=key)
        with socket.create_connection(addr, 10) as s:
            s.sendall(hello)
            ans = tdlib_tls.read_like_tdlib(s, hello, key)
        sh = ans[:5 + int.from_bytes(ans[3:5], "big")]
        _, _, group, share, _, _ = tdlib_tls.parse_server_hello(sh)
        if (group, len(share)) == (0x11EC, 1120):
            return None
        if time.monotonic() > deadline:
            return "tgfront answers a hybrid hello with group 0x%04x after %d s" % (group, wait)
        time.sleep(1)


def hostport(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secret", required=True)
    ap.add_argument("--proxy", default="127.0.0.1:443")
    ap.add_argument("--dc-listen", default="127.0.0.1:4430")
    ap.add_argument("--dc", type=int, default=2)
    ap.add_argument("--hold", type=float, default=0.0,
                    help="keep the relay open this many seconds, a round trip every 0.2 s")
    ap.add_argument("--check-hybrid", action="store_true",
                    help="also check that the site (through the proxy) and the FakeTLS answer "
                         "pick X25519MLKEM768 (needs the site up)")
    a = ap.parse_args()

    key, host = tgclient.parse_secret(a.secret)
    dc = fakedc.FakeDC(*hostport(a.dc_listen), mode="echo").start()
    try:
        c = tgclient.FakeTLSClient(hostport(a.proxy), tgclient.make_secret(host, key),
                                   dc=a.dc, timeout=10.0)
        c.connect()
        total = 0
        for size in (1, 100, 4096, 70000):
            data = os.urandom(size)
            c.send(data)
            back = c.recv_exact(size)
            if back != data:
                print("FAIL: echoed data differs (size %d)" % size)
                return 1
            total += size
        trips = 0
        deadline = time.monotonic() + a.hold
        while time.monotonic() < deadline:
            data = os.urandom(1024)
            c.send(data)
            if c.recv_exact(len(data)) != data:
                print("FAIL: echoed data differs after %d round trips of the hold" % trips)
                return 1
            trips += 1
            total += len(data)
            time.sleep(0.2)
        c.close()
        seen = dc.wait_for(lambda conns: [x for x in conns if x.dc is not None], 5.0)
        if not seen:
            print("FAIL: the fake datacenter saw no obfuscated2 connection")
            return 1
        if abs(seen[0].dc) != a.dc:
            print("FAIL: the fake datacenter saw DC %r, want %d" % (seen[0].dc, a.dc))
            return 1
        err = check_hybrid(hostport(a.proxy), key, host) if a.check_hybrid else None
        if err:
            print("FAIL: " + err)
            return 1
        held = " (relay held %.0f s, %d round trips)" % (a.hold, trips) if a.hold else ""
        hybrid = "; site and FakeTLS answer pick X25519MLKEM768" if a.check_hybrid else ""
        print("round-tripped %d bytes through DC %d%s%s" % (total, a.dc, held, hybrid))
        return 0
    except Exception as e:  # report any failure as one line
        print("FAIL: %s: %s" % (type(e).__name__, e))
        return 1
    finally:
        dc.stop()


if __name__ == "__main__":
    sys.exit(main())
