/* web_metrics: the WEB proxy mode's counters (one set per event loop,
 * inside struct metrics) and their Prometheus text. Telegram traffic of web
 * streams is counted in the shared telegram_* series as well. */
#ifndef TGF_WEB_METRICS_H
#define TGF_WEB_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "web_frame.h"
#include "web_http.h"

/* How a web session ended (a metric label). */
typedef enum {
    WEB_END_HTTP_DONE = 0,   /* an HTTP connection (no carrier) closed */
    WEB_END_CLIENT_CLOSE,    /* the page closed the carrier (1000) */
    WEB_END_PEER_GONE,       /* the carrier's socket ended or reset */
    WEB_END_WS_PROTOCOL,     /* RFC 6455 violation (1002) */
    WEB_END_WS_TEXT,         /* a text message (1003) */
    WEB_END_WS_TOO_BIG,      /* message over the limit (1009) */
    WEB_END_FRAME,           /* v1 frame violation (1002) */
    WEB_END_MUX,             /* HELLO order, unknown stream, window exceeded (1002) */
    WEB_END_IDLE,
    WEB_END_HEAD_TIMEOUT,
    WEB_END_NO_MEMORY,
    WEB_END_SHUTDOWN,
    WEB_END_COUNT
} web_end;

const char *web_end_name(web_end e);

typedef enum {
    WEB_ANS_BRIDGE = 0,   /* the bridge page */
    WEB_ANS_UPGRADE,      /* a carrier opened */
    WEB_ANS_SITE,         /* handed back to the site */
    WEB_ANS_NOT_FOUND,    /* authentic capability, non-canonical request */
    WEB_ANS_BAD_REQUEST,  /* a head we refuse */
    WEB_ANS_BUSY,         /* over max-sessions */
    WEB_ANS_COUNT
} web_answer;

/* Why a secret's client was refused over WEB (web_limits.h; a metric
 * label): the secret's limits as on the FakeTLS path, or the daemon's
 * concurrency. */
typedef enum {
    WEB_LIM_OK = 0,
    WEB_LIM_EXPIRED,
    WEB_LIM_MAX_CONNECTIONS,
    WEB_LIM_QUOTA,
    WEB_LIM_CONCURRENCY,
    WEB_LIM_COUNT
} web_limit;

/* Where it was refused: the bridge page (answered as the site), the
 * carrier's upgrade (as the site), a new stream (CLOSE for it). */
typedef enum { WEB_AT_PAGE = 0, WEB_AT_CARRIER, WEB_AT_STREAM, WEB_AT_COUNT } web_limit_at;

const char *web_limit_name(web_limit l);
const char *web_limit_at_name(web_limit_at a);

typedef struct {
    uint64_t sessions;                  /* gauge: HTTP connections and carriers */
    uint64_t carriers;                  /* gauge: open carriers */
    uint64_t streams;                   /* gauge */
    uint64_t streams_opened;
    uint64_t streams_refused;           /* over max-streams */
    uint64_t streams_dc_unreachable;
    uint64_t streams_init_timeout;      /* no obfuscated2 init within the handshake timeout */
    uint64_t streams_idle;              /* relayed, silent for the idle timeout */
    uint64_t answers[WEB_ANS_COUNT];
    uint64_t bad_http[WH_R_COUNT];
    uint64_t ended[WEB_END_COUNT];
    uint64_t frame_errors[WF_R_COUNT];
    uint64_t memory_bytes;              /* gauge: buffers held by web sessions */
    uint64_t limited[WEB_AT_COUNT][WEB_LIM_COUNT];   /* refusals by a limit */
} web_metrics;

/* Appends the sum of n sets as Prometheus text to out[*len..cap), keeping
 * it NUL-terminated (truncated when full). */
void web_metrics_render(const web_metrics *const *ms, size_t n, const char *prefix, char *out,
                        size_t cap, size_t *len);

#endif
