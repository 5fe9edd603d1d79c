/* server: start-up checks, the accept path, timers, signals and the drain. */
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config_ref.h"
#include "crypto.h"
#include "fdlimit.h"
#include "log.h"
#include "netutil.h"
#include "reload.h"
#include "stats.h"

#define SERVER_BACKLOG 1024
#define SERVER_ACCEPT_BATCH 64
#define POOL_KEEP_BLOCKS 256
/* Below this many handshakes a second over a timestamp's lifetime, the
 * replay filter's memory is too short for the tolerated skew. */
#define SERVER_REPLAY_MIN_RATE 100.0

/* The fronting target must never be ourselves: every probe would be fronted
 * back to our own listener, which fronts it again, forever (mtg issues #490,
 * #507). */
static int check_fronting_loop(const tgf_config *cfg, const dc_addr *addrs, size_t count,
                               char *err, size_t err_cap)
{
    const struct sockaddr *bind = (const struct sockaddr *)&cfg->bind_addr;
    uint16_t bind_port = net_port(bind);
    for (size_t i = 0; i < count; i++) {
        const struct sockaddr *t = (const struct sockaddr *)&addrs[i].addr;
        if (net_port(t) != bind_port)
            continue;
        int ours;
        if (net_is_wildcard(bind))
            /* An IPv4 wildcard does not receive IPv6; an IPv6 one is dual stack. */
            ours = (bind->sa_family == AF_INET6 || t->sa_family == AF_INET ||
                    net_is_v4mapped(t)) && net_is_own_address(t);
        else
            ours = net_same_ip(t, bind);
        /* Behind NAT the public address forwards to us on the same port. */
        for (int f = 0; f < 2 && !ours; f++) {
            int have = f ? cfg->have_public_ipv6 : cfg->have_public_ipv4;
            const struct sockaddr_storage *pub = f ? &cfg->public_ipv6 : &cfg->public_ipv4;
            if (have)
                ours = net_same_ip(t, (const struct sockaddr *)pub);
        }
        if (ours) {
            char a[80];
            dc_format_addr(t, a, sizeof a);
            snprintf(err, err_cap,
                     "fronting loop: the fronting target %s is this proxy's own listener "
                     "(bind-to port %u); every non-proxy connection would be fronted back to "
                     "tgfront itself. Point [domain-fronting] host/ip and port at the real web "
                     "server (for example host = \"127.0.0.1\", port = 8443)",
                     a, (unsigned)bind_port);
            return -1;
        }
    }
    return 0;
}

int server_resolve_fronting(const tgf_config *cfg, dc_addr *out, size_t cap, char *err,
                            size_t err_cap)
{
    const char *host = cfg->fronting_host[0] ? cfg->fronting_host : cfg->secret.host;
    char rerr[300];
    int n = net_resolve(host, cfg->fronting_port, out, cap, rerr, sizeof rerr);
    if (n < 0) {
        snprintf(err, err_cap, "fronting target: %s (set [domain-fronting] host or ip)", rerr);
        return -1;
    }
    if (check_fronting_loop(cfg, out, (size_t)n, err, err_cap) < 0)
        return -1;
    return n;
}

/* A connection and the server's bookkeeping for it, in one allocation: the
 * connection's memory is the server's (conn_start builds it in place). */
typedef struct server_slot {
    struct server_slot *prev, *next;
    struct server_slot *wake_next;    /* on the wake list */
    server *srv;
    unsigned counted : 1;             /* holds a concurrency slot */
    unsigned waking : 1;              /* on the wake list */
    _Alignas(max_align_t) unsigned char conn[];
} server_slot;

static server_slot *slot_of(conn *c)
{
    return (server_slot *)(void *)((unsigned char *)c - offsetof(server_slot, conn));
}

static conn *conn_of(server_slot *sl) { return (conn *)(void *)sl->conn; }

static void on_listener(loop_watch *w, uint32_t ev);

/* Accepting stops while the descriptors could not carry one more
 * connection (two each), or after EMFILE until the next tick. */
static void update_accept(server *s)
{
    if (s->listener.fd < 0)
        return;
    uint32_t want = s->accept_paused || s->open_conns >= s->conn_cap ? 0 : LOOP_IN;
    if (loop_watch_set(&s->loop, &s->listener, want) < 0)
        log_warn("main", "epoll_ctl on listener: %s", strerror(errno));
}

