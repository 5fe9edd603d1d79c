"""[relay] fast-mode: the frame toward the DC carries the key material of
the proxy -> client stream, so the DC's stream toward the proxy is that
same stream and DC -> client bytes are relayed without re-encryption."""

import hashlib
import socket

from helpers import rand, round_trip


def client_recv_material(client):
    """Key and IV the client decrypts the proxy's bytes with."""
    rev = client.frame[8:56][::-1]
    return hashlib.sha256(rev[:32] + client.secret_key).digest(), rev[32:48]


def dc_send_material(conn):
    """Key and IV the DC encrypts toward the proxy with (its frame, reversed)."""
    rev = conn.wire_frame[8:56][::-1]
    return rev[:32], rev[32:48]


def connect_marked(daemon, fakedc):
    marker = rand(24)
    c = daemon.client()
    c.connect(first_payload=marker)
    assert c.recv_exact(len(marker)) == marker
    conn = fakedc.conn_with_head(marker)
    assert conn is not None, "the fake DC saw no connection with our marker"
    return c, conn


def test_fast_mode_mirrors_the_client_stream_and_relays_intact(make_daemon, fakedc):
    d = make_daemon(tables={"relay": {"fast-mode": True}})
    c, conn = connect_marked(d, fakedc)
    with c:
        assert dc_send_material(conn) == client_recv_material(c)
        for n in (1, 100, 16379, 16380, 200000):
            data = rand(n)
            assert round_trip(c, data) == data, "size %d corrupted" % n
        # The DC's FIN: the close_notify is encrypted at the stream's real
        # offset although fast mode never applied the client's stream.
        c.sock.shutdown(socket.SHUT_WR)
        c.recv_close_notify()


def test_default_mode_keeps_the_streams_apart(daemon, fakedc):
    c, conn = connect_marked(daemon, fakedc)
    with c:
        assert dc_send_material(conn) != client_recv_material(c)
        data = rand(50000)
        assert round_trip(c, data) == data
