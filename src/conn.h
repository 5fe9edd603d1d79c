/* conn: one client connection's state machine.
 *
 *   PROXY_HEADER? -> HELLO -> FRONT_CONNECT -> FRONT_RELAY          (fronted)
 *                        \-> OBFS2_INIT -> DC_CONNECT -> RELAY      (Telegram)
 *
 * Every failure before the ServerHello is fronted with the exact bytes read
 * so far. Teardown is one idempotent function with a sticky close reason. */
#ifndef TGF_CONN_H
#define TGF_CONN_H

#include <stdint.h>
#include <sys/socket.h>

#include "faketls.h"
#include "loop.h"
#include "metrics.h"
#include "obfs2.h"

struct server;

typedef enum {
    CS_PROXY_HEADER,
    CS_HELLO,
    CS_FRONT_CONNECT,
    CS_FRONT_RELAY,
    CS_OBFS2_INIT,
    CS_DC_CONNECT,
    CS_RELAY,
    CS_CLOSED
} conn_state;

/* Bytes waiting to be written to one side: buf[off..len). The buffer is a
 * pool block held only while bytes are pending. */
typedef struct {
    uint8_t *buf;
    size_t off, len;
    unsigned eof : 1;        /* source sent FIN */
    unsigned shut : 1;       /* FIN passed on to the destination */
    uint64_t bytes;          /* total moved, for logs */
} conn_flow;

/* Headroom kept in front of the hello bytes for an outgoing PROXY v2 header
 * (at most 52 bytes), so fronting never copies the client's bytes. */
#define CONN_HS_HEADROOM 64

typedef struct conn {
    struct conn *prev, *next;
    struct server *srv;
    loop_watch cw;               /* client socket */
    loop_watch pw;               /* Telegram or fronting socket; fd -1 if none */
    conn_state state;
    close_reason reason;
    unsigned inspected : 1;      /* counted against concurrency */
    unsigned fronted : 1;
    unsigned over_limit : 1;     /* front after the inbound PROXY header */
    unsigned dc_counted : 1;
    metrics_family family;
    struct sockaddr_storage client_addr;   /* real client (after inbound PROXY) */
    socklen_t client_len;
    uint64_t deadline_ms;        /* handshake or connect deadline; 0 = none */
    uint64_t last_activity_ms;

    uint8_t *hs;                 /* hello bytes at hs[hs_start..hs_len) */
    size_t hs_start, hs_len;
    size_t hs_next_check;        /* hs_len at which the hello is worth re-checking */

    conn_flow up;                /* client -> peer */
    conn_flow down;              /* peer -> client */

    faketls_rx rx;
    obfs2_ciphers cli;           /* between client and us */
    obfs2_ciphers dc;            /* between us and the DC */
    uint8_t init[OBFS2_FRAME_LEN];
    size_t init_have;
    int dc_num;
    uint32_t dc_seed;            /* reproduces the shuffled address order */
    size_t addr_next;            /* next DC or fronting address to try */
    metrics_dc_slot *dc_slot;
    uint32_t tx_records;         /* records sent to the client after the ServerHello */
    uint64_t tx_bytes;           /* their bytes, for the record-size ramp */
    char peer_ip[48];
} conn;

/* Takes ownership of an accepted, non-blocking fd. Over the concurrency
 * limit the connection is fronted at once (a close would be a tell). */
void conn_accept(struct server *s, int fd, const struct sockaddr *addr, socklen_t len);

/* Timers: called on every tick. */
void conn_check_deadline(conn *c, uint64_t now_ms);

/* Idempotent teardown; the first reason sticks. reset_* send RST instead of
 * FIN to that side. The conn is freed after the current event batch. */
void conn_close(conn *c, close_reason reason, int reset_client, int reset_peer);

/* Frees closed connections (after the event batch). */
void conn_reap(struct server *s);

#endif
