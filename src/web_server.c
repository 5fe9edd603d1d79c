/* web_server: listener, capabilities, sessions. */
#include "web_server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config_ref.h"
#include "crypto.h"
#include "dc.h"
#include "log.h"
#include "netutil.h"

#define WEB_BACKLOG 256
#define WEB_ACCEPT_BATCH 32

static void defer_free(void *owner, void *mem)
{
    web_server *w = owner;
    if (w->ngraves == w->graves_cap) {
        size_t cap = w->graves_cap ? w->graves_cap * 2 : 64;
        void **g = realloc(w->graves, cap * sizeof *g);
        if (!g) {
            /* Leak rather than free under a live event: very unlikely. */
            log_warn("web", "out of memory for the free list");
            return;
        }
        w->graves = g;
        w->graves_cap = cap;
    }
    w->graves[w->ngraves++] = mem;
}

static void on_closed(void *owner, web_session *s)
{
    web_server *w = owner;
    web_link *l = web_session_link(s);
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = NULL;
    w->open--;
}

static void update_accept(web_server *w)
{
    if (w->listener.fd < 0)
        return;
    /* Each session may hold a socket per stream: keep room under the cap. */
    uint32_t want = w->paused || w->open >= 4u * w->cfg->web.max_sessions ? 0 : LOOP_IN;
    if (loop_watch_set(w->loop, &w->listener, want) < 0)
        log_warn("web", "epoll_ctl on the web listener: %s", strerror(errno));
}

static void on_listener(loop_watch *lw, uint32_t ev)
{
    web_server *w = lw->ctx;
    (void)ev;
    for (int i = 0; i < WEB_ACCEPT_BATCH && w->listener.fd >= 0 && !w->paused; i++) {
        struct sockaddr_storage a;
        socklen_t len = sizeof a;
        int fd = accept4(w->listener.fd, (struct sockaddr *)&a, &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log_warn("web", "accept: %s; pausing accepts", strerror(errno));
                w->paused = 1;
            }
            break;
        }
        web_session *s = web_session_start(&w->env, fd, (struct sockaddr *)&a, len);
        if (!s) {
            log_warn("web", "out of memory for a session");
            w->metrics->web.ended[WEB_END_NO_MEMORY]++;
            continue;
        }
        web_link *l = web_session_link(s);
        l->next = w->active.next;
        l->prev = &w->active;
        w->active.next->prev = l;
        w->active.next = l;
        w->open++;
        web_session_run(s);   /* may close it at once: it is linked now */
    }
    update_accept(w);
}

void web_server_init_off(web_server *w, loop *l)
{
    memset(w, 0, sizeof *w);
    w->listener.fd = -1;
    w->active.next = w->active.prev = &w->active;
    w->loop = l;
}

/* Every secret's link: the key alone or dd + key both derive a
 * capability (Telegram Desktop hashes the bytes as the link has them).
 * caps[2i] and caps[2i + 1] are secrets[i]'s (web_session.c relies on it). */
static void build_caps(web_server *w, const tgf_config *cfg)
{
    uint8_t sec[17];
    sec[0] = 0xdd;
    crypto_wipe(w->caps, sizeof w->caps);
    w->ncaps = 0;
    for (size_t i = 0; i < cfg->secret_count && w->ncaps + 2 <= WEB_CAPS_MAX; i++) {
        const uint8_t *key = cfg->secret_keys[i];
        memcpy(sec + 1, key, 16);
        web_cap_entry *e = &w->caps[w->ncaps];
        web_cap_compute(sec + 1, 16, w->host, e[0].cap);
        memcpy(e[0].key, key, 16);
        e[0].kind = WEB_CAP_PLAIN;
        web_cap_compute(sec, 17, w->host, e[1].cap);
        memcpy(e[1].key, key, 16);
        e[1].kind = WEB_CAP_PADDED;
        w->ncaps += 2;
    }
    crypto_wipe(sec, sizeof sec);
}

