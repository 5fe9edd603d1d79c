"""Records toward the client follow Go's crypto/tls sizing, like the Caddy
site tgfront fronts: a ramp of one TCP segment per record (1186 bytes of
plaintext + 17 bytes of AEAD expansion), full size (16379, as mtg) after 128 KiB."""

import os
import struct

from tgclient import recv_exact

SEGMENT = 1186
EXPANSION = 17
FULL = 16379      # mtg's maximum; older tdlib drops records over 16384


def read_records(sock, total_payload):
    sizes = []
    got = 0
    while got < total_payload:
        hdr = recv_exact(sock, 5)
        assert hdr[:3] == b"\x17\x03\x03", hdr.hex()
        ln = struct.unpack(">H", hdr[3:5])[0]
        recv_exact(sock, ln)
        sizes.append(ln)
        got += ln
    return sizes


def test_record_sizes_ramp_like_go(daemon, fakedc):
    with daemon.client() as c:
        c.connect()
        data = os.urandom(400 * 1024)
        c.send(data)     # the fake DC echoes it back
        sizes = read_records(c.sock, len(data))
    sent = 0
    for k, ln in enumerate(sizes):
        if sent < 128 * 1024:
            limit = min(SEGMENT * (k + 1) + EXPANSION, FULL)
        else:
            limit = FULL
        assert 0 < ln <= limit, "record %d: %d bytes > %d (sizes %s)" % (k, ln, limit, sizes[:20])
        sent += ln + 5
    # after the ramp, bulk data fills records to Go's full size
    assert max(sizes) == FULL, max(sizes)
