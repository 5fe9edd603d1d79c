"""Issue 7: the FakeTLS answer looks like the site's own TLS answer.

One stack of its own (stock Caddy as the reference, tgfront in front of the
same site with the image's GODEBUG), tgfront checking the site every second:

  test_answer_matches_site   1000 handshakes per hello kind through tgfront
                             (parsed exactly as tdlib does) against 1000 with
                             the stock Caddy: cipher, extension order, group
                             and share length identical; tgfront's flight
                             sizes inside Caddy's range; X25519 keys on the
                             curve; random fields never constant; ML-KEM
                             ciphertexts with Compress_10's bias, as Caddy's.
  test_sizes_follow_cert     the fronted Caddy gets another certificate (an
                             RSA-2048 leaf under two intermediates); the
                             answer's size follows within a few seconds.

Both size distributions are printed and written to
out/test-logs/site-profile.txt."""

import collections
import datetime
import os
import re
import socket
import time
import urllib.request

import pytest

import stack
import tdlib_tls

N = int(os.environ.get("SITE_PROFILE_N", "1000"))   # per hello kind and side
LOG = os.path.join(stack.ROOT, "out", "test-logs", "site-profile.txt")


def log(text):
    print(text)
    os.makedirs(os.path.dirname(LOG), exist_ok=True)
    with open(LOG, "a") as f:
        f.write(text + "\n")


