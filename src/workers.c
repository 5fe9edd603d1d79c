/* workers: start-up and shutdown of the event loops. Every loop is built in
 * the calling thread (so a start-up error is reported before anything
 * runs, and signals are blocked before any thread exists), then threads
 * 1..N-1 run their loops while this thread runs worker 0's. */
#include "workers.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "server.h"

/* musl's default thread stack is 128 KiB; the connection code and the
 * crypto it calls were written for a main thread's stack. */
#define WORKERS_STACK (1u << 20)

size_t workers_count(const tgf_config *cfg)
{
    if (cfg->workers)
        return cfg->workers;
    cpu_set_t set;
    int n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
    if (n < 1)
        n = 1;
    return n > CONFIG_WORKERS_MAX ? CONFIG_WORKERS_MAX : (size_t)n;
}

static void *worker_main(void *arg)
{
    server *s = arg;
    intptr_t rc = server_run(s);
    return (void *)rc;
}

int workers_run(const tgf_config *cfg, const workers_opts *o)
{
    int usage_rc = o->usage_rc;
    size_t n = workers_count(cfg);
    static server_shared sh;
    char err[512];
    int rc = usage_rc;
    pthread_t *threads = calloc(n, sizeof *threads);
    server **servers = calloc(n, sizeof *servers);
    size_t built = 0, started = 0;
    if (!threads || !servers) {
        fprintf(stderr, "tgfront: out of memory for %zu workers\n", n);
        free(threads);
        free(servers);
        return usage_rc;
    }
    if (server_shared_init(&sh, cfg, n, err, sizeof err) < 0)
        goto fail;
    sh.servers = servers;
    sh.config_path = o->config_path;
    sh.site = o->site;
    for (size_t i = 0; i < n; i++)
        if (!(servers[i] = calloc(1, sizeof *servers[i]))) {
            snprintf(err, sizeof err, "out of memory for %zu workers", n);
            goto fail;
        }
    for (; built < n; built++)
        if (server_init(servers[built], &sh, built, err, sizeof err) < 0) {
            built++;   /* partly built: destroyed below */
            goto fail;
        }
    if (o->after_init && o->after_init(o->ctx, &sh) != 0)
        goto out;
    atomic_store(&sh.running, n);
    rc = 0;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, WORKERS_STACK);
    for (started = 1; started < n; started++) {
        int e = pthread_create(&threads[started], &attr, worker_main, servers[started]);
        if (e != 0) {
            /* Fewer loops still serve: the shared listener reaches them all. */
            log_error("main", "cannot start worker %zu: %s; running %zu", started, strerror(e),
                      started);
            atomic_fetch_sub(&sh.running, n - started);
            for (size_t j = started; j < n; j++)
                server_never_run(servers[j]);
            break;
        }
    }
    pthread_attr_destroy(&attr);
    rc = server_run(servers[0]);
    for (size_t i = 1; i < started; i++) {
        void *wrc = NULL;
        pthread_join(threads[i], &wrc);
        if (wrc)
            rc = 1;
    }
    goto out;
fail:
    fprintf(stderr, "tgfront: %s\n", err);
out:
    for (size_t i = 0; i < built; i++)
        server_destroy(servers[i]);
    for (size_t i = 0; i < n; i++)
        free(servers[i]);
    server_shared_destroy(&sh);
    free(threads);
    free(servers);
    return rc;
}
