"""The carrier's upload path at its read-buffer edges: bytes that arrive in
the upgrade request's packet (kept when the carrier's read buffer grows
past the HTTP head's), and 64 KiB DATA frames cut at every kind of split
point (inside the WebSocket header, the mask, the frame header, the
payload, between frames) in TCP segments around the 64 KiB read size."""

import socket
import time

import webclient as wc
from conftest import SECRET_HOST
from helpers import rand
from test_web import dd_secret, key16, web  # noqa: F401 (web: the fixture)


class _Capture:
    """Stands in for the socket while frames are built ahead of time."""

    def __init__(self):
        self.data = b""

    def sendall(self, b):
        self.data += b


class _FirstSendCarries:
    """A socket whose first sendall (the upgrade head) carries extra bytes."""

    def __init__(self, sock, extra):
        self.sock, self.extra = sock, extra

    def sendall(self, b):
        self.sock.sendall(b + self.extra)
        self.extra = b""

    def __getattr__(self, name):
        return getattr(self.sock, name)


def _carrier_with_early_frames(d, secret_bytes):
    """HELLO, OPEN and the stream's first DATA sent with the upgrade head
    in one write. Returns (carrier, mux)."""
    cap = wc.capability(SECRET_HOST, secret_bytes)
    s1 = wc.connect(d.web_addr)
    page = wc.http_get(s1, SECRET_HOST, "/?bridge=" + cap)
    s1.close()
    path, token = wc.page_params(page.body)
    pre = wc.Carrier.__new__(wc.Carrier)
    pre.sock = _Capture()
    pre.send_frames(wc.HELLO)
    mux = wc.Mux(pre)
    return pre, mux, path, token


def test_frames_in_the_upgrade_packet_then_uploads_split_everywhere(web, secret, fakedc):
    pre, mux, path, token = _carrier_with_early_frames(web, dd_secret(secret))
    first = b"early" + rand(3000)
    sid = mux.open(key16(secret), dc=2, first_payload=first)
    s2 = wc.connect(web.web_addr)
    s2.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    car = wc.Carrier(_FirstSendCarries(s2, pre.sock.data), SECRET_HOST, path, token,
                     origin="https://" + SECRET_HOST)
    assert car.response.status == 101 and car.accept_ok, car.response.raw_head
    mux.c = car
    assert car.recv_message() == wc.WELCOME
    assert mux.recv_exact(sid, len(first)) == first   # the fake DC echoes

    # Whole 64 KiB DATA frames, built ahead, then written in cuts that land
    # on every boundary kind and straddle the relay's 64 KiB reads.
    payload = rand(4 * 65536 + 777)
    cap = _Capture()
    mux.c = wc.Carrier.__new__(wc.Carrier)
    mux.c.sock = cap
    mux.send(sid, payload)
    mux.c = car
    wire = cap.data
    cuts = [1, 1, 1, 3, 2, 4, 8, 65500, 65536, 65537, 70000, 1, 13, 131072, 9, 4096]
    o, i = 0, 0
    while o < len(wire):
        n = cuts[i % len(cuts)]
        s2.sendall(wire[o:o + n])
        o += n
        i += 1
        time.sleep(0.002)
    assert mux.recv_exact(sid, len(payload)) == payload
    s2.close()
