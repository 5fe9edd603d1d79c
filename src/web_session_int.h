/* web_session_int: what web_session.c (HTTP, carrier, mux) and
 * web_stream.c (the streams to the DCs) share, and nothing else includes:
 * the two structs, their limits, and the calls each makes into the other.
 * The public interface is web_session.h. */
#ifndef TGF_WEB_SESSION_INT_H
#define TGF_WEB_SESSION_INT_H

#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "metrics.h"
#include "obfs2.h"
#include "web_frame.h"
#include "web_http.h"
#include "web_limits.h"
#include "web_page.h"
#include "web_session.h"
#include "web_ws.h"

#define IN_CAP WEB_HTTP_HEAD_MAX          /* one read; an HTTP head fits */
#define IN_CAP_CARRIER (64u * 1024)       /* one carrier read: a whole 64 KiB DATA
                                           * frame per read/write pair, as FakeTLS */
#define OUT_CAP_HTTP WEB_PAGE_MAX         /* the page is the largest answer */
#define OUT_CAP_CARRIER (256u * 1024)
#define CONTROL_RESERVE 4096              /* out room kept for control frames */
#define DOWN_FRAME_MAX 65536              /* DATA towards the client (its JS thread) */
#define DOWN_MIN_ROOM 2048                /* below this, wait for the carrier to drain */
#define STREAM_WINDOW (4u << 20)          /* the v1 implicit window, both ways */
#define STREAM_Q_MARK (256u * 1024)       /* queue toward a DC: stop reading the carrier */
#define SESSION_Q_MARK (512u * 1024)      /* all of a session's queues together */
#define STREAM_Q_MAX (STREAM_Q_MARK + IN_CAP_CARRIER + OBFS2_FRAME_LEN)
#define CREDIT_FLUSH (256u * 1024)        /* WINDOW at this much, or on the tick */
#define UP_DATA_MAX 65536                 /* the client's DATA limit */
#define MAX_MESSAGE (WEB_FRAME_MAX_PAYLOAD + 65536)
#define TOMBSTONES 1024
#define HEAD_TIMEOUT_MS 15000
#define HTTP_IDLE_MS 60000
#define QUIET_PING_MS 20000
#define CLOSING_MS 2000

typedef enum { SS_HTTP, SS_CARRIER, SS_CLOSING, SS_CLOSED } sess_state;
typedef enum { ST_INIT, ST_CONNECT, ST_RELAY, ST_DEAD } stream_state;

typedef struct web_stream {
    struct web_stream *next;
    web_session *s;
    uint32_t id;
    stream_state st;
    loop_watch w;                 /* the DC socket; fd -1 until dialled */
    uint8_t init[OBFS2_FRAME_LEN];
    size_t init_have;
    obfs2_ciphers cli;            /* between the client and us */
    obfs2_ciphers dc;             /* between us and the DC */
    int dc_num;
    uint32_t seed;
    size_t addr_next;
    uint8_t *q;                   /* bytes for the DC, encrypted for it */
    size_t q_off, q_len, q_cap;
    uint64_t rx_window;           /* client bytes we still accept */
    uint64_t tx_window;           /* bytes we may still send the client */
    uint32_t credit;              /* written to the DC, not yet granted back */
    uint64_t deadline_ms;         /* INIT: the handshake's; CONNECT: the dial's */
    uint64_t last_active_ms;      /* bytes moved either way (the idle timeout) */
    metrics_dc_slot *slot;
    web_limit_hold hold;          /* its secret's connection, a concurrency slot */
    uint64_t up_bytes, down_bytes;
    char ip[48];
} web_stream;

struct web_session {
    web_link link;                /* first: the owner's list */
    const web_env *env;
    loop_watch cw;
    sess_state state;
    web_end why;
    char peer[64];                /* the client (X-Forwarded-For) or Caddy */

    uint8_t *in;                  /* in_cap bytes: IN_CAP, IN_CAP_CARRIER */
    size_t in_len, in_cap;
    uint8_t *out;
    size_t out_off, out_len, out_cap;
    int close_after_flush;

    ws_rx ws;
    web_frame_rx fr;
    int hello, carrier_counted;
    int cap_index;                /* the capability the page was served for */
    web_cap_entry cap;            /* its copy at the carrier's start: a reload
                                   * rebuilds env->caps (web_server_apply_config) */
    config_secret sec;            /* its secret (name, limits) at the carrier's
                                   * start; streams follow the current config's
                                   * entry of that name while there is one */
    uint8_t ctl[8];               /* HELLO / WINDOW payload being collected */
    size_t ctl_len;
    web_stream *cur;              /* the stream of the frame being read, or NULL */
    int cur_skip;                 /* payload of a frame for a tombstoned stream */

    web_stream *streams;
    size_t nstreams;
    uint32_t *tomb;               /* TOMBSTONES closed ids, a ring */
    size_t tomb_next;

    uint64_t started_ms, last_rx_ms, last_tx_ms, deadline_ms;
    uint64_t held;                /* buffer bytes counted in memory_bytes */
};

/* ---- web_session.c, for the streams ---- */

web_metrics *web_session_metrics(const web_session *s);
uint64_t web_session_now(const web_session *s);
/* Buffers counted in the session and the web memory gauge. */
void *web_session_hold(web_session *s, size_t n);
void web_session_unhold(web_session *s, void *p, size_t n);
/* Room at the end of the output (compacted first when worth it). */
size_t web_session_out_room(web_session *s);
/* One control frame in its own message; no room ends the carrier (1011). */
void web_session_out_control(web_session *s, uint8_t type, uint32_t stream, const void *p,
                             size_t n);
/* Writes what the output holds; -1 when the socket failed. */
int web_session_flush(web_session *s);
/* Recomputes the interest of the session and its streams (may close it). */
void web_session_update(web_session *s);
void web_session_close_now(web_session *s);

/* ---- web_stream.c, for the mux ---- */

/* A new stream in INIT (its 64-byte obfuscated2 frame comes first); NULL
 * when memory is short. */
web_stream *web_stream_open(web_session *s, uint32_t id);
web_stream *web_stream_find(web_session *s, uint32_t id);
/* Closed ids: late DATA/WINDOW/CLOSE for them are ignored. */
int web_stream_tombstoned(const web_session *s, uint32_t id);
void web_stream_tomb_add(web_session *s, uint32_t id);
/* Closes a stream (tell_client: send CLOSE) and tombstones its id. */
void web_stream_close(web_stream *st, int tell_client);
/* DATA payload for the stream, decrypted and re-encrypted in place. */
void web_stream_in(web_stream *st, uint8_t *p, size_t n);
/* One read from the DC into the carrier's output as one DATA frame. */
void web_stream_read(web_stream *st);
uint32_t web_stream_mask(const web_stream *st);
void web_stream_update(web_stream *st);
/* Credit back to the client for bytes the DC took (force: any amount). */
void web_stream_grant(web_stream *st, int force);
/* The next DC address (or CLOSE when none is left). */
void web_stream_dial_next(web_stream *st);
/* The carrier's tick: the stream's deadlines, its idle timeout and
 * credit (may close it, with CLOSE to the client). */
void web_stream_tick(web_stream *st, uint64_t now);

#endif
