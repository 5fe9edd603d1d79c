/* close_reason: why a connection ended. One table says, for each reason, its
 * metric label and how each side is told: FIN (an orderly close) or RST
 * (what the other end did to us, passed on), and what a FakeTLS client
 * gets before its FIN once its handshake is done. */
#ifndef TGF_CLOSE_REASON_H
#define TGF_CLOSE_REASON_H

typedef enum {
    CLOSE_NONE = 0,
    CLOSE_DONE,              /* both sides finished normally */
    CLOSE_CLIENT_RESET,      /* client reset or errored */
    CLOSE_PEER_RESET,        /* telegram or fronting target reset/errored */
    CLOSE_IDLE,              /* idle timeout (Telegram relays only) */
    CLOSE_HANDSHAKE_TIMEOUT, /* after the ServerHello: no obfs2 frame in time */
    CLOSE_BAD_OBFS2,         /* unsupported protocol tag */
    CLOSE_UNKNOWN_DC,
    CLOSE_DC_UNREACHABLE,    /* every DC address failed */
    CLOSE_FRONT_UNREACHABLE, /* fronting target refused or failed */
    CLOSE_BAD_RECORD,        /* bad TLS record after the handshake */
    CLOSE_PROXY_HEADER,      /* invalid inbound PROXY header */
    CLOSE_NO_MEMORY,
    CLOSE_SHUTDOWN,          /* drain period over */
    CLOSE_INTERNAL,          /* RNG, epoll or header-building failure */
    CLOSE_REASON_COUNT
} close_reason;

typedef struct {
    const char *name;        /* metric label */
    unsigned rst_client : 1; /* close the client side with RST */
    unsigned rst_peer : 1;   /* close the DC / fronting side with RST */
    /* Encrypted alert records a Go TLS server writes before its FIN when it
     * closes a connection whose handshake completed (crypto/tls Conn.Close
     * sends close_notify; a bad record first gets its fatal alert): 0, 1
     * (close_notify) or 2 (alert, then close_notify). Only for Telegram
     * clients after the ServerHello, and before the client's Finished only
     * the fatal alert (2 becomes 1, 1 becomes 0); never with an RST. */
    unsigned alerts : 2;
} close_reason_info;

/* The row for r (an out-of-range r gets the "none" row). */
const close_reason_info *close_reason_get(close_reason r);

#endif
