"""What a prober sees on one connection, and how two sightings compare.

A Conn records every byte received, when the first one came, and how the
connection ended: FIN (recv() == b""), RST (ECONNRESET on recv or send) or
still open when the watch ends. A send that fails stops the script; `sent`
counts the bytes the server side accepted until then (a prober that drips
one byte at a time sees exactly when the site stopped taking them).
"""

import errno
import re
import select
import socket
import ssl
import struct
import threading
import time

# Timing tolerance: two times agree when they differ by at most
# max(TIME_ABS, TIME_REL * the larger one). Loopback round trips are well
# under a millisecond; 50 ms absorbs scheduling noise on a shared 2-core
# machine, 10 % covers the long timers (60 s +- 6 s).
TIME_ABS = 0.050
TIME_REL = 0.10

# The site signs its key exchange with ECDSA (Caddy's internal CA issues
# P-256 keys): the DER signature is 70 to 72 bytes long, a little less once
# in a few hundred, from one handshake to the next on the same server. So
# exactly one record of a handshake flight (TLS 1.3's encrypted
# CertificateVerify, TLS 1.2's ServerKeyExchange) may differ in length, by
# at most SIG_SLACK bytes. Everything else must match exactly.
SIG_SLACK = 4

RAW_KEEP = 1 << 20   # raw bytes kept per connection (bulk transfers count the rest)

# Every connection comes from its own loopback address (127.1.0.1, 127.1.0.2,
# ...), so what the site logs "from ADDR:PORT" belongs to exactly one
# connection even when the kernel reuses a source port; through tgfront the
# address reaches Caddy in the PROXY header.
_next_src = [0]
_src_lock = threading.Lock()


def next_source():
    with _src_lock:
        _next_src[0] += 1
        n = _next_src[0]
    return "127.%d.%d.%d" % (1 + (n >> 16) % 254, (n >> 8) & 255, 1 + (n & 255) % 254)


def times_agree(a, b):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= max(TIME_ABS, TIME_REL * max(a, b))