class ProfileStack(stack.Stack):
    def _write_big(self):   # this suite needs no large file
        with open(self.big_path, "wb") as f:
            f.write(b"x")
        self.big_sha = ""

    def tgfront_config(self, port, backend_port):
        path = super().tgfront_config(port, backend_port)
        self.stats_port = stack.free_port()
        with open(path, "a") as f:
            f.write('\n[site-profile]\ncheck = "1s"\n\n[stats.prometheus]\nenabled = true\n'
                    'bind-to = "127.0.0.1:%d"\n' % self.stats_port)
        return path

    def metrics(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/" % self.stats_port, timeout=5) as r:
            return r.read().decode()


@pytest.fixture(scope="module")
def st():
    if os.path.exists(LOG):
        os.unlink(LOG)
    s = ProfileStack().start()
    try:
        wait_learned(s)
        yield s
    finally:
        codes = s.stop()
    text = s.tgfront.text()
    assert "AddressSanitizer" not in text and "runtime error:" not in text, text[-4000:]
    assert codes[s.tgfront.log] == 0, "tgfront exit status %s after SIGTERM" % codes[s.tgfront.log]


def wait_learned(s, timeout=90):
    # 90 s: the prober retries 2, 4, 8, 16, 32 s apart while the site is
    # not ready (Caddy issues its certificate after it listens).
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = s.metrics()
        if text.count('source="site"') == 2:
            return text
        time.sleep(0.2)
    raise AssertionError("tgfront learned no site profile within %d s:\n%s\n%s" % (
        timeout, s.metrics(), s.tgfront.text()[-3000:]))


def caddy_answer(port, shape, proxy=False, expect=None):
    with socket.create_connection(("127.0.0.1", port), 10) as c:
        if proxy:
            c.sendall(tdlib_tls.proxy_v2(c.getsockname(), c.getpeername()))
        c.sendall(tdlib_tls.build_hello(shape, stack.DOMAIN))
        sh, recs = tdlib_tls.read_flight(c, expect=expect)
    return sh, sum(5 + n for n in recs), recs


def flight_records(port, shape, proxy=False):
    """How many encrypted records the site's flight has: the most seen in a
    few reads that wait for silence (later reads stop at that count)."""
    return max(len(caddy_answer(port, shape, proxy)[2]) for _ in range(5))


def tgfront_answer(s, shape):
    key = s.secret[1:17]
    hello = tdlib_tls.build_hello(shape, stack.DOMAIN, key=key)
    with socket.create_connection(("127.0.0.1", s.tg_port), 10) as c:
        c.sendall(hello)
        ans = tdlib_tls.read_like_tdlib(c, hello, key)
    sh_len = 5 + int.from_bytes(ans[3:5], "big")
    sh = ans[:sh_len]
    app = ans[sh_len + 6:]
    return sh, len(app), app, hello


def dist(sizes):
    c = collections.Counter(sizes)
    return ", ".join("%d x%d" % (k, c[k]) for k in sorted(c))


def test_caddy_negotiates_like_upstream(st):
    """With the image's GODEBUG the stock Caddy picks the hybrid group."""
    sh, _, _ = caddy_answer(st.ref_port, "mlkem")
    _, _, group, share, _, _ = tdlib_tls.parse_server_hello(sh)
    assert (group, len(share)) == (0x11EC, 1120)


@pytest.mark.parametrize("shape", tdlib_tls.SHAPES)
def test_answer_matches_site(st, shape):
    heavy, mass = tdlib_tls.compress10_heavy_mass()
    sides = {}
    expect = flight_records(st.ref_port, shape)
    for side in ("caddy", "tgfront"):
        rows = []
        for _ in range(N):
            if side == "caddy":
                sh, size, recs = caddy_answer(st.ref_port, shape, expect=expect)
                assert len(recs) == expect, "Caddy's flight: %s" % recs
                body = None
            else:
                sh, size, body, _ = tgfront_answer(st, shape)
                recs = [size - 5]
            rows.append((tdlib_tls.parse_server_hello(sh), size, recs, body))
        sides[side] = rows
    c_rows, t_rows = sides["caddy"], sides["tgfront"]
    c_sizes = [r[1] for r in c_rows]
    t_sizes = [r[1] for r in t_rows]
    log("hello %s: stock Caddy, %d handshakes: ServerHello %s; flight bytes after the CCS "
        "(records %s): %s" % (shape, N, describe(c_rows[0][0]), c_rows[0][2], dist(c_sizes)))
    log("hello %s: tgfront,    %d handshakes: ServerHello %s; flight bytes after the CCS "
        "(one record): %s" % (shape, N, describe(t_rows[0][0]), dist(t_sizes)))
    log("metric: " + " | ".join(l for l in st.metrics().splitlines()
                                if l.startswith("mtg_site_profile")))
    shape_of = lambda r: (r[0][0], tuple(r[0][1]), r[0][2], len(r[0][3]))
    assert {shape_of(r) for r in c_rows} == {shape_of(r) for r in t_rows}, \
        "ServerHello shapes differ: caddy %s, tgfront %s" % (
            {shape_of(r) for r in c_rows}, {shape_of(r) for r in t_rows})
    assert min(c_sizes) <= min(t_sizes) and max(t_sizes) <= max(c_sizes), \
        "tgfront's flight sizes (%s) leave Caddy's range (%s)" % (dist(t_sizes), dist(c_sizes))
    if len(set(c_sizes)) > 1:
        assert len(set(t_sizes)) > 1, "Caddy's flight size varies, tgfront's is constant"
    for side, rows in sides.items():
        for r in rows:
            share = r[0][3]
            assert tdlib_tls.x25519_on_curve(share[-32:]), "%s: X25519 key not on the curve" % side
        # Fields random in Caddy's answers: server random, key shares, session id.
        for i, what in ((4, "server random"), (3, "key share"), (5, "session id")):
            vals = [r[0][i] for r in rows]
            assert len(set(vals)) == len(vals), "%s: %s repeats" % (side, what)
    bodies = [r[3] for r in t_rows]
    assert len(set(bodies)) == len(bodies), "tgfront: record bodies repeat"
    if shape == "mlkem":
        for side, rows in sides.items():
            coef = [x for r in rows for x in tdlib_tls.mlkem_u_coefficients(r[0][3][:1088])]
            got = sum(1 for x in coef if x in heavy) / len(coef)
            log("hello mlkem: %s ciphertexts: %.4f of Compress_10 coefficients in 4-preimage "
                "buckets (ML-KEM: %.4f, random bytes: %.4f)" % (side, got, mass, 257 / 1024))
            assert abs(got - mass) < 0.01, "%s: ciphertext not shaped like ML-KEM's" % side


def describe(parsed):
    cipher, order, group, share, _, _ = parsed
    return "cipher 0x%04x, extensions %s, group 0x%04x, share %d bytes" % (
        cipher, ",".join("%04x" % t for t in order), group, len(share))


def make_chain(dirpath):
    """RSA-2048 leaf for DOMAIN under two intermediates: longer than
    Caddy's internal ECDSA chain, another key type."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID
    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(name, key, issuer_name, issuer_key, ca, san=None):
        b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
             .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(hours=1))
             .not_valid_after(now + datetime.timedelta(days=30))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    root_k = ec.generate_private_key(ec.SECP384R1())
    i1_k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    i2_k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf_k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    i1 = cert("test intermediate one", i1_k, "test root", root_k, True)
    i2 = cert("test intermediate two", i2_k, "test intermediate one", i1_k, True)
    leaf = cert(stack.DOMAIN, leaf_k, "test intermediate two", i2_k, False, san=stack.DOMAIN)
    crt, key = os.path.join(dirpath, "chain.pem"), os.path.join(dirpath, "leaf.key")
    with open(crt, "wb") as f:
        for c in (leaf, i2, i1):
            f.write(c.public_bytes(serialization.Encoding.PEM))
    with open(key, "wb") as f:
        f.write(leaf_k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    return crt, key


def test_sizes_follow_cert(st):
    before = sorted({tgfront_answer(st, "mlkem")[1] for _ in range(20)})
    crt, key = make_chain(st.dir)
    # The fronted Caddy restarts on the same port with the new chain.
    port = st.front_caddy_port
    st.front_caddy.stop()
    st.procs.remove(st.front_caddy)
    path = st.caddyfile("fronted", port, stack.free_port(), wrapper=True)
    with open(path) as f:
        text = f.read()
    text, n = re.subn(r"(\nhttps://[^\n]* \{\n)", r"\1\ttls %s %s\n" % (crt, key), text)
    assert n == 1
    with open(path, "w") as f:
        f.write(text)
    env = {"PATH": "/usr/bin:/bin", "HOME": st.data, "XDG_DATA_HOME": st.data,
           "XDG_CONFIG_HOME": os.path.join(st.dir, "config-fronted2"),
           "GODEBUG": stack.image_caddy_godebug()}
    p = stack.Proc([stack.caddy_bin(), "run", "--config", path, "--adapter", "caddyfile"],
                   os.path.join(st.dir, "caddy-fronted2.log"), env)
    st.procs.append(p)
    st.front_caddy = p
    stack.wait_port(port, 30, p.p, "caddy fronted (new chain)", p.log)
    expect = flight_records(port, "mlkem", proxy=True)
    site = sorted({caddy_answer(port, "mlkem", proxy=True, expect=expect)[1] for _ in range(20)})
    t0 = time.monotonic()
    after = None
    while time.monotonic() - t0 < 30:
        sizes = {tgfront_answer(st, "mlkem")[1] for _ in range(5)}
        if min(sizes) >= site[0] and max(sizes) <= site[-1]:
            after = sorted(sizes | {tgfront_answer(st, "mlkem")[1] for _ in range(15)})
            break
        time.sleep(0.5)
    log("certificate change (ECDSA internal chain -> RSA-2048 leaf + 2 intermediates), mlkem "
        "hello: tgfront before %s; the new site %s; tgfront after %s (%.1f s)" % (
            before, site, after, time.monotonic() - t0))
    assert after is not None, "tgfront's answer did not follow the new certificate within 30 s:\n" + \
        st.tgfront.text()[-3000:]
    assert site[0] > before[-1], "the new chain should give a longer flight"
    assert site[0] <= after[0] and after[-1] <= site[-1]
    assert "changed" in st.tgfront.text()


def test_doctor_shows_the_site_answer(st):
    """`tgfront doctor` probes the site as the daemon does: one line per
    hello kind, with the hybrid group for the hybrid hello."""
    import subprocess
    out = subprocess.run([stack.tgfront_bin(), "doctor", os.path.join(st.dir, "tgfront.toml")],
                         capture_output=True, text=True, timeout=60).stdout
    log("doctor:\n" + out)
    lines = [l for l in out.splitlines() if "hello:" in l]
    assert any("OK   site profile: x25519 hello:" in l and "group 0x001d" in l for l in lines), out
    assert any("OK   site profile: x25519mlkem768 hello:" in l and "group 0x11ec" in l and "1120-byte" in l
               for l in lines), out
