/* server: one event loop's state: its connection list, buffer pool,
 * metrics, wake list and control channel. What all event loops share (the
 * listener, the replay filter, the fronting target, the descriptor budget
 * and the concurrency count) is a server_shared that workers.c owns; one
 * server per worker thread (workers.h). */
#ifndef TGF_SERVER_H
#define TGF_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"
#include "iplists.h"
#include "loop.h"
#include "metrics.h"
#include "pool.h"
#include "replay.h"
#include "secret_usage.h"
#include "stats.h"
#include "web_server.h"

#define SERVER_MAX_FRONT_ADDRS 8
#define SERVER_DRAIN_MS 3000       /* SIGTERM: time given to open connections;
                                      * below s6's 5 s kill timeout in the image */
#define SERVER_TICK_MS 200

#define SERVER_FD_RESERVE 64          /* listeners, epoll, signalfd, stats, logs */

/* Control bits one loop posts to another (server_post); the receiving
 * loop acts on them in its own thread. */
#define SERVER_CTL_DRAIN     0x01u   /* SIGTERM: stop accepting, drain */
#define SERVER_CTL_DRAIN_NOW 0x02u   /* a second SIGTERM: close everything now */
#define SERVER_CTL_ACCEPT    0x04u   /* re-check whether to accept (a peer paused) */
#define SERVER_CTL_SNAPSHOT  0x08u   /* publish a metrics snapshot (a scrape) */
#define SERVER_CTL_CONFIG    0x10u   /* adopt shared->next_cfg (reload) */

struct server_slot;
struct server;

/* Shared by every worker; the fields after the first block are touched by
 * several threads and are atomics or under snap_lock. */
typedef struct server_shared {
    const tgf_config *cfg;            /* the start-up config (a config_ref reference) */
    replay_filter *replay;            /* NULL when anti-replay is off; thread-safe */
    dc_addr front_addrs[SERVER_MAX_FRONT_ADDRS];
    size_t front_count;
    size_t conn_cap;                  /* open connections the descriptors carry, all workers */
    size_t pool_cap;                  /* bytes each worker's pool may hand out */
    int listen_fd;                    /* one listener (EPOLLEXCLUSIVE), -1 with reuseport */
    int reuseport;                    /* one SO_REUSEPORT listener per worker instead */
    int no_balance;                   /* EPOLLEXCLUSIVE alone, no share check */
    size_t count;                     /* workers */
    struct server **servers;          /* [count]; [0] runs signals and stats */

    atomic_size_t open_total;         /* open connections, all workers */
    atomic_size_t inspected_total;    /* counted by concurrency, all workers */
    atomic_int listen_refs;           /* workers still watching listen_fd */
    atomic_size_t running;            /* workers whose loop has not ended */
    const tgf_config *next_cfg;       /* a reload's config (a reference), under cfg_lock;
                                       * SERVER_CTL_CONFIG makes each worker adopt it */
    pthread_mutex_t cfg_lock;
    const char *config_path;          /* re-read on SIGHUP; NULL: reload refused */
    secret_usage *usage;              /* per-secret numbers and limits, all workers */
    site_store *site;                 /* the site's learned TLS answer; NULL: default */

    /* Metrics: each worker owns its counters; a scrape asks every worker
     * for a snapshot and sums them (stats.c), so no counter is shared. */
    pthread_mutex_t snap_lock;
    pthread_cond_t snap_cond;
} server_shared;

