/* web_limits: the FakeTLS path's limits on the WEB proxy: a named secret's
 * max-connections, expiry and quota ([secret-limits.NAME]), and the
 * daemon's concurrency.
 *
 * What "one connection" is over WEB: one v1 stream. A FakeTLS connection
 * carries one MTProto connection to one DC; Telegram Desktop turns each of
 * its TCP connections (main, media, upload; per DC) into one stream of its
 * one carrier, and each stream is one socket to a DC here. So a stream
 * takes one of its secret's max-connections and one slot of the daemon's
 * concurrency from its OPEN to its end (the handshake timeout for its
 * init, the idle timeout once it relays: web_stream_tick), and the bytes
 * it relays count toward the secret's traffic and quota. The bridge page
 * and the carrier take nothing (they carry no Telegram connection, and a
 * page that opens no stream must not hold a slot), but a secret that could
 * not take a stream now (expired, at max-connections, quota used up) gets
 * the site's answer for them, as its FakeTLS client is fronted. As on the
 * FakeTLS path, the quota is checked when a stream opens: an open one is
 * not cut.
 *
 * Sessions run in one loop (worker 0's), but the usage table and the
 * concurrency count are the whole process's (atomics, shared with the
 * FakeTLS connections of every loop). */
#ifndef TGF_WEB_LIMITS_H
#define TGF_WEB_LIMITS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "secret_usage.h"
#include "web_metrics.h"

/* One refusal log line per this many milliseconds: a WebView whose
 * streams are refused opens new ones at once, and each try would log. */
#define WEB_LIMITS_LOG_MS 10000

typedef struct {
    secret_usage *usage;          /* per-secret numbers; NULL: not counted */
    atomic_size_t *inspected;     /* the daemon's concurrency count; NULL: none */
    uint64_t log_next_ms;         /* the refusal log's rate limit */
    uint64_t log_suppressed;
} web_limits;

/* What a stream holds while it is open (zero: nothing). */
typedef struct {
    usage_slot *sec;              /* one of the secret's connections */
    int counted;                  /* one slot of the concurrency */
} web_limit_hold;

/* The secret of cfg whose key is key (16 bytes), or NULL (a reload
 * removed it). A secret is its key, as on the FakeTLS path: a rename keeps
 * its clients. Every key is compared, each in constant time. */
const config_secret *web_limits_find_key(const tgf_config *cfg, const uint8_t *key);

/* Would a client of s be served now? WEB_LIM_OK, or why not (the refusal
 * counted in the secret's refused metric). Takes nothing. l may be NULL
 * (then only the expiry is checked). */
web_limit web_limits_check(web_limits *l, const config_secret *s, int64_t now_unix);

/* A new stream of s: takes a concurrency slot (while fewer than
 * concurrency are counted) and one of the secret's connections into
 * *hold. WEB_LIM_OK, or why not (nothing held; a secret refusal counted in
 * its refused metric). l may be NULL: only the expiry is checked. */
web_limit web_limits_take(web_limits *l, const config_secret *s, size_t concurrency,
                          int64_t now_unix, web_limit_hold *hold);
/* Gives back what hold holds (idempotent). */
void web_limits_give(web_limits *l, web_limit_hold *hold);
/* Bytes a stream relayed (direction: metrics_direction). */
void web_limits_traffic(const web_limit_hold *hold, int direction, uint64_t bytes);

/* 1 when a refusal may be logged at now_ms, with *suppressed set to the
 * refusals not logged since the last line; 0 when it is only counted. */
int web_limits_log_ok(web_limits *l, uint64_t now_ms, uint64_t *suppressed);

#endif
