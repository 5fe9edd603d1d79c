"""check-config (config layers merged and checked by run's reader, refusals
named by file, line and key) and links (links and a QR code)."""

import subprocess

import pytest

from conftest import tgfront_bin

HOST = "example.com"
SECRET_HEX = "ee367a189aee18fa31c190054efd4a8e95" + HOST.encode().hex()
OTHER_HEX = "ee00112233445566778899aabbccddeeff" + HOST.encode().hex()
BASE = 'secret = "%s"\nbind-to = "127.0.0.1:3128"\n' % SECRET_HEX


def run(*args, timeout=10):
    return subprocess.run([tgfront_bin()] + list(args), capture_output=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def merged(tmp_path, *layers):
    paths = [write(tmp_path, "l%d.toml" % i, t) for i, t in enumerate(layers)]
    out = str(tmp_path / "out.toml")
    r = run("check-config", "--write", out, *paths)
    assert r.returncode == 0, r.stderr
    return open(out).read()


def get(path, key):
    r = run("check-config", "--get", key, path)
    assert r.returncode == 0, (key, r.stderr)
    return r.stdout.decode().strip()


def test_later_layer_wins_and_keys_are_kept(tmp_path):
    text = merged(tmp_path,
                  BASE + '[network.timeout]\ntcp = "10s"\nidle = "5m"\n',
                  'concurrency = 10\n[network.timeout]\nidle = "30m"\n',
                  '[network.timeout]\ntcp = "20s"\n')
    out = str(tmp_path / "out.toml")
    assert get(out, "network.timeout.tcp") == "20s"
    assert get(out, "network.timeout.idle") == "30m"
    assert get(out, "concurrency") == "10"
    assert get(out, "secret") == SECRET_HEX
    # Each key once: the reader refuses duplicates, and access reads it.
    assert text.count("idle =") == 1 and text.count("tcp =") == 1
    r = run("access", out)
    assert r.returncode == 0, r.stderr


def test_a_later_spelling_replaces_every_earlier_one(tmp_path):
    """mtg v2.2.8 spells the fronting address `ip`; the image's layer says
    `host`: only the last one stays (both would be refused)."""
    text = merged(tmp_path, BASE + '[domain-fronting]\nip = "10.0.0.1"\nport = 9443\n',
                  '[domain-fronting]\nhost = "127.0.0.1"\nport = 8443\n')
    assert 'host = "127.0.0.1"' in text and "ip =" not in text and "9443" not in text


def test_values_survive_the_round_trip(tmp_path):
    text = merged(tmp_path, BASE + '[defense.anti-replay]\nerror-rate = 0.0001\n'
                  'max-size = "2mib"\n[datacenters]\n2 = ["127.0.0.1:4430", "[::1]:4430"]\n')
    out = str(tmp_path / "out.toml")
    assert get(out, "defense.anti-replay.error-rate") == "0.0001"
    assert get(out, "datacenters.2") == '["127.0.0.1:4430", "[::1]:4430"]'
    assert "error-rate = 0.0001\n" in text


def test_refusal_names_the_layer_line_and_key(tmp_path):
    a = write(tmp_path, "image.toml", BASE + '[network.timeout]\ntcp = "10s"\n')
    b = write(tmp_path, "user.toml", '# mtg\n\n[network.timeout]\nidle = "100h"\n')
    r = run("check-config", a, b)
    assert r.returncode == 2
    err = r.stderr.decode()
    assert err.startswith("tgfront: %s:4: key 'network.timeout.idle' must be at most 24h" % b), err
    assert err.count("\n") == 1, err
    assert r.stdout.decode() == "key network.timeout.idle\n"


def test_refusal_of_the_top_layer(tmp_path):
    a = write(tmp_path, "image.toml", BASE)
    b = write(tmp_path, "env.toml", '[network.timeout]\ntcp = "2h"\n')
    r = run("check-config", a, b)
    assert r.returncode == 2
    assert "%s:2: key 'network.timeout.tcp' must be at most 1h" % b in r.stderr.decode()
    assert r.stdout.decode() == "key network.timeout.tcp\n"


def test_missing_key_names_it(tmp_path):
    r = run("check-config", write(tmp_path, "a.toml", 'bind-to = "127.0.0.1:3128"\n'))
    assert r.returncode == 2
    assert "missing required key 'secret'" in r.stderr.decode()
    assert r.stdout.decode() == "key secret\n"


def test_syntax_error_names_the_file(tmp_path):
    b = write(tmp_path, "b.toml", "concurrency = \n")
    r = run("check-config", write(tmp_path, "a.toml", BASE), b)
    assert r.returncode == 2 and r.stderr.decode().startswith("tgfront: %s:1:" % b), r.stderr


def test_domain_must_match_the_secret(tmp_path):
    a = write(tmp_path, "a.toml", BASE)
    assert run("check-config", "--domain", HOST, a).returncode == 0
    r = run("check-config", "--domain", "other.test", a)
    assert r.returncode == 2
    err = r.stderr.decode()
    assert "key 'secret' is for 'example.com', not 'other.test'" in err, err
    assert "expected ee367a189aee18fa31c190054efd4a8e95" + b"other.test".hex() in err
    assert r.stdout.decode() == "key secret\n"


def test_nothing_written_on_refusal(tmp_path):
    out = tmp_path / "out.toml"
    r = run("check-config", "--write", str(out),
            write(tmp_path, "a.toml", BASE + "concurrency = 70000\n"))
    assert r.returncode == 2 and not out.exists()


def test_written_mode_is_0640(tmp_path):
    out = tmp_path / "out.toml"
    assert run("check-config", "--write", str(out), write(tmp_path, "a.toml", BASE)).returncode == 0
    assert out.stat().st_mode & 0o777 == 0o640


def test_links_and_qr(tmp_path):
    r = run("links", write(tmp_path, "a.toml", BASE), "--port", "8443")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[0].startswith("tg://proxy?port=8443&secret=7") and lines[0].endswith("&server=" + HOST)
    assert lines[2] == "tg://proxy?port=8443&secret=%s&server=%s" % (SECRET_HEX, HOST)
    assert lines[3] == "https://t.me/proxy?port=8443&secret=%s&server=%s" % (SECRET_HEX, HOST)
    assert lines[4] == "QR code of %s:" % lines[0]
    qr = lines[5:]
    # Two module rows per line, a 4-module light quiet zone on every side.
    assert len(set(len(q) for q in qr)) == 1
    width = len(qr[0])
    assert (width - 8 - 21) % 4 == 0, width
    assert qr[0] == qr[1] == "\u2588" * width
    assert all(q[:2] == "\u2588\u2588" for q in qr[:-1])
    assert len(qr) == (width + 1) // 2
    r = run("links", write(tmp_path, "b.toml", BASE), "--no-qr")
    assert r.returncode == 0 and len(r.stdout.decode().splitlines()) == 4
