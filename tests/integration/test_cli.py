"""The command line: generate-secret, access, version, help, bad usage and
bad config files."""

import base64
import json
import subprocess
import urllib.parse

import pytest

from conftest import tgfront_bin

SECRET_HEX = "ee367a189aee18fa31c190054efd4a8e95" + b"example.com".hex()


def run(*args, timeout=10):
    return subprocess.run([tgfront_bin()] + list(args), capture_output=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_generate_secret_base64url():
    r = run("generate-secret", "example.com")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode().strip()
    assert "=" not in out and "+" not in out and "/" not in out, out
    raw = b64url_decode(out)
    assert raw[0] == 0xEE and len(raw) == 1 + 16 + len("example.com")
    assert raw[17:] == b"example.com"
    assert raw[1:17] != b"\x00" * 16
    r2 = run("generate-secret", "example.com")
    assert r2.stdout.strip() != r.stdout.strip(), "two secrets are identical"


@pytest.mark.parametrize("flag_first", [True, False])
def test_generate_secret_hex(flag_first):
    args = ["--hex", "example.com"] if flag_first else ["example.com", "--hex"]
    r = run("generate-secret", *args)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode().strip()
    raw = bytes.fromhex(out)
    assert out == out.lower()
    assert raw[0] == 0xEE and raw[17:] == b"example.com" and len(raw) == 28


def write_config(tmp_path, text, name="c.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


BASE = 'secret = "%s"\nbind-to = "127.0.0.1:3128"\n' % SECRET_HEX


def _query(url):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def test_access_links(tmp_path):
    cfg = write_config(tmp_path, BASE + 'public-ipv4 = "192.0.2.7"\n')
    r = run("access", cfg)
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    v4 = j["ipv4"]
    assert v4["ip"] == "192.0.2.7"
    assert int(v4["port"]) == 3128
    assert v4["tg_url"].startswith("tg://proxy?")
    assert v4["tme_url"].startswith("https://t.me/proxy?")
    for key in ("tg_url", "tme_url"):
        q = _query(v4[key])
        assert q["server"] == "192.0.2.7"
        assert q["port"] == "3128"
        assert b64url_decode(q["secret"]).hex() == SECRET_HEX or q["secret"] == SECRET_HEX
    assert j["secret"]["hex"] == SECRET_HEX
    assert b64url_decode(j["secret"]["base64"]).hex() == SECRET_HEX


def test_access_port_and_ipv4_override(tmp_path):
    cfg = write_config(tmp_path, BASE)
    r = run("access", "--port", "443", "--ipv4", "198.51.100.1", cfg)
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    q = _query(j["ipv4"]["tg_url"])
    assert q["port"] == "443" and q["server"] == "198.51.100.1"
    assert int(j["ipv4"]["port"]) == 443


def test_access_hex(tmp_path):
    cfg = write_config(tmp_path, BASE + 'public-ipv4 = "192.0.2.7"\n')
    r = run("access", "--hex", cfg)
    assert r.returncode == 0, r.stderr
    q = _query(json.loads(r.stdout)["ipv4"]["tg_url"])
    assert q["secret"] == SECRET_HEX


def test_version():
    r = run("version")
    assert r.returncode == 0
    assert r.stdout.strip() or r.stderr.strip()


@pytest.mark.parametrize("args", [["help"], ["--help"], ["-h"]])
def test_help(args):
    r = run(*args)
    assert r.returncode == 0
    text = (r.stdout + r.stderr).decode()
    for cmd in ("run", "generate-secret", "access"):
        assert cmd in text, "help does not mention %s" % cmd


@pytest.mark.parametrize("args", [[], ["no-such-command"], ["run"],
                                  ["generate-secret"], ["run", "a", "b"],
                                  ["access"], ["generate-secret", "--bogus", "x"],
                                  ["access", "--port", "notaport", "x.toml"]])
def test_bad_usage(args):
    r = run(*args)
    assert r.returncode != 0, "exit 0 for %r" % args
    err = r.stderr.decode().strip()
    assert err, "no message for %r" % args
    assert len(err.splitlines()) == 1, "more than one line for %r:\n%s" % (args, err)
    assert r.stdout == b"", "bad usage wrote to stdout"


def test_run_missing_file(tmp_path):
    p = str(tmp_path / "nope.toml")
    r = run("run", p)
    assert r.returncode != 0
    assert "nope.toml" in r.stderr.decode()


BAD_CONFIGS = [
    # (text, line number the message must name)
    (BASE + "unknown-key = 1\n", 3),
    (BASE + 'secret = "%s"\n' % SECRET_HEX, 3),                 # duplicate
    (BASE + "concurrency = 65536\n", 3),
    (BASE + "concurrency = 70000\n", 3),
    (BASE + 'tolerate-time-skewness = "soon"\n', 3),
    (BASE + "[network.timeout]\nidle = 5\n", 4),
    (BASE + "debug = maybe\n", 3),
    ('secret = "dd00"\nbind-to = "127.0.0.1:3128"\n', 1),
    ('secret = "%s"\nbind-to = "localhost"\n' % SECRET_HEX, 2),
    (BASE + "[defense.anti-replay]\nerror-rate = 200.0\n", 4),
    (BASE + 'secret2 = "x\n', 3),                                # unterminated string
]


@pytest.mark.parametrize("text,line", BAD_CONFIGS)
def test_bad_config(tmp_path, text, line):
    cfg = write_config(tmp_path, text, "bad.toml")
    r = run("run", cfg, timeout=5)
    assert r.returncode != 0, "accepted:\n" + text
    err = r.stderr.decode()
    assert "bad.toml:%d" % line in err, "message does not name bad.toml:%d:\n%s" % (line, err)


def test_missing_required_keys(tmp_path):
    cfg = write_config(tmp_path, 'bind-to = "127.0.0.1:3128"\n', "nosecret.toml")
    r = run("run", cfg, timeout=5)
    assert r.returncode != 0
    assert "secret" in r.stderr.decode()