static void on_conn_fronted(void *owner, conn *c)
{
    server *s = owner;
    server_slot *sl = slot_of(c);
    /* The concurrency limit counts connections we inspect or relay to
     * Telegram; website visitors must not use up Telegram's slots. */
    if (sl->counted) {
        sl->counted = 0;
        s->inspected--;
    }
}

/* Connections waiting less than a tick (loop_wake_at); a short list. */
static void on_conn_wake_at(void *owner, conn *c, uint64_t at_ms)
{
    server *s = owner;
    server_slot *sl = slot_of(c);
    if (!sl->waking) {
        sl->waking = 1;
        sl->wake_next = s->waking;
        s->waking = sl;
    }
    loop_wake_at(&s->loop, at_ms);
}

static void unlink_waking(server *s, server_slot *sl)
{
    for (server_slot **p = &s->waking; *p; p = &(*p)->wake_next)
        if (*p == sl) {
            *p = sl->wake_next;
            break;
        }
    sl->waking = 0;
}

static void on_wake(loop *l, void *ctx)
{
    server *s = ctx;
    server_slot *list = s->waking;
    s->waking = NULL;
    while (list) {
        server_slot *sl = list;
        list = sl->wake_next;
        sl->waking = 0;
        conn_wake(conn_of(sl), l->now_ms);   /* may ask again */
    }
}

static void on_conn_closed(void *owner, conn *c)
{
    server *s = owner;
    server_slot *sl = slot_of(c);
    if (sl->waking)
        unlink_waking(s, sl);
    on_conn_fronted(owner, c);
    s->open_conns--;
    if (sl->prev)
        sl->prev->next = sl->next;
    else
        s->active = sl->next;
    if (sl->next)
        sl->next->prev = sl->prev;
    sl->prev = NULL;
    sl->next = s->dead;
    s->dead = sl;
    update_accept(s);
}

static void reap(server *s)
{
    while (s->dead) {
        server_slot *sl = s->dead;
        s->dead = sl->next;
        conn_release(conn_of(sl));
        free(sl);
    }
}

static void close_all(server *s, close_reason why)
{
    for (server_slot *sl = s->active, *next; sl; sl = next) {
        next = sl->next;
        conn_close(conn_of(sl), why);
    }
}

static void on_tick(loop *l, void *ctx)
{
    server *s = ctx;
    uint64_t now = l->now_ms;
    s->metrics.memory_waits = s->pool.cap_hits;
    for (server_slot *sl = s->active, *next; sl; sl = next) {
        next = sl->next;
        conn_tick(conn_of(sl), now);
    }
    stats_tick(&s->stats, now);
    if (s->accept_paused) {
        s->accept_paused = 0;
        update_accept(s);
    }
    if (s->draining) {
        if (now >= s->drain_deadline_ms)
            close_all(s, CLOSE_SHUTDOWN);
        if (!s->active)
            loop_stop(l);
    }
}

static void close_listener(server *s, loop_watch *w)
{
    if (w->fd >= 0) {
        loop_watch_remove(&s->loop, w);
        close(w->fd);
        w->fd = -1;
    }
}

static void begin_drain(server *s, int immediate)
{
    if (s->draining && !immediate)
        immediate = 1;   /* a second signal: stop now */
    if (!s->draining)
        log_info("main", "shutting down: no new connections, %zu open", s->open_conns);
    s->draining = 1;
    s->drain_deadline_ms = immediate ? s->loop.now_ms : s->loop.now_ms + SERVER_DRAIN_MS;
    close_listener(s, &s->listener);
    stats_stop_listening(&s->stats);
    if (!s->active)
        loop_stop(&s->loop);
}

static void on_signal(loop *l, int signo, void *ctx)
{
    server *s = ctx;
    (void)l;
    if (signo == SIGTERM || signo == SIGINT)
        begin_drain(s, 0);
    else if (signo == SIGHUP && !s->draining)
        (void)server_reload(s);
}

void server_apply_config(server *s, const tgf_config *next)
{
    const tgf_config *old = s->cfg;
    s->cfg = config_ref_hold(next);
    s->env.cfg = s->cfg;
    s->stats.cfg = s->cfg;
    config_ref_drop(old);
}

