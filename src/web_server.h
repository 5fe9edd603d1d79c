/* web_server: the WEB proxy mode's loopback listener and its sessions, in
 * the server's event loop. It holds the capabilities (computed once from
 * the configured secret for the bridge's host), the token store and the
 * session list; web_session.c does the protocol work. */
#ifndef TGF_WEB_SERVER_H
#define TGF_WEB_SERVER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "loop.h"
#include "metrics.h"
#include "web_cap.h"
#include "web_session.h"

#define WEB_CAPS_MAX (2 * CONFIG_SECRETS_MAX)   /* plain and dd for every secret */

typedef struct {
    loop *loop;
    const tgf_config *cfg;
    const tgf_config *held_cfg;   /* a reload's config (config_ref), NULL before one */
    metrics *metrics;
    loop_watch listener;     /* fd -1 when off */
    web_env env;
    web_cap_entry caps[WEB_CAPS_MAX];
    size_t ncaps;
    char host[WEB_HOST_MAX + 1];
    web_tokens tokens;
    web_limits limits;       /* what streams take (web_server_share) */
    web_link active;         /* sentinel of the session list */
    size_t open;
    size_t carriers;
    void **graves;           /* freed after the event batch */
    size_t ngraves, graves_cap;
    int paused;
} web_server;

/* Opens the listener when [web] enabled = true (else does nothing and
 * returns 0). Returns -1 with one line in err. */
int web_server_init(web_server *w, loop *l, const tgf_config *cfg, metrics *m, char *err,
                    size_t err_cap);
/* The daemon's per-secret usage table and concurrency count (both shared
 * with the FakeTLS connections of every loop): WEB streams count against
 * them as FakeTLS connections do. Call after web_server_init; either may
 * be NULL (not counted). */
void web_server_share(web_server *w, secret_usage *usage, atomic_size_t *inspected);
/* A web_server with no listener and no sessions (a worker without one). */
void web_server_init_off(web_server *w, loop *l);
void web_server_tick(web_server *w, uint64_t now_ms);
/* Frees what closed during the event batch (call after every batch). */
void web_server_reap(web_server *w);
/* SIGTERM: stop accepting; sessions end with a close frame. */
void web_server_stop_listening(web_server *w);
/* Closes every session now (their memory is freed at the next reap). */
void web_server_close_all(web_server *w);
/* Sessions still open. */
size_t web_server_open(const web_server *w);
/* Reload: capabilities, limits and timeouts for what opens from now on
 * follow cfg (a config_ref config: held until the next one or destroy);
 * open carriers keep their key, unused tokens are dropped when the
 * capabilities change. The listener and the bridge's host stay. */
void web_server_apply_config(web_server *w, const tgf_config *cfg);
/* Closes everything. */
void web_server_destroy(web_server *w);

#endif
