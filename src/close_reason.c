#include "close_reason.h"

/* A reset seen on one side is passed to the other as a reset, so a prober
 * sees the site's own RST, and the site sees the client's. Everything we
 * decide ourselves ends with FIN. The fronting target being down shows the
 * client what a closed port shows: a reset.
 *
 * A Telegram client past the ServerHello believes it speaks TLS to the site,
 * so every FIN we decide on ends as a Go server's would: idle timeouts,
 * drains, DC failures, a bad init frame all go through net/http's or the
 * handshake's Close, which sends close_notify once the handshake is
 * complete (the client's Finished read: its first application-data record
 * here; before it, nothing); a record Go's record layer refuses (a wrong
 * version, type or ChangeCipherSpec, too long: faketls.c) gets its fatal
 * alert first, or alone before the Finished. What the client did (its
 * reset, its socket failing) and the DC's reset passed on as RST get
 * nothing. */
static const close_reason_info table[CLOSE_REASON_COUNT] = {
    [CLOSE_NONE] = { "none", 0, 0, 0 },
    [CLOSE_DONE] = { "done", 0, 0, 1 },
    [CLOSE_CLIENT_RESET] = { "client_reset", 0, 1, 0 },
    [CLOSE_PEER_RESET] = { "peer_reset", 1, 0, 0 },
    [CLOSE_IDLE] = { "idle", 0, 0, 1 },
    [CLOSE_HANDSHAKE_TIMEOUT] = { "handshake_timeout", 0, 0, 1 },
    [CLOSE_BAD_OBFS2] = { "bad_obfs2", 0, 0, 1 },
    [CLOSE_UNKNOWN_DC] = { "unknown_dc", 0, 0, 1 },
    [CLOSE_DC_UNREACHABLE] = { "dc_unreachable", 0, 0, 1 },
    [CLOSE_FRONT_UNREACHABLE] = { "front_unreachable", 1, 0, 0 },
    [CLOSE_BAD_RECORD] = { "bad_record", 0, 1, 2 },
    [CLOSE_PROXY_HEADER] = { "proxy_header", 0, 0, 0 },
    [CLOSE_NO_MEMORY] = { "no_memory", 0, 0, 1 },
    [CLOSE_SHUTDOWN] = { "shutdown", 0, 0, 1 },
    [CLOSE_INTERNAL] = { "internal", 0, 0, 1 },
};

const close_reason_info *close_reason_get(close_reason r)
{
    return &table[(unsigned)r < CLOSE_REASON_COUNT ? r : CLOSE_NONE];
}