int server_reload(server *s)
{
    char err[512];
    if (s->config_path == NULL) {
        log_warn("main", "SIGHUP: no configuration file to re-read (simple-run); ignored");
        return -1;
    }
    const tgf_config *next = reload_load(s->config_path, s->cfg, s->usage, err, sizeof err);
    if (next == NULL) {
        log_error("main", "reload failed, keeping the running configuration: %s", err);
        return -1;
    }
    log_set_level(next->debug ? LOG_DEBUG : LOG_INFO);
    server_apply_config(s, next);
    config_ref_drop(next);
    char names[400] = "";
    size_t used = 0;
    for (size_t i = 0; i < s->cfg->secret_count && used + 1 < sizeof names; i++) {
        int n = snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                         s->cfg->secrets[i].name);
        used = n < 0 ? used : used + (size_t)n;
    }
    log_info("main", "reloaded %s: %zu secret%s (%s); the connections open now (%zu) keep the "
             "configuration they started with", s->config_path, s->cfg->secret_count,
             s->cfg->secret_count == 1 ? "" : "s", names, s->open_conns);
    return 0;
}

static void after_batch(loop *l, void *ctx)
{
    (void)l;
    reap(ctx);
}

static void accept_one(server *s, int fd, const struct sockaddr *addr, socklen_t len)
{
    server_slot *sl = calloc(1, sizeof *sl + conn_size());
    if (!sl) {
        /* Nothing to front it with: the rest wait in the backlog until the
         * next tick instead of meeting the same fate. */
        log_warn("main", "out of memory for a connection; pausing accepts");
        close(fd);
        s->metrics.closed[CLOSE_NO_MEMORY]++;
        s->accept_paused = 1;
        update_accept(s);
        return;
    }
    sl->srv = s;
    int over_limit = s->inspected >= s->cfg->concurrency;
    if (!over_limit) {
        sl->counted = 1;
        s->inspected++;
    }
    sl->next = s->active;
    if (s->active)
        s->active->prev = sl;
    s->active = sl;
    s->open_conns++;
    conn_start(sl->conn, &s->env, fd, addr, len, over_limit);
}

static void on_listener(loop_watch *w, uint32_t ev)
{
    server *s = w->ctx;
    (void)ev;
    for (int i = 0; i < SERVER_ACCEPT_BATCH && s->listener.fd >= 0 && !s->accept_paused; i++) {
        if (s->open_conns >= s->conn_cap) {
            update_accept(s);   /* the backlog holds the rest until one closes */
            return;
        }
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        int fd = accept4(s->listener.fd, (struct sockaddr *)&addr, &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: stop accepting until the next tick
                 * instead of spinning on a listener that stays readable. */
                log_warn("main", "accept: %s; pausing accepts", strerror(errno));
                s->accept_paused = 1;
                update_accept(s);
            }
            return;
        }
        accept_one(s, fd, (struct sockaddr *)&addr, len);
    }
}

/* Raises the descriptor limit and sizes the connection cap from it: each
 * connection holds two descriptors at most (client, and the fronting target
 * or the DC: the early fronting connection is closed before the DC is
 * dialled), so an accepted connection always gets its second one. */
static void size_descriptors(server *s)
{
    fdlimit_info fl;
    if (fdlimit_raise(&fl) < 0)
        log_warn("main", "cannot raise the descriptor limit: %s", strerror(errno));
    uint64_t soft = fl.soft ? fl.soft : 1024;
    uint64_t reserve = soft / 4 < SERVER_FD_RESERVE ? soft / 4 : SERVER_FD_RESERVE;
    uint64_t cap = soft > reserve + 2 ? (soft - reserve) / 2 : 1;
    s->conn_cap = cap > SIZE_MAX ? SIZE_MAX : (size_t)cap;
    log_info("main", "descriptors: soft limit %llu (was %llu), hard %llu: up to %zu connections",
             (unsigned long long)fl.soft, (unsigned long long)fl.soft_before,
             (unsigned long long)fl.hard, s->conn_cap);
    if (s->conn_cap < s->cfg->concurrency)
        log_warn("main", "the descriptor limit carries %zu connections, fewer than concurrency "
                 "%u: raise the hard limit (docker run --ulimit nofile=N:N, or LimitNOFILE=)",
                 s->conn_cap, s->cfg->concurrency);
}

/* A hello may be replayed for as long as its timestamp passes: up to twice
 * the tolerated skew. The filter must remember it that long. */
static void check_replay_window(const server *s)
{
    uint64_t inserts = replay_memory_inserts(s->replay);
    double window_s = 2.0 * (double)s->cfg->tolerate_skew_ms / 1000.0;
    double rate = window_s > 0 ? (double)inserts / window_s : 1e12;
    log_info("main", "anti-replay remembers a hello for %llu handshakes: up to %.0f/s over the "
             "%.0f s a timestamp stays valid", (unsigned long long)inserts, rate, window_s);
    if (rate < SERVER_REPLAY_MIN_RATE)
        log_warn("main", "tolerate-time-skewness %.0f s is too long for [defense.anti-replay] "
                 "max-size/error-rate: above %.0f handshakes/s a replayed hello may be "
                 "forgotten while it is still valid; shorten the skew or raise max-size",
                 window_s / 2, rate);
}

