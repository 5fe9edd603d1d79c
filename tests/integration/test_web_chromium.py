"""The bridge page in a real browser: headless Chromium (Debian's package)
loads https://example.com/?bridge=CAP#android=NONCE through tgfront:443 ->
Caddy -> tgfront's WEB listener, with an emulated TelegramWebProxy object
injected before the page runs, and carries MTProto to the fake DC.

The emulated object follows Telegram Desktop's injected script
(web_proxy_webview.cpp, webproxy-facts.md section 2.3): postMessage sends
'b'+base64 for an ArrayBuffer, 'c'+text for a string, 'f' otherwise;
native delivery is receive(seq, base64) / receiveControl(seq, json), each
acknowledged with 'a'+seq once the page's receiver returned, 'f' if it
threw; 'h' on install. Its native side is this test (over a DevTools
binding), which plays tdesktop's transport with webclient.py's streams:
one message in flight (stop-and-wait on the ack), HELLO right after a valid
init, the first binary message from the page must be WELCOME alone.

Chromium is driven over the DevTools protocol on a pipe
(--remote-debugging-pipe: JSON messages separated by NUL on fds 3/4)."""

import base64
import json
import os
import shutil
import struct
import subprocess
import time

import pytest

import tgclient
import webclient as wc
from conftest import SECRET_HOST
from test_web import dd_secret, key16, req_pq_multi_packet
from test_web_caddy import Stack

EMULATOR = r"""
(function () {
  var recv = null;
  function b64(buf) {
    var u = new Uint8Array(buf), s = '';
    for (var i = 0; i < u.length; i += 8192)
      s += String.fromCharCode.apply(null, u.subarray(i, i + 8192));
    return btoa(s);
  }
  var obj = {
    postMessage: function (v) {
      if (v instanceof ArrayBuffer) tgNative('b' + b64(v));
      else if (typeof v === 'string') tgNative('c' + v);
      else tgNative('f');
    }
  };
  Object.defineProperty(obj, 'onmessage', {
    get: function () { return recv; },
    set: function (f) { recv = f; }
  });
  Object.freeze(obj);
  Object.defineProperty(window, 'TelegramWebProxy', { value: obj, configurable: false,
                                                      writable: false });
  window.__tgReceive = function (seq, data) {
    try {
      var bin = atob(data), u = new Uint8Array(bin.length);
      for (var i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
      if (!recv) throw new Error('no receiver');
      recv({ data: u.buffer });
      tgNative('a' + seq);
    } catch (e) { tgNative('f'); }
  };
  window.__tgReceiveControl = function (seq, json) {
    try { if (!recv) throw new Error('no receiver'); recv({ data: json }); tgNative('a' + seq); }
    catch (e) { tgNative('f'); }
  };
  tgNative('h');
})();
"""


def chromium_bin():
    for c in (os.environ.get("CHROMIUM_BIN"), shutil.which("chromium"),
              shutil.which("chromium-browser")):
        if c and os.access(c, os.X_OK):
            return c
    return None


