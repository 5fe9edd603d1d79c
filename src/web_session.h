/* web_session: one connection on the WEB proxy's loopback listener (from
 * Caddy): HTTP/1.1 requests (the bridge page, the site marker, keep-alive),
 * then possibly the carrier, a WebSocket holding the v1 frame mux, whose
 * streams each go to a Telegram DC from their own obfuscated2 init.
 *
 *   HTTP --(GET /?bridge=CAP)--> page, HTTP again
 *        --(upgrade with a live token)--> CARRIER: HELLO -> WELCOME, then
 *          OPEN/DATA/WINDOW/CLOSE per stream; each stream: INIT (its 64-byte
 *          obfuscated2 frame) -> CONNECT (the DC) -> RELAY
 *   any -> CLOSING (our last bytes, a close frame) -> CLOSED
 *
 * Bad input ends this session only, with the close code RFC 6455 names,
 * and is counted. Memory: a small input buffer, an output buffer (larger
 * once a carrier opens) and, per stream, a queue toward the DC that exists
 * only while the DC is slower than the client; the carrier is not read
 * while any queue is at its mark, so memory per session is bounded. */
#ifndef TGF_WEB_SESSION_H
#define TGF_WEB_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "loop.h"
#include "metrics.h"
#include "web_cap.h"
#include "web_limits.h"
#include "web_metrics.h"

typedef struct web_session web_session;

typedef struct {
    loop *loop;
    metrics *metrics;                /* shared: DC slots; web counters in ->web */
    const tgf_config *cfg;
    web_tokens *tokens;
    const web_cap_entry *caps;
    size_t ncaps;
    const char *host;                /* the bridge's host */
    size_t *carriers;                /* open carriers (for max-sessions) */
    web_limits *limits;              /* the secrets' limits and the concurrency;
                                      * NULL: only expiry is checked */
    /* Frees mem after the current event batch (a later event of the batch
     * may still point at a watch inside it). */
    void (*defer_free)(void *owner, void *mem);
    /* The session has closed (its descriptors are released); its memory
     * goes to defer_free by the session itself. */
    void (*on_closed)(void *owner, web_session *s);
    void *owner;
} web_env;

/* Link fields for the owner's list; the first member of a session. */
typedef struct web_link {
    struct web_link *prev, *next;
} web_link;

/* Builds a session for an accepted, non-blocking fd (owned from now on).
 * Returns NULL (fd closed) when memory is short. Nothing is registered
 * until web_session_run, so the owner can link it first. */
web_session *web_session_start(const web_env *env, int fd, const struct sockaddr *peer,
                               socklen_t len);
/* Registers the socket; may end the session at once (on_closed runs). */
void web_session_run(web_session *s);
web_link *web_session_link(web_session *s);
web_session *web_session_of(web_link *l);

/* For tests and fuzzing (the frame mux without the HTTP exchange): makes
 * an HTTP session a carrier as a valid upgrade for capability cap_index
 * would, minus the 101 answer. 0, or -1. */
int web_session_force_carrier(web_session *s, int cap_index);
/* For tests and fuzzing: bytes from the client, as if read from the
 * socket (in carrier state only; unmasked in place). */
void web_session_feed(web_session *s, uint8_t *p, size_t n);
/* 1 while the carrier is open. */
int web_session_carrier_open(const web_session *s);

/* Timers: call on every tick. */
void web_session_tick(web_session *s, uint64_t now_ms);
/* Ends the session (idempotent). */
void web_session_end(web_session *s, web_end why);

#endif