int server_init(server *s, const tgf_config *cfg, char *err, size_t err_cap)
{
    memset(s, 0, sizeof *s);
    s->loop.epfd = s->loop.sigfd = -1;   /* server_destroy may run before loop_init */
    s->listener.fd = -1;
    s->stats.listener.fd = -1;
    s->cfg = config_ref_copy(cfg);
    s->usage = secret_usage_create();
    if (s->cfg == NULL || s->usage == NULL || secret_usage_prepare(s->usage, s->cfg) < 0) {
        snprintf(err, err_cap, "out of memory for the configuration");
        return -1;
    }
    cfg = s->cfg;
    pool_init(&s->pool, POOL_KEEP_BLOCKS, pool_default_cap());
    metrics_init(&s->metrics);

    const char *front_host = cfg->fronting_host[0] ? cfg->fronting_host : cfg->secret.host;
    int n = server_resolve_fronting(cfg, s->front_addrs, SERVER_MAX_FRONT_ADDRS, err, err_cap);
    if (n < 0)
        return -1;
    s->front_count = (size_t)n;

    if (cfg->antireplay_enabled) {
        s->replay = replay_create(cfg->antireplay_max_size, cfg->antireplay_error_rate);
        if (!s->replay) {
            snprintf(err, err_cap, "cannot create the anti-replay filter (max-size %llu bytes)",
                     (unsigned long long)cfg->antireplay_max_size);
            return -1;
        }
        check_replay_window(s);
    }
    size_descriptors(s);

    if (loop_init(&s->loop, SERVER_TICK_MS) < 0) {
        snprintf(err, err_cap, "event loop: %s", strerror(errno));
        return -1;
    }
    s->loop.on_tick = on_tick;
    s->loop.on_signal = on_signal;
    s->loop.after_batch = after_batch;
    s->loop.on_wake = on_wake;
    s->loop.ctx = s;

    char addr[80];
    dc_format_addr((const struct sockaddr *)&cfg->bind_addr, addr, sizeof addr);
    int fd = net_listen((const struct sockaddr *)&cfg->bind_addr, cfg->bind_len, SERVER_BACKLOG);
    if (fd < 0) {
        snprintf(err, err_cap, "cannot listen on %s (bind-to): %s", addr, strerror(errno));
        return -1;
    }
    s->listener.fd = fd;
    s->listener.fn = on_listener;
    s->listener.ctx = s;
    s->env = (conn_env){ .loop = &s->loop, .pool = &s->pool, .metrics = &s->metrics,
                         .cfg = cfg, .replay = s->replay, .usage = s->usage,
                         .front_addrs = s->front_addrs,
                         .front_count = s->front_count, .on_fronted = on_conn_fronted,
                         .wake_at = on_conn_wake_at,
                         .on_closed = on_conn_closed, .owner = s };
    update_accept(s);

    s->metrics_list[0] = &s->metrics;
    if (cfg->prometheus_enabled &&
        stats_open(&s->stats, &s->loop, cfg, s->metrics_list, 1, err, err_cap) < 0)
        return -1;
    s->stats.usage = s->usage;

    char faddr[80];
    dc_format_addr((const struct sockaddr *)&s->front_addrs[0].addr, faddr, sizeof faddr);
    log_info("main", "listening on %s; fronting to %s (%s)%s; anti-replay %s; AES %s", addr,
             front_host, faddr, cfg->fronting_proxy_protocol ? " with PROXY v2" : "",
             s->replay ? "on" : "off", crypto_aes_impl());
    return 0;
}

int server_run(server *s)
{
    if (loop_run(&s->loop) < 0) {
        log_error("main", "event loop failed: %s", strerror(errno));
        return 1;
    }
    log_info("main", "stopped");
    return 0;
}

void server_destroy(server *s)
{
    close_all(s, CLOSE_SHUTDOWN);
    reap(s);
    stats_close(&s->stats);
    if (s->listener.fd >= 0)
        close(s->listener.fd);
    loop_close(&s->loop);
    if (s->replay)
        replay_destroy(s->replay);
    pool_destroy(&s->pool);
    secret_usage_destroy(s->usage);
    config_ref_drop(s->cfg);
    s->usage = NULL;
    s->cfg = NULL;
}
