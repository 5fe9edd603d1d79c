"""Small helpers shared by the integration tests."""

import os
import socket
import threading
import time


_REFUSING = []


def refused_addr(host="127.0.0.1"):
    """An address whose connects are refused: a socket bound there that
    never listens (a SYN finds no listener: RST). It stays bound for the
    session, so no bind(0) can hand the port out meanwhile (a closed probe
    socket's port could become the next daemon's, about once in 14,000)."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, 0))
    _REFUSING.append(s)
    return s.getsockname()[:2]


def raw_connect(addr, timeout=5.0):
    fam = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(addr)
    return s


def backend_conn_for(backend, sock, timeout=5.0):
    """The backend connection whose PROXY header names sock's local port."""
    lport = sock.getsockname()[1]
    return backend.wait_conn_with(lambda c: c.proxy is not None and c.proxy.sport == lport,
                                  timeout)


def wait_data(backend, conn, want, timeout=5.0):
    """Waits until conn.data has at least len(want) bytes; returns them."""
    backend.wait_for(lambda _: len(conn.data) >= len(want) or conn.done, timeout)
    return bytes(conn.data)


def check_proxy_header(conn, client_sock, backend, family="TCP4"):
    h = conn.proxy
    assert h is not None, "no PROXY v2 header (error: %s)" % conn.proxy_error
    assert h.version_cmd == 0x21, "PROXY ver/cmd 0x%02x, want 0x21" % h.version_cmd
    assert h.family == family, "PROXY family %s, want %s" % (h.family, family)
    chost, cport = client_sock.getsockname()[:2]
    assert (h.src, h.sport) == (chost, cport), "PROXY src %s:%s, client is %s:%s" % (
        h.src, h.sport, chost, cport)
    assert (h.dst, h.dport) == (backend.host, backend.port), \
        "PROXY dst %s:%s, backend is %s:%s" % (h.dst, h.dport, backend.host, backend.port)


def assert_fronted(backend, sock, sent, family="TCP4", timeout=5.0):
    """sent reached the backend byte for byte after a correct PROXY header."""
    conn = backend_conn_for(backend, sock, timeout)
    assert conn is not None, "no fronted connection reached the backend"
    check_proxy_header(conn, sock, backend, family)
    got = wait_data(backend, conn, sent, timeout)
    assert got == sent, "backend got %d bytes, client sent %d; first diff at %s" % (
        len(got), len(sent), first_diff(got, sent))
    return conn


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def recv_n(sock, n, timeout=5.0):
    sock.settimeout(timeout)
    buf = bytearray()
    while len(buf) < n:
        c = sock.recv(n - len(buf))
        if not c:
            break
        buf += c
    return bytes(buf)


def sees_eof(sock, timeout=5.0):
    """True if the peer closes (FIN or RST) within timeout; discards data."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def join_all(threads, timeout, what="thread"):
    """Joins every thread within one shared deadline of timeout seconds and
    fails naming the ones still running: a join that times out returns
    silently, and a test that goes on would pass with work unfinished."""
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = [t.name for t in threads if t.is_alive()]
    assert not alive, "%d %s(s) still running after %.1f s: %s" % (
        len(alive), what, timeout, ", ".join(alive[:5]))


def join_or_fail(t, timeout, what="thread"):
    join_all([t], timeout, what)


def round_trip(client, data, chunk=None):
    """Sends data through the relay (echoed by the fake DC) while reading the
    echo in this thread; returns the bytes read back."""
    err = []

    def sender():
        try:
            step = chunk or len(data) or 1
            for i in range(0, len(data), step):
                client.send(data[i:i + step])
        except Exception as e:  # surfaced by the caller
            err.append(e)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    got = client.recv_exact(len(data)) if data else b""
    join_or_fail(t, 10, "round_trip sender")
    if err:
        raise err[0]
    return got


def rand(n):
    return os.urandom(n)


# ---- how a FakeTLS session ends on the wire ----

CLOSE_NOTIFY = b"\x17\x03\x03\x00\x13"   # application data, 19 bytes


def is_close_notify(rec, plain):
    """A 24-byte record whose payload, on the client's stream, is the start
    of a packet that never completes (7f LL LL 00: what tgfront's
    close_notify decrypts to for the MTProto transport)."""
    return (len(rec) == 24 and rec[:5] == CLOSE_NOTIFY and len(plain) == 19 and
            plain[0] == 0x7F and plain[1] >= 64 and plain[2:4] == b"\x00\x00")


def assert_one_close_notify(recs, what):
    assert len(recs) == 1, "%s: %d records before the FIN, want one close_notify: %s" % (
        what, len(recs), [r.hex() for _, r, _ in recs])
    _, rec, plain = recs[0]
    assert is_close_notify(rec, plain), "%s: not a close_notify: %s (decrypted %s)" % (
        what, rec.hex(), plain.hex())
