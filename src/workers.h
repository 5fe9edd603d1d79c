/* workers: runs `workers` event loops (server.h), one per thread, on one
 * shared listener and one replay filter. Worker 0 runs in the calling
 * thread, hears the signals and serves stats; SIGTERM reaches the others
 * through their control eventfd (server_post). */
#ifndef TGF_WORKERS_H
#define TGF_WORKERS_H

#include <stddef.h>

#include "config.h"

/* The number of workers cfg asks for: cfg->workers, or with 0 the CPUs this
 * process may run on (sched_getaffinity: a container's cpuset counts). */
size_t workers_count(const tgf_config *cfg);

/* Starts the workers; after_init (may be NULL) runs once every listener is
 * open and before any connection is served: dropping root and reporting
 * readiness belong there. It returns 0 to go on. Returns the exit code:
 * after_init's failure or a start-up error gives `usage_rc`. */
int workers_run(const tgf_config *cfg, int (*after_init)(void *ctx), void *ctx, int usage_rc);

#endif