int web_server_init(web_server *w, loop *l, const tgf_config *cfg, metrics *m, char *err,
                    size_t err_cap)
{
    memset(w, 0, sizeof *w);
    w->listener.fd = -1;
    w->active.next = w->active.prev = &w->active;
    w->loop = l;
    w->cfg = cfg;
    w->metrics = m;
    if (!cfg->web.enabled)
        return 0;
    const char *host = cfg->web.host[0] ? cfg->web.host : cfg->secret.host;
    size_t hl = strlen(host);
    if (hl >= sizeof w->host) {
        snprintf(err, err_cap, "[web]: the host '%s' is too long", host);
        return -1;
    }
    for (size_t i = 0; i <= hl; i++)
        w->host[i] = host[i] >= 'A' && host[i] <= 'Z' ? (char)(host[i] + 32) : host[i];

    build_caps(w, cfg);
    web_tokens_init(&w->tokens);

    w->env = (web_env){ .loop = l, .metrics = m, .cfg = cfg, .tokens = &w->tokens,
                        .caps = w->caps, .ncaps = w->ncaps, .host = w->host,
                        .carriers = &w->carriers, .limits = &w->limits,
                        .defer_free = defer_free,
                        .on_closed = on_closed, .owner = w };

    char addr[80];
    dc_format_addr((const struct sockaddr *)&cfg->web.bind_addr, addr, sizeof addr);
    int fd = net_listen((const struct sockaddr *)&cfg->web.bind_addr, cfg->web.bind_len,
                        WEB_BACKLOG);
    if (fd < 0) {
        snprintf(err, err_cap, "cannot listen on %s ([web] bind-to): %s", addr, strerror(errno));
        return -1;
    }
    w->listener = (loop_watch){ .fd = fd, .fn = on_listener, .ctx = w };
    update_accept(w);
    log_info("main", "WEB proxy bridge for %s on http://%s (carrier %s)", w->host, addr,
             cfg->web.ws_path);
    return 0;
}

void web_server_share(web_server *w, secret_usage *usage, atomic_size_t *inspected)
{
    w->limits.usage = usage;
    w->limits.inspected = inspected;
}

void web_server_tick(web_server *w, uint64_t now_ms)
{
    for (web_link *l = w->active.next, *next; l != &w->active; l = next) {
        next = l->next;
        web_session_tick(web_session_of(l), now_ms);
    }
    if (w->paused) {
        w->paused = 0;
        update_accept(w);
    }
}

void web_server_reap(web_server *w)
{
    for (size_t i = 0; i < w->ngraves; i++)
        free(w->graves[i]);
    w->ngraves = 0;
    update_accept(w);
}

void web_server_stop_listening(web_server *w)
{
    if (w->listener.fd >= 0) {
        loop_watch_remove(w->loop, &w->listener);
        close(w->listener.fd);
        w->listener.fd = -1;
    }
    for (web_link *l = w->active.next, *next; l != &w->active; l = next) {
        next = l->next;
        web_session_end(web_session_of(l), WEB_END_SHUTDOWN);
    }
}

size_t web_server_open(const web_server *w) { return w->open; }

void web_server_close_all(web_server *w)
{
    if (!w->active.next)
        return;
    web_server_stop_listening(w);
    /* The first end starts the closing handshake, the second cuts it. */
    for (web_link *l = w->active.next, *next; l != &w->active; l = next) {
        next = l->next;
        web_session_end(web_session_of(l), WEB_END_SHUTDOWN);
        web_session_end(web_session_of(l), WEB_END_SHUTDOWN);
    }
}

/* A reload: new bridge pages and carriers follow the new secrets (a
 * removed one stops opening carriers, as it stops FakeTLS clients); open
 * carriers keep the key they started with (web_session's copy). Tokens
 * name an entry of the old table, so they go when the table changes: a
 * client between its page and its carrier loads the page again. */
void web_server_apply_config(web_server *w, const tgf_config *cfg)
{
    if (w->listener.fd < 0 || w->cfg == NULL)
        return;   /* no WEB listener here (or it is draining): nothing to rebuild */
    web_cap_entry *old = malloc(sizeof w->caps);
    size_t old_n = w->ncaps;
    if (old)
        memcpy(old, w->caps, sizeof w->caps);
    build_caps(w, cfg);
    if (!old || old_n != w->ncaps || memcmp(old, w->caps, old_n * sizeof *old) != 0)
        web_tokens_init(&w->tokens);
    if (old) {
        crypto_wipe(old, sizeof w->caps);
        free(old);
    }
    const tgf_config *prev = w->held_cfg;
    w->cfg = w->held_cfg = config_ref_hold(cfg);
    w->env.cfg = cfg;
    w->env.ncaps = w->ncaps;
    config_ref_drop(prev);
}

void web_server_destroy(web_server *w)
{
    if (!w->active.next)
        return;
    web_server_close_all(w);
    web_server_reap(w);
    free(w->graves);
    w->graves = NULL;
    crypto_wipe(w->caps, sizeof w->caps);
    config_ref_drop(w->held_cfg);
    w->held_cfg = NULL;
}
