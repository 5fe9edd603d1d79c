/* stats: the Prometheus endpoint ([stats.prometheus]): a tiny HTTP/1.0
 * responder on its own listener, served by the same event loop. It is
 * given what it renders (the metrics objects and the config), never the
 * server. */
#ifndef TGF_STATS_H
#define TGF_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "loop.h"
#include "metrics.h"
#include "secret_usage.h"

struct stats_conn;

typedef struct {
    loop *loop;
    const tgf_config *cfg;
    const metrics *const *metrics;   /* summed when rendered */
    size_t metrics_count;
    const secret_usage *usage;       /* per-secret numbers; NULL: none */
    loop_watch listener;             /* fd -1 when closed */
    struct stats_conn *conns;        /* scrapes in progress */
    int paused;                      /* EMFILE: resumed on the next tick */
} stats_endpoint;

/* Listens on cfg->prometheus_bind. Returns 0, or -1 with one line in err. */
int stats_open(stats_endpoint *st, loop *l, const tgf_config *cfg, const metrics *const *ms,
               size_t n, char *err, size_t err_cap);
/* Closes scrapes that took too long and resumes a paused listener (call on
 * every tick). */
void stats_tick(stats_endpoint *st, uint64_t now_ms);
/* Stops listening; scrapes in progress may finish. */
void stats_stop_listening(stats_endpoint *st);
/* Closes the listener and every scrape. */
void stats_close(stats_endpoint *st);

#endif