class Conn:
    def __init__(self, port, host="127.0.0.1", nodelay=True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((next_source(), 0))
        if nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.connect((host, port))
        self.t0 = time.monotonic()
        self.laddr = self.sock.getsockname()[:2]
        self.lport = self.laddr[1]
        self.data = bytearray()
        self.total = 0
        self.t_first = None
        self.end = None          # "FIN" / "RST" / None (open)
        self.t_end = None
        self.after_fin = None    # what a send after the site's FIN got
        self.sent = 0
        self.sent_at_end = None  # bytes sent when the end was seen
        self.send_error = None
        self.closed = False

    def now(self):
        return time.monotonic() - self.t0

    def _got(self, chunk):
        if self.t_first is None:
            self.t_first = self.now()
        self.total += len(chunk)
        if len(self.data) < RAW_KEEP:
            self.data += chunk[:RAW_KEEP - len(self.data)]

    def _ended(self, how):
        if self.end is None:
            self.end = how
            self.t_end = self.now()
            self.sent_at_end = self.sent

    def read_some(self, timeout):
        """Waits up to timeout for bytes; returns them (b"" when none came or
        the connection ended)."""
        if self.end is not None or self.closed:
            return b""
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not r:
            return b""
        try:
            chunk = self.sock.recv(1 << 18)
        except ConnectionResetError:
            self._ended("RST")
            return b""
        if not chunk:
            self._ended("FIN")
            return b""
        self._got(chunk)
        return chunk

    def pump(self, duration):
        """Reads whatever arrives for duration seconds (or until the end)."""
        deadline = time.monotonic() + duration
        while self.end is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.read_some(left)

    def send(self, data):
        """False (and send_error set) once the site stops accepting bytes."""
        if self.send_error is not None:
            return False
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            self.send_error = errno.errorcode.get(e.errno, str(e.errno))
            if isinstance(e, ConnectionResetError):
                self._ended("RST")
            return False
        self.sent += len(data)
        return True

    def drip(self, data, gap, until):
        """One byte per write, reading in between, until the site refuses or
        `until` seconds after connect."""
        for i in range(len(data)):
            if self.now() >= until or not self.send(data[i:i + 1]):
                return False
            self.pump(gap)
        return True

    def watch(self, until):
        """Reads until the connection ends or `until` seconds after connect."""
        while self.end is None and self.now() < until:
            self.read_some(until - self.now())

    def poke_after_fin(self, data=b"x" * 64, wait=0.5):
        """After the site's FIN: send more and see whether a RST comes back
        (a closed socket answers with one; a relay must pass it on)."""
        if self.end != "FIN":
            return
        t = self.now()
        ok = self.send(data)
        deadline = time.monotonic() + wait
        got = "none"
        while time.monotonic() < deadline:
            try:
                self.sock.send(b"y")
            except (BrokenPipeError, ConnectionResetError):
                got = "RST"
                break
            time.sleep(0.01)
        self.after_fin = "%s%s" % ("sent, " if ok else "send refused, ", got)
        self.t_after_fin = self.now() - t

    def shut_wr(self):
        self.sock.shutdown(socket.SHUT_WR)

    def reset(self):
        """Close with RST (SO_LINGER 0)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
        self.closed = True

    def close(self):
        if not self.closed:
            self.sock.close()
            self.closed = True

    def obs(self, **extra):
        o = Obs(bytes(self.data), self.end, self.t_first, self.t_end, self.sent,
                self.send_error, self.after_fin, total=self.total)
        if self.send_error and self.sent_at_end is not None:
            o.taken_after_end = self.sent - self.sent_at_end
        o.extra.update(extra)
        o.laddr = self.laddr
        return o


class Obs:
    def __init__(self, data, end, t_first, t_end, sent=0, send_error=None, after_fin=None,
                 total=None, parts=None):
        self.data = data
        self.end = end
        self.t_first = t_first
        self.t_end = t_end
        self.sent = sent
        self.send_error = send_error
        self.after_fin = after_fin
        self.total = len(data) if total is None else total
        self.extra = {}          # compared exactly (decrypted HTTP, site's log...)
        self.parts = parts or []  # sub-observations (several connections)
        self.faketls = False     # the answer authenticates as a FakeTLS ServerHello
        self.laddr = None        # the client's (address, port): the site logs it
        self.duration = None     # bulk transfers
        self.keepalive = None    # the server's TCP timer (keep-alive probes)
        # Bytes the site still took after its FIN/RST reached us, until a
        # send failed: a closed socket takes one more (and answers it with a
        # RST); a relay that notices the RST late takes more.
        self.taken_after_end = None

    def summary(self):
        if self.parts:
            return " | ".join(p.summary() for p in self.parts)
        s = "%s %s" % (describe(self.data, self.total), self.end or "open")
        if self.t_end is not None:
            s += "@%.2fs" % self.t_end
        elif self.t_first is not None:
            s += " (1st@%.3fs)" % self.t_first
        if self.send_error:
            s += " sent=%d(%s" % (self.sent, self.send_error)
            if self.taken_after_end is not None:
                s += ", %d after %s" % (self.taken_after_end, self.end)
            s += ")"
        if self.after_fin:
            s += " after-FIN:%s" % self.after_fin
        if self.faketls:
            s += " FAKETLS"
        if self.keepalive is not None and self.keepalive[0]:
            s += " timer %s %s" % (self.keepalive[0], self.keepalive[1])
        if "note" in self.extra:
            s = self.extra["note"]
        if self.duration is not None:
            s += " in %.2fs" % self.duration
        return s


# ------------------------------------------------------------------ TLS shape

def parse_records(data):
    """[(type, version, length, payload)], then leftover bytes."""
    recs = []
    i = 0
    while i + 5 <= len(data):
        typ = data[i]
        if typ not in (20, 21, 22, 23) or data[i + 1] != 3:
            break
        ln = struct.unpack(">H", data[i + 3:i + 5])[0]
        recs.append((typ, data[i + 1:i + 3].hex(), ln, data[i + 5:i + 5 + ln]))
        i += 5 + ln
    return recs, data[i:] if i < len(data) else b""


def _server_hello_shape(body):
    """Fields of a ServerHello that do not vary per handshake."""
    try:
        ver = body[0:2].hex()
        sid_len = body[34]
        p = 35 + sid_len
        cipher = body[p:p + 2].hex()
        comp = body[p + 2]
        ext_len = struct.unpack(">H", body[p + 3:p + 5])[0]
        exts = []
        q = p + 5
        end = q + ext_len
        while q + 4 <= end:
            et, el = struct.unpack(">HH", body[q:q + 4])
            val = body[q + 4:q + 4 + el]
            # supported_versions' value is fixed; key_share's group too.
            fixed = val.hex() if et == 0x002b else (val[:2].hex() if et == 0x0033 else "")
            exts.append("%04x/%d%s" % (et, el, ("=" + fixed) if fixed else ""))
            q += 4 + el
        return "SH v%s sid%d %s c%d [%s]" % (ver, sid_len, cipher, comp, " ".join(exts))
    except (IndexError, struct.error):
        return "SH malformed %d" % len(body)


def record_shapes(data):
    """One comparable tuple per record, a flag for the record that may carry
    an ECDSA signature, and the leftover (non-record) bytes."""
    recs, rest = parse_records(data)
    out = []
    encrypted = False
    for typ, ver, ln, payload in recs:
        partial = len(payload) < ln
        desc = None
        sig = False
        if typ == 20:
            encrypted = True
            desc = payload.hex()
        elif typ == 21 and not encrypted:
            desc = "alert " + payload.hex()
        elif typ == 22 and not encrypted:
            msgs = []
            p = 0
            while p + 4 <= len(payload):
                mt = payload[p]
                ml = int.from_bytes(payload[p + 1:p + 4], "big")
                body = payload[p + 4:p + 4 + ml]
                if mt == 2:
                    msgs.append(_server_hello_shape(body))
                    if body[2:34] == bytes.fromhex(
                            "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"):
                        msgs[-1] += " HRR"
                elif mt == 12:
                    # ServerKeyExchange: its signature's length varies
                    msgs.append("hs12/sig")
                    sig = True
                else:
                    msgs.append("hs%d/%d" % (mt, ml))
                p += 4 + ml
            desc = ",".join(msgs)
        elif typ == 23:
            # Encrypted: only the length is visible. In the server's first
            # flight the record carrying CertificateVerify varies.
            sig = True
        out.append(((typ, ver, desc, partial), ln, sig))
    return out, rest


def mask_http(data):
    return re.sub(rb"(?im)^date: [^\r\n]*", b"Date: <masked>", data)


def looks_tls(data):
    return len(data) >= 5 and data[0] in (20, 21, 22, 23) and data[1] == 3


def compare_bytes(a, b):
    """None when a prober cannot tell the two byte streams apart (beyond
    per-handshake randomness), else a short reason."""
    if not a and not b:
        return None
    if looks_tls(a) or looks_tls(b):
        sa, ra = record_shapes(a)
        sb, rb_ = record_shapes(b)
        if len(sa) != len(sb):
            return "%d vs %d TLS records (%s / %s)" % (len(sa), len(sb), describe(a), describe(b))
        slack_used = False
        for k, ((ka, la, sig_a), (kb, lb, sig_b)) in enumerate(zip(sa, sb)):
            if ka != kb:
                return "record %d: %s vs %s" % (k, ka, kb)
            if la != lb:
                if sig_a and abs(la - lb) <= SIG_SLACK and not slack_used:
                    slack_used = True
                    continue
                return "record %d (type %d): length %d vs %d" % (k, ka[0], la, lb)
        if mask_http(ra) != mask_http(rb_):
            return "bytes after the TLS records differ (%d vs %d)" % (len(ra), len(rb_))
        return None
    ma, mb = mask_http(a), mask_http(b)
    if ma != mb:
        return "bytes differ: %r vs %r" % (ma[:60], mb[:60])
    return None


def describe(data, total=None):
    """Short text for the table."""
    total = len(data) if total is None else total
    if not data:
        return "nothing"
    if looks_tls(data):
        recs, rest = parse_records(data)
        names = {20: "CCS", 21: "Alert", 22: "HS", 23: "App"}
        parts = []
        for typ, _v, ln, payload in recs[:8]:
            if typ == 21 and len(payload) == 2 and not any(r[0] == 20 for r in recs):
                parts.append("Alert(%d)" % payload[1])
            else:
                parts.append("%s%d" % (names.get(typ, "?"), ln))
        if len(recs) > 8:
            parts.append("+%d" % (len(recs) - 8))
        s = " ".join(parts)
        if rest:
            s += " +%dB" % len(rest)
        if total > len(data):
            s += " (%d B total)" % total
        return s
    first = data.split(b"\r\n", 1)[0][:40]
    return "%r %dB" % (first.decode("latin-1"), total)


def compare(ref, got):
    """Differences a prober could see between the reference and tgfront, as a
    list of short strings (empty: indistinguishable)."""
    diffs = []
    if ref.parts or got.parts:
        if len(ref.parts) != len(got.parts):
            return ["%d vs %d connections" % (len(ref.parts), len(got.parts))]
        for i, (a, b) in enumerate(zip(ref.parts, got.parts)):
            diffs += ["conn %d: %s" % (i, d) for d in compare(a, b)]
        return diffs
    if got.faketls and not ref.faketls:
        diffs.append("answered with a FakeTLS ServerHello")
    d = compare_bytes(ref.data, got.data)
    if d:
        diffs.append(d)
    if ref.total != got.total and not (looks_tls(ref.data) and abs(ref.total - got.total) <= SIG_SLACK):
        diffs.append("%d vs %d bytes" % (ref.total, got.total))
    if ref.end != got.end:
        diffs.append("end %s vs %s" % (ref.end or "open", got.end or "open"))
    elif not times_agree(ref.t_end, got.t_end):
        diffs.append("closed at %.3fs vs %.3fs" % (ref.t_end, got.t_end))
    if (ref.t_first is None) != (got.t_first is None) or not times_agree(ref.t_first, got.t_first):
        diffs.append("first byte at %s vs %s" % (fmt_t(ref.t_first), fmt_t(got.t_first)))
    # How many bytes went out in total follows from the close time (compared
    # above); what the site still accepts after closing does not.
    if ref.send_error != got.send_error or ref.taken_after_end != got.taken_after_end:
        diffs.append("after its %s the site took %s vs %s" % (
            ref.end or got.end or "end", _taken(ref), _taken(got)))
    if ref.after_fin != got.after_fin:
        diffs.append("after FIN: %s vs %s" % (ref.after_fin, got.after_fin))
    for k in sorted(set(ref.extra) | set(got.extra)):
        a, b = ref.extra.get(k), got.extra.get(k)
        if a != b:
            diffs.append("%s: %s vs %s" % (k, short(a), short(b)))
    return diffs


def _taken(o):
    if o.send_error is None:
        return "every byte (%d sent, no send failed)" % o.sent
    if o.taken_after_end is None:
        return "%d B, then %s" % (o.sent, o.send_error)
    return "%d more B, then %s" % (o.taken_after_end, o.send_error)


def fmt_t(t):
    return "-" if t is None else "%.3fs" % t


def short(v, n=70):
    s = repr(v)
    return s if len(s) <= n else s[:n] + "..."


# ------------------------------------------------------------------ TLS client

class TLSSession:
    """Python's TLS over a Conn through memory BIOs, so every raw byte the
    site sends is recorded while the session is decrypted."""

    def __init__(self, conn, ctx, sni):
        self.conn = conn
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname=sni)
        self.flight_len = None

    def _flush(self):
        data = self.out.read()
        if data:
            self.conn.send(data)

    def _feed(self, timeout):
        chunk = self.conn.read_some(timeout)
        if not chunk:
            if self.conn.end is not None:
                self.inc.write_eof()
                return False
            raise TimeoutError("site sent nothing for %ss" % timeout)
        self.inc.write(chunk)
        return True

    def handshake(self, timeout=10.0):
        while True:
            try:
                self.obj.do_handshake()
                self._flush()
                self.flight_len = len(self.conn.data)
                return
            except ssl.SSLWantReadError:
                self._flush()
                if not self._feed(timeout):
                    raise ConnectionError("site closed during the handshake (%s)" % self.conn.end)

    def write(self, data):
        view = memoryview(data)
        for i in range(0, len(view), 1 << 16):
            self.obj.write(view[i:i + (1 << 16)])
            self._flush()
            if self.conn.send_error:
                raise ConnectionError("send failed: %s" % self.conn.send_error)

    def read(self, timeout=10.0):
        """Some decrypted bytes; b"" at the end of the stream."""
        while True:
            try:
                return self.obj.read(1 << 17)
            except ssl.SSLWantReadError:
                if not self._feed(timeout):
                    return b""
            except ssl.SSLZeroReturnError:
                return b""
            except ssl.SSLError as e:
                raise ConnectionError("TLS error: %s" % e)

    def read_http_response(self, timeout=10.0, sink=None):
        """(masked head, body or its (length, sha256) when sink is given)."""
        import hashlib
        buf = bytearray()
        while b"\r\n\r\n" not in buf:
            chunk = self.read(timeout)
            if not chunk:
                raise ConnectionError("end of stream inside the response head: %r" % bytes(buf[:80]))
            buf += chunk
        head, rest = bytes(buf).split(b"\r\n\r\n", 1)
        m = re.search(rb"(?im)^content-length: *(\d+)", head)
        n = int(m.group(1)) if m else 0
        h = hashlib.sha256()
        got = len(rest)
        h.update(rest)
        body = bytearray(rest) if sink is None else None
        while got < n:
            chunk = self.read(timeout)
            if not chunk:
                break
            got += len(chunk)
            h.update(chunk)
            if body is not None:
                body += chunk
        head = mask_http(head).decode("latin-1")
        if sink is not None:
            return head, (got, h.hexdigest())
        return head, bytes(body)
