/* workers: runs `workers` event loops (server.h), one per thread, on one
 * shared listener and one replay filter. Worker 0 runs in the calling
 * thread, hears the signals and serves stats; SIGTERM reaches the others
 * through their control eventfd (server_post). */
#ifndef TGF_WORKERS_H
#define TGF_WORKERS_H

#include <stddef.h>

#include "config.h"
#include "server.h"

/* The number of workers cfg asks for: cfg->workers, or with 0 the CPUs this
 * process may run on (sched_getaffinity: a container's cpuset counts). */
size_t workers_count(const tgf_config *cfg);

typedef struct workers_opts {
    /* Runs once every listener is open and before any connection is
     * served (dropping root, reporting readiness, starting the site
     * prober belong there); returns 0 to go on. May be NULL. */
    int (*after_init)(void *ctx, const server_shared *sh);
    void *ctx;
    int usage_rc;                 /* the exit code of a start-up error */
    const char *config_path;      /* SIGHUP re-reads it; NULL: reload refused */
    site_store *site;             /* the site's learned TLS answer; NULL: default shape */
} workers_opts;

/* Starts the workers. Returns the exit code: after_init's failure or a
 * start-up error gives o->usage_rc. */
int workers_run(const tgf_config *cfg, const workers_opts *o);

#endif
