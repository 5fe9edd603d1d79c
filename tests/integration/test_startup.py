"""Start-up refusals and resource exhaustion: the fronting-loop check,
descriptor exhaustion (EMFILE) and simple-run."""

import os
import resource
import signal
import socket
import subprocess
import time

import pytest

from conftest import Daemon, free_port, tgfront_bin  # noqa: F401
import tgclient


def run_and_wait(args, timeout=5, preexec_fn=None):
    p = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                       preexec_fn=preexec_fn)
    return p.returncode, p.stderr.decode(errors="replace")


@pytest.mark.parametrize("bind_host,front_host", [
    ("127.0.0.1", "127.0.0.1"),      # same address and port
    ("0.0.0.0", "127.0.0.1"),        # wildcard listener covers loopback
    ("::", "::1"),                   # dual-stack wildcard
    ("127.0.0.1", "localhost"),      # a hostname resolving to ourselves
])
def test_fronting_loop_refused(workdir, secret, fakedc, bind_host, front_host):
    d = Daemon(workdir, secret, fakedc.addr, ("127.0.0.1", 1), bind_host=bind_host, stats=False)
    # point the fronting target at our own listener's port
    text = d.config_text.replace('host = "127.0.0.1"\nport = 1\n',
                                 'host = "%s"\nport = %d\n' % (front_host, d.port))
    assert text != d.config_text
    with open(d.config_path, "w") as f:
        f.write(text)
    t0 = time.monotonic()
    rc, err = run_and_wait([tgfront_bin(), "run", d.config_path])
    assert rc != 0
    assert time.monotonic() - t0 < 5
    assert "fronting loop" in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_secret_host_as_fronting_target_loop(workdir, fakedc):
    """No [domain-fronting]: the secret's hostname (localhost here) on port
    443 is the target; listening on 443 ourselves makes that a loop."""
    secret = tgclient.make_secret("localhost")
    d = Daemon(workdir, secret, fakedc.addr, ("127.0.0.1", 1), stats=False)
    text = d.config_text.replace('bind-to = "127.0.0.1:%d"' % d.port, 'bind-to = "127.0.0.1:443"')
    text = text.replace('host = "127.0.0.1"\nport = 1\n', "")
    with open(d.config_path, "w") as f:
        f.write(text)
    rc, err = run_and_wait([tgfront_bin(), "run", d.config_path])
    assert rc != 0 and "fronting loop" in err, (rc, err)


def test_emfile_pauses_accept_without_spinning(make_daemon, fakedc):
    """With a tiny descriptor limit, excess connections wait in the backlog;
    the daemon neither spins nor dies, and serves again once fds free up."""
    d = make_daemon(start=False, stats=False)
    limit = 24

    def lower_fd_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    d._errf = open(d.stderr_path, "wb")
    d.proc = subprocess.Popen([tgfront_bin(), "run", d.config_path], stdin=subprocess.DEVNULL,
                              stdout=d._errf, stderr=d._errf, preexec_fn=lower_fd_limit)
    deadline = time.monotonic() + 5
    while "listening on" not in d.stderr() and time.monotonic() < deadline:
        time.sleep(0.02)
    socks = []
    try:
        for _ in range(limit * 2):
            s = socket.create_connection(d.addr, timeout=2)
            socks.append(s)
        time.sleep(0.5)
        with open("/proc/%d/stat" % d.pid()) as f:
            before = sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:13])
        time.sleep(1.5)
        with open("/proc/%d/stat" % d.pid()) as f:
            after = sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:13])
        ticks = os.sysconf("SC_CLK_TCK")
        assert (after - before) / ticks < 0.5, "daemon spins while out of descriptors"
        assert d.proc.poll() is None
        # The cap keeps a second descriptor for every accepted connection,
        # so the rest wait in the backlog instead of failing at accept.
        assert "up to 9 connections" in d.stderr(), d.stderr()
    finally:
        for s in socks:
            s.close()
    # descriptors come back: a proxied connection works again
    deadline = time.monotonic() + 10
    while True:
        try:
            with d.client() as c:
                c.connect()
                c.send(b"ping")
                assert c.recv_exact(4) == b"ping"
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_simple_run_fronts_and_stops(backend_session):
    backend_session.reset_state()
    port = free_port()
    secret = tgclient.make_secret("example.com")
    p = subprocess.Popen([tgfront_bin(), "simple-run", "127.0.0.1:%d" % port,
                          tgclient.secret_hex(secret), "--domain-fronting-ip", "127.0.0.1",
                          "-p", str(backend_session.addr[1])],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        conn = backend_session.wait_conn_with(
            lambda c: bytes(c.data) == b"GET / HTTP/1.0\r\n\r\n" and c.eof, 5)
        assert conn is not None, "request did not reach the backend"
        s.close()
    finally:
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=10)
    assert p.returncode == 0, out


def test_simple_run_bad_secret():
    rc, err = run_and_wait([tgfront_bin(), "simple-run", "127.0.0.1:1", "dd00"])
    assert rc != 0 and "SECRET" in err, err