class CDP:
    """DevTools protocol over --remote-debugging-pipe."""

    def __init__(self, binary, user_dir, extra=()):
        r_cmd, w_cmd = os.pipe()     # we write commands, chromium reads fd 3
        r_evt, w_evt = os.pipe()     # chromium writes fd 4, we read

        def fds():
            os.dup2(r_cmd, 3)
            os.dup2(w_evt, 4)
        self.log = open(os.path.join(user_dir, "chromium.log"), "wb")
        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--remote-debugging-pipe", "--user-data-dir=" + user_dir,
             "--no-first-run", "--disable-extensions", "--disable-background-networking",
             "--host-resolver-rules=MAP %s 127.0.0.1" % SECRET_HOST,
             "--ignore-certificate-errors", *extra, "about:blank"],
            preexec_fn=fds, close_fds=False, stdin=subprocess.DEVNULL,
            stdout=self.log, stderr=self.log)
        os.close(r_cmd)
        os.close(w_evt)
        self.w = w_cmd
        self.r = os.fdopen(r_evt, "rb", buffering=0)
        self.buf = b""
        self.next_id = 1
        self.events = []

    def _read_one(self, timeout):
        import select
        while b"\0" not in self.buf:
            rl, _, _ = select.select([self.r], [], [], timeout)
            if not rl:
                raise TimeoutError("no DevTools message in %ss" % timeout)
            d = os.read(self.r.fileno(), 1 << 20)
            if not d:
                raise EOFError("chromium closed the DevTools pipe")
            self.buf += d
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    # The waits below end when their answer comes; they are long because
    # Chromium's start and page loads take seconds on a busy machine.
    def send(self, method, params=None, session=None, timeout=60):
        mid = self.next_id
        self.next_id += 1
        m = {"id": mid, "method": method, "params": params or {}}
        if session:
            m["sessionId"] = session
        os.write(self.w, json.dumps(m).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            r = self._read_one(max(0.1, deadline - time.time()))
            if r.get("id") == mid:
                if "error" in r:
                    raise RuntimeError("%s: %s" % (method, r["error"]))
                return r.get("result", {})
            self.events.append(r)

    def event(self, timeout):
        if self.events:
            return self.events.pop(0)
        return self._read_one(timeout)

    def close(self):
        try:
            os.write(self.w, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            self.proc.wait(10)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class NativeSide:
    """tdesktop's side of the WebView boundary, over a CDP binding."""

    def __init__(self, cdp, session, nonce):
        self.cdp, self.session, self.nonce = cdp, session, nonce
        self.seq = 0
        self.inbox = []            # binary messages from the page
        self.controls = []
        self.init_seen = False
        self.hello_sent = False
        self.welcomed = False
        self.failures = []
        self.console = []

    def _handle(self, ev):
        m, p = ev.get("method"), ev.get("params", {})
        if m == "Runtime.bindingCalled" and p.get("name") == "tgNative":
            v = p["payload"]
            if v == "h" or v.startswith("a"):
                if v.startswith("a"):
                    self.acked = int(v[1:])
                return
            if v == "f":
                self.failures.append("page posted 'f'")
            elif v.startswith("c"):
                c = json.loads(v[1:])
                if c.get("t") == "tproxy-android-init":
                    if c.get("v") != 1 or c.get("nonce") != self.nonce or self.init_seen:
                        self.failures.append("bad init %r" % c)
                    self.init_seen = True
                else:
                    self.controls.append(c)
            elif v.startswith("b"):
                if not self.init_seen:
                    self.failures.append("binary before init")
                data = base64.b64decode(v[1:])
                if not self.welcomed:
                    if data != wc.WELCOME:
                        self.failures.append("first binary message is not WELCOME alone: %s"
                                             % data[:32].hex())
                    self.welcomed = True
                else:
                    self.inbox.append(data)
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.console.append(json.dumps(p.get("args"))[:300])
        elif m == "Runtime.exceptionThrown":
            self.console.append(json.dumps(p.get("exceptionDetails"))[:500])
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            self.console.append(p["entry"].get("text", "")[:300])

    def poll(self, timeout=0.2):
        try:
            self._handle(self.cdp.event(timeout))
        except TimeoutError:
            pass

    def deliver(self, data, timeout=30):
        """receive(seq, base64), then wait for its ack (one in flight)."""
        self.seq += 1
        self.acked = None
        expr = "__tgReceive(%d, %s)" % (self.seq, json.dumps(base64.b64encode(data).decode()))
        self.cdp.send("Runtime.evaluate", {"expression": expr}, self.session)
        deadline = time.time() + timeout
        while self.acked != self.seq:
            if time.time() > deadline:
                raise TimeoutError("no ack for message %d in %d s" % (self.seq, timeout))
            if self.failures:
                raise AssertionError(self.failures)
            self.poll()

    def wait(self, cond, timeout=60, what="condition"):
        deadline = time.time() + timeout
        while not cond():
            if self.failures:
                raise AssertionError(self.failures)
            if time.time() > deadline:
                raise TimeoutError("timed out waiting %d s for %s" % (timeout, what))
            self.poll()


class PageCarrier:
    """webclient.Mux's carrier interface on top of the page."""

    def __init__(self, native):
        self.n = native

    def send_frames(self, *frames):
        for f in frames:            # tdesktop posts one frame per message
            self.n.deliver(f)

    def recv_message(self):
        self.n.wait(lambda: self.n.inbox, what="a frame from the page")
        return self.n.inbox.pop(0)


@pytest.fixture(scope="module")
def chrome_stack(workdir, secret, fakedc, tmp_path_factory):
    if not chromium_bin():
        if os.environ.get("TGF_REQUIRE_WEB_DEPS"):
            pytest.fail("no chromium (apt-get install chromium)")
        pytest.skip("no chromium (apt-get install chromium)")
    st = Stack(workdir, secret, fakedc, tmp_path_factory.mktemp("caddy-chromium"),
               public_port=443)
    yield st
    st.stop()


def test_round_trip_in_chromium(chrome_stack, secret, fakedc, tmp_path):
    cdp = CDP(chromium_bin(), str(tmp_path))
    try:
        t = cdp.send("Target.createTarget", {"url": "about:blank"})
        sess = cdp.send("Target.attachToTarget", {"targetId": t["targetId"], "flatten": True})
        sid = sess["sessionId"]
        for m in ("Page.enable", "Runtime.enable", "Log.enable"):
            cdp.send(m, {}, sid)
        cdp.send("Runtime.addBinding", {"name": "tgNative"}, sid)
        cdp.send("Page.addScriptToEvaluateOnNewDocument", {"source": EMULATOR}, sid)
        nonce = wc.b64u(os.urandom(32))
        url = "https://%s/?bridge=%s#android=%s" % (
            SECRET_HOST, wc.capability(SECRET_HOST, dd_secret(secret)), nonce)
        native = NativeSide(cdp, sid, nonce)
        cdp.send("Page.navigate", {"url": url}, sid)
        native.wait(lambda: native.init_seen, what="the page's init message")
        native.deliver(wc.HELLO)
        native.wait(lambda: native.welcomed, what="WELCOME")

        mux = wc.Mux(PageCarrier(native))
        pkts = [req_pq_multi_packet() for _ in range(3)]
        ids = [mux.open(key16(secret), dc=2 + i, first_payload=p) for i, p in enumerate(pkts)]
        for s, p in zip(ids, pkts):
            assert mux.recv_exact(s, len(p)) == p
        blob = os.urandom(200000)
        mux.send(ids[1], blob)
        assert mux.recv_exact(ids[1], len(blob)) == blob
        conn = fakedc.conn_with_head(pkts[0][:24])
        assert conn is not None and conn.dc == 2
        # a moment for late console errors, then none may have appeared
        end = time.time() + 1
        while time.time() < end:
            native.poll(0.1)
        assert not native.failures, native.failures
        assert not native.console, "console errors:\n" + "\n".join(native.console)
        # the page put the URL back to the bare path (validSource allows it)
        loc = cdp.send("Runtime.evaluate", {"expression": "location.href"}, sid)
        assert loc["result"]["value"] == "https://%s/" % SECRET_HOST
        d = chrome_stack["daemon"]
        assert "carrier opened" in d.stderr()
    finally:
        cdp.close()


LOOPBACK_PAGE = """<!doctype html><html><head><meta charset="utf-8"></head><body>
<iframe id="f" src="%(bridge)s"></iframe>
<script>
var ch = new MessageChannel(), f = document.getElementById('f');
function b64(buf) {
  var u = new Uint8Array(buf), s = '';
  for (var i = 0; i < u.length; i += 8192) s += String.fromCharCode.apply(null, u.subarray(i, i + 8192));
  return btoa(s);
}
ch.port1.onmessage = function (e) {
  var d = e.data;
  if (d instanceof ArrayBuffer) tgNative('b' + b64(d)); else tgNative('c' + JSON.stringify(d));
};
f.onload = function () {
  f.contentWindow.postMessage({t: 'tproxy-init', v: 1}, '%(origin)s', [ch.port2]);
  tgNative('i');
};
window.__tgSend = function (s) {
  var bin = atob(s), u = new Uint8Array(bin.length);
  for (var i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
  ch.port1.postMessage(u.buffer, [u.buffer]);
};
</script></body></html>
"""


class FallbackNative(NativeSide):
    """The system-browser fallback: the client's loopback page frames the
    bridge and talks to it over a MessagePort (whole batches, no acks)."""

    def _handle(self, ev):
        if ev.get("method") == "Runtime.bindingCalled" and ev["params"].get("payload") == "i":
            self.init_seen = True
            return
        NativeSide._handle(self, ev)

    def deliver(self, data, timeout=10):
        expr = "__tgSend(%s)" % json.dumps(base64.b64encode(data).decode())
        self.cdp.send("Runtime.evaluate", {"expression": expr}, self.session)


class BatchCarrier(PageCarrier):
    def send_frames(self, *frames):
        self.n.deliver(b"".join(frames))   # a whole batch in one message


def test_loopback_fallback_in_chromium(chrome_stack, secret, fakedc, tmp_path):
    import http.server
    import threading as th
    from conftest import free_port
    url = "https://%s/?bridge=%s" % (SECRET_HOST, wc.capability(SECRET_HOST, dd_secret(secret)))
    page = (LOOPBACK_PAGE % {"bridge": url, "origin": "https://" + SECRET_HOST}).encode()

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *a):
            pass
    port = free_port()
    httpd = http.server.HTTPServer(("127.0.0.1", port), H)
    th.Thread(target=httpd.serve_forever, daemon=True).start()
    cdp = CDP(chromium_bin(), str(tmp_path))
    try:
        t = cdp.send("Target.createTarget", {"url": "about:blank"})
        sid = cdp.send("Target.attachToTarget", {"targetId": t["targetId"],
                                                 "flatten": True})["sessionId"]
        for m in ("Page.enable", "Runtime.enable", "Log.enable"):
            cdp.send(m, {}, sid)
        cdp.send("Runtime.addBinding", {"name": "tgNative"}, sid)
        native = FallbackNative(cdp, sid, None)
        cdp.send("Page.navigate", {"url": "http://127.0.0.1:%d/" % port}, sid)
        native.wait(lambda: native.init_seen, what="the bridge frame's load")
        native.deliver(wc.HELLO)
        native.wait(lambda: native.welcomed, what="WELCOME over the port")
        mux = wc.Mux(BatchCarrier(native))
        pkts = [req_pq_multi_packet() for _ in range(2)]
        ids = [mux.open(key16(secret), dc=2, first_payload=p) for p in pkts]
        for s, p in zip(ids, pkts):
            assert mux.recv_exact(s, len(p)) == p
        end = time.time() + 1
        while time.time() < end:
            native.poll(0.1)
        assert not native.failures, native.failures
        assert not native.console, "console errors:\n" + "\n".join(native.console)
    finally:
        cdp.close()
        httpd.shutdown()
