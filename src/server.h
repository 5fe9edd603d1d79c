/* server: one event loop's shared state: listeners, the connection list, the
 * buffer pool, metrics, the anti-replay filter and the fronting target.
 * Several servers (one per core) can later share the replay filter and
 * render their metrics together; nothing here is global. */
#ifndef TGF_SERVER_H
#define TGF_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"
#include "loop.h"
#include "metrics.h"
#include "pool.h"
#include "replay.h"
#include "secret_usage.h"
#include "stats.h"

#define SERVER_MAX_FRONT_ADDRS 8
#define SERVER_DRAIN_MS 3000       /* SIGTERM: time given to open connections;
                                      * below s6's 5 s kill timeout in the image */
#define SERVER_TICK_MS 200

#define SERVER_FD_RESERVE 64          /* listeners, epoll, signalfd, stats, logs */

struct server_slot;

typedef struct server {
    loop loop;
    const tgf_config *cfg;            /* a config_ref copy; new connections get it */
    const char *config_path;          /* re-read on SIGHUP; NULL: reload refused */
    pool pool;
    metrics metrics;
    replay_filter *replay;            /* NULL when anti-replay is off */
    secret_usage *usage;              /* per-secret numbers and limits: one per
                                       * process (limits hold across loops), so
                                       * several loops share one, like replay */
    conn_env env;                     /* what every connection is given */

    loop_watch listener;
    stats_endpoint stats;             /* listener fd -1 when stats are off */
    const metrics *metrics_list[1];   /* what the stats endpoint sums */

    dc_addr front_addrs[SERVER_MAX_FRONT_ADDRS];
    size_t front_count;

    struct server_slot *active;       /* doubly linked */
    struct server_slot *dead;         /* closed, freed after the event batch */
    struct server_slot *waking;       /* asked for conn_wake before the next tick */
    size_t inspected;                 /* connections counted by concurrency */
    size_t open_conns;
    size_t conn_cap;                  /* open connections the descriptors carry */

    int accept_paused;                /* EMFILE/ENFILE: resumed on a tick */
    int draining;
    uint64_t drain_deadline_ms;
} server;

/* Resolves the fronting target, refuses a fronting loop, opens the listeners
 * (and stats), creates the replay filter. err gets one line on failure. */
int server_init(server *s, const tgf_config *cfg, char *err, size_t err_cap);
/* Resolves the fronting target ([domain-fronting] host/ip, else the secret's
 * hostname) and refuses a target that is this proxy itself. Returns the
 * address count, or -1 with err set. Blocking (start-up and doctor only). */
int server_resolve_fronting(const tgf_config *cfg, dc_addr *out, size_t cap, char *err,
                            size_t err_cap);

/* Reload (SIGHUP). server_init copies cfg into a reference-counted config
 * (config_ref.h); every connection holds the one it was accepted with
 * until it is freed, so established connections run to their natural end
 * with their old secret, limits and timeouts, and the last one out frees
 * the old config.
 *
 * The hook for several event loops: read the file once (reload_load in
 * reload.h, which keeps the restart-only keys and prepares the secrets'
 * usage slots), then call server_apply_config(s, next) once per loop, on
 * that loop's own thread (it is not locked against the loop), then drop
 * the loader's reference with config_ref_drop(next). Each loop takes its
 * own reference. The secret_usage table and the replay filter are shared
 * and unchanged. With one loop, SIGHUP does all of it (server_reload). */
void server_apply_config(server *s, const tgf_config *next);
/* Re-reads s->config_path and applies it; an invalid file is logged with
 * its error and the running configuration stays. 0 or -1. */
int server_reload(server *s);

/* Runs until SIGTERM/SIGINT and the drain are done. Returns the exit code. */
int server_run(server *s);
void server_destroy(server *s);


#endif
