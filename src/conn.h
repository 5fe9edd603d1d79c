/* conn: one client connection's state machine.
 *
 *   accept: dial the fronting target at once (its clock starts now) and send
 *           the PROXY v2 header as soon as that connection is up
 *   PROXY_HEADER? -> HELLO --(not a proven hello, deadline, the site spoke
 *                             or closed)--> FRONT_RELAY                 (fronted)
 *                       \--(proven hello: close the early fronting
 *                           connection, send the ServerHello)--> OBFS2_INIT
 *                           -> DC_CONNECT -> RELAY                     (Telegram)
 *   any state -> CLOSED (one idempotent teardown, a sticky close reason)
 *
 * Every failure before the ServerHello is fronted with the exact bytes read
 * so far; after it, failures close. The connection gets everything it needs
 * in a conn_env and tells its owner when it stops counting against the
 * concurrency limit and when it has closed; it never sees the owner itself.
 *
 * Memory is the caller's: conn_start() builds a connection in conn_size()
 * bytes the caller provides, and the caller frees them after on_closed
 * (not before the current event batch is over). */
#ifndef TGF_CONN_H
#define TGF_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "close_reason.h"
#include "config.h"
#include "loop.h"
#include "metrics.h"
#include "pool.h"
#include "replay.h"
#include "site_profile.h"
#include "secret_usage.h"

typedef struct conn conn;

typedef struct conn_env {
    loop *loop;
    pool *pool;
    metrics *metrics;
    /* The configuration new connections get: made by config_ref (each
     * connection holds it until conn_release), swapped by a reload. */
    const tgf_config *cfg;
    replay_filter *replay;              /* NULL when anti-replay is off */
    site_store *site;                   /* the site's TLS answer; NULL: default */
    secret_usage *usage;                /* per-secret numbers and limits */
    const dc_addr *front_addrs;         /* the fronting target, resolved */
    size_t front_count;
    /* The connection was fronted: it no longer counts as a Telegram client. */
    void (*on_fronted)(void *owner, conn *c);
    /* The connection wants conn_wake at (or soon after) at_ms: a wait
     * shorter than a tick. */
    void (*wake_at)(void *owner, conn *c, uint64_t at_ms);
    /* The connection has closed: its descriptors and blocks are released.
     * Free its memory after the current event batch. */
    void (*on_closed)(void *owner, conn *c);
    void *owner;
} conn_env;

size_t conn_size(void);

/* Builds a connection in mem (conn_size() bytes) for an accepted,
 * non-blocking fd, which it now owns. over_limit: over the concurrency
 * limit, so fronted without inspection (after an inbound PROXY header, when
 * the listener expects one). Returns mem as a conn. The env must outlive it.
 * If the connection closes at once, on_closed has already run on return. */
conn *conn_start(void *mem, const conn_env *env, int fd, const struct sockaddr *addr,
                 socklen_t len, int over_limit);

/* After on_closed, before freeing the memory: gives back what the
 * connection held for its whole life (its configuration). */
void conn_release(conn *c);

/* Timers and retries after memory ran out: call on every tick. */
void conn_tick(conn *c, uint64_t now_ms);

/* The time asked for with env->wake_at has come. */
void conn_wake(conn *c, uint64_t now_ms);

/* Closes with reason (idempotent; the first reason sticks). */
void conn_close(conn *c, close_reason reason);

#endif