typedef struct server {
    loop loop;
    const tgf_config *cfg;            /* a config_ref reference; new connections get it */
    server_shared *shared;
    size_t index;                     /* worker number; 0 runs signals and stats */
    pool pool;
    metrics metrics;
    conn_env env;                     /* what every connection is given */

    loop_watch listener;              /* fd: the shared listener or our own */
    loop_watch ctl;                   /* eventfd: server_post wakes us */
    atomic_uint ctl_pending;          /* SERVER_CTL_* bits posted */
    atomic_size_t open_published;     /* open_conns, for the other workers' balance */
    web_server web;                   /* [web]: the WEB proxy listener (worker 0; off: fd -1) */

    stats_endpoint stats;             /* worker 0 only; listener fd -1 when off */
    const metrics **metrics_list;     /* [shared->count] snapshots the scrape sums */
    metrics snap;                     /* under shared->snap_lock */
    uint64_t snap_gen;                /* bumped with each snapshot */
    int snap_final;                   /* loop ended: snap is final */
    iplists lists;                    /* [defense.blocklist], [defense.allowlist]: worker
                                       * 0's loads them, the others share them
                                       * (each swaps in refreshes on its own) */
    dc_addr proxy_addrs[CONFIG_MAX_PROXIES];   /* [network] proxies, resolved */

    struct server_slot *active;       /* doubly linked */
    struct server_slot *dead;         /* closed, freed after the event batch */
    struct server_slot *waking;       /* asked for conn_wake before the next tick */
    size_t open_conns;                /* this worker's */

    int accept_paused;                /* EMFILE/ENFILE: resumed on a tick */
    int draining;
    uint64_t drain_deadline_ms;
} server;

/* Resolves the fronting target, refuses a fronting loop, sizes the
 * descriptor budget for all workers, opens the shared listener, creates the
 * replay filter. err gets one line on failure. server_shared_destroy may
 * run after a failure. */
int server_shared_init(server_shared *sh, const tgf_config *cfg, size_t workers, char *err,
                       size_t err_cap);
void server_shared_destroy(server_shared *sh);
/* The reload hook: hands cfg to every worker, which uses it for the
 * connections it accepts from then on (SERVER_CTL_CONFIG). Callable from
 * any worker; cfg must outlive every connection accepted under it. */
void server_shared_adopt_config(server_shared *sh, const tgf_config *cfg);

/* Resolves the fronting target ([domain-fronting] host/ip, else the secret's
 * hostname) and refuses a target that is this proxy itself. Returns the
 * address count, or -1 with err set. Blocking (start-up and doctor only). */
int server_resolve_fronting(const tgf_config *cfg, dc_addr *out, size_t cap, char *err,
                            size_t err_cap);
/* The fronting-loop check alone, on resolved addresses (doctor). 0, or -1
 * with the explanation in err. */
int server_check_fronting_loop(const tgf_config *cfg, const dc_addr *addrs, size_t count,
                               char *err, size_t err_cap);

/* Reload (SIGHUP). server_shared_init copies cfg into a reference-counted
 * config (config_ref.h); every connection holds the one it was accepted with
 * until it is freed, so established connections run to their natural end
 * with their old secret, limits and timeouts, and the last one out frees
 * the old config.
 *
 * Worker 0 hears SIGHUP and reads the file once (reload_load in reload.h,
 * which keeps the restart-only keys and prepares the secrets' usage
 * slots); server_shared_adopt_config hands it to every worker, and each
 * calls server_apply_config on its own thread (it is not locked against
 * the loop). Each loop takes its own reference. The secret_usage table
 * and the replay filter are shared and unchanged. */
void server_apply_config(server *s, const tgf_config *next);
/* Re-reads shared->config_path and hands it to every worker; an invalid file is logged with
 * its error and the running configuration stays. 0 or -1. */
int server_reload(server *s);

/* One worker's loop on sh; sh->servers[index] must be s. Worker 0 also
 * receives the signals and serves stats. Call from the thread that starts
 * the workers, before any worker runs (signals must be blocked before
 * threads start). Returns 0, or -1 with err. */
int server_init(server *s, server_shared *sh, size_t index, char *err, size_t err_cap);

/* Posts SERVER_CTL_* bits to s from any thread. */
void server_post(server *s, unsigned bits);

/* Runs s's loop until the drain is done (worker 0: SIGTERM/SIGINT reach
 * every worker through it). Returns the exit code. */
int server_run(server *s);
/* s will not run (its thread did not start): the others stop counting
 * on it to take connections, and it lets go of the shared listener. */
void server_never_run(server *s);
void server_destroy(server *s);

#endif
