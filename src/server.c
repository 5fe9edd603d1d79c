/* server: start-up checks, the accept path, timers, signals and the drain,
 * for one event loop among several (workers.c starts them). The loops share
 * one listener registered with EPOLLEXCLUSIVE; a loop that holds more than
 * its share of connections steps back from accepting and wakes the others
 * (see over_share), which spreads even a burst of a few long streams. */
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
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <time.h>
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
/* A worker accepts while it holds at most this many connections more than
 * the least loaded worker. */
#define SERVER_BALANCE_SLACK 0
/* How long a scrape waits for the other workers' snapshots. */
#define SERVER_SNAPSHOT_WAIT_MS 200

/* The fronting target must never be ourselves: every probe would be fronted
 * back to our own listener, which fronts it again, forever (mtg issues #490,
 * #507). */
int server_check_fronting_loop(const tgf_config *cfg, const dc_addr *addrs, size_t count,
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
    if (server_check_fronting_loop(cfg, out, (size_t)n, err, err_cap) < 0)
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

void server_post(server *s, unsigned bits)
{
    atomic_fetch_or(&s->ctl_pending, bits);
    uint64_t one = 1;
    /* EAGAIN only when the counter is near overflow: it is readable then. */
    ssize_t n = write(s->ctl.fd, &one, sizeof one);
    (void)n;
}

static void post_others(server *s, unsigned bits)
{
    server_shared *sh = s->shared;
    for (size_t i = 0; i < sh->count; i++)
        if (sh->servers[i] != s)
            server_post(sh->servers[i], bits);
}

/* With one shared listener, a worker holding more connections than the
 * least loaded one plus a little lets the others take the next ones:
 * EPOLLEXCLUSIVE alone wakes the same waiter again and again, and that
 * worker would accept a whole burst (measured in bench/RESULTS.md). */
static int over_share(const server *s)
{
    const server_shared *sh = s->shared;
    if (sh->count < 2 || sh->reuseport || sh->no_balance)
        return 0;
    size_t least = SIZE_MAX;
    for (size_t i = 0; i < sh->count; i++) {
        const server *o = sh->servers[i];
        if (o == s)
            continue;
        /* SIZE_MAX: draining or not running, so not taking its share. */
        size_t n = atomic_load_explicit(&o->open_published, memory_order_relaxed);
        if (n < least)
            least = n;
    }
    return least != SIZE_MAX && s->open_conns > least + SERVER_BALANCE_SLACK;
}

/* Out of the balance: draining, or never started. */
static void leave_balance(server *s)
{
    s->draining = 1;
    atomic_store(&s->open_published, SIZE_MAX);
}

static void set_open(server *s, size_t n)
{
    s->open_conns = n;
    atomic_store_explicit(&s->open_published, s->draining ? SIZE_MAX : n, memory_order_relaxed);
}

/* Accepting stops while the descriptors could not carry one more
 * connection (two each, all workers together), after EMFILE until the next
 * tick, or while this worker holds more than its share. Returns whether
 * the listener is wanted. */
static int update_accept(server *s)
{
    if (s->listener.fd < 0)
        return 0;
    int full = atomic_load(&s->shared->open_total) >= s->shared->conn_cap;
    int share = !full && over_share(s);
    int want = !s->accept_paused && !full && !share;
    int was = s->listener.mask != 0;
    if (loop_watch_set(&s->loop, &s->listener, want ? LOOP_IN : 0) < 0)
        log_warn("main", "epoll_ctl on listener: %s", strerror(errno));
    if (share && was)
        post_others(s, SERVER_CTL_ACCEPT);   /* someone else takes the next ones */
    return want;
}

/* Re-checks and, when accepting, tries the listener at once: with
 * EPOLLEXCLUSIVE the wake-up for a waiting connection may have gone to a
 * worker that stepped back. Never from inside a callback of this loop's
 * accept path (after_batch, tick and control events only). */
static void kick_accept(server *s)
{
    if (update_accept(s))
        on_listener(&s->listener, LOOP_IN);
}

static void release_counted(server *s, server_slot *sl)
{
    if (sl->counted) {
        sl->counted = 0;
        atomic_fetch_sub(&s->shared->inspected_total, 1);
    }
}

static void on_conn_fronted(void *owner, conn *c)
{
    /* The concurrency limit counts connections we inspect or relay to
     * Telegram; website visitors must not use up Telegram's slots. */
    release_counted(owner, slot_of(c));
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
    release_counted(s, sl);
    set_open(s, s->open_conns - 1);
    atomic_fetch_sub(&s->shared->open_total, 1);
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

/* Worker 0 hears the signals, so it keeps running until every other
 * worker has drained (a second SIGTERM must still reach them). */
static atomic_size_t *running_of(server *s);

static void check_drain_done(server *s)
{
    if (!s->draining || s->active || web_server_open(&s->web))
        return;
    if (s->index == 0 && atomic_load(running_of(s)) > 1)
        return;
    loop_stop(&s->loop);
}

static void on_tick(loop *l, void *ctx)
{
    server *s = ctx;
    uint64_t now = l->now_ms;
    s->metrics.memory_waits = s->pool.cap_hits;
    iplists_poll(&s->lists);
    s->metrics.iplist_size[METRICS_BLOCKLIST] = iplists_size(&s->lists, IPLISTS_BLOCK);
    s->metrics.iplist_size[METRICS_ALLOWLIST] = iplists_size(&s->lists, IPLISTS_ALLOW);
    for (server_slot *sl = s->active, *next; sl; sl = next) {
        next = sl->next;
        conn_tick(conn_of(sl), now);
    }
    if (s->index == 0)
        stats_tick(&s->stats, now);
    web_server_tick(&s->web, now);
    s->accept_paused = 0;
    kick_accept(s);   /* also the safety net for a missed wake-up */
    if (s->draining && now >= s->drain_deadline_ms) {
        close_all(s, CLOSE_SHUTDOWN);
        web_server_close_all(&s->web);
    }
    check_drain_done(s);
}

static void stop_listening(server *s)
{
    loop_watch *w = &s->listener;
    if (w->fd < 0)
        return;
    loop_watch_remove(&s->loop, w);
    if (s->shared->reuseport) {
        close(w->fd);
    } else if (atomic_fetch_sub(&s->shared->listen_refs, 1) == 1) {
        /* The last worker to stop watching the shared listener closes it,
         * so new connections are refused at once, as with one worker. */
        close(w->fd);
        s->shared->listen_fd = -1;
    }
    w->fd = -1;
}

static void begin_drain(server *s, int immediate)
{
    if (s->draining && !immediate)
        immediate = 1;   /* a second signal: stop now */
    if (!s->draining && s->open_conns)
        log_info("main", "worker %zu shutting down: no new connections, %zu open", s->index,
                 s->open_conns);
    leave_balance(s);
    s->drain_deadline_ms = immediate ? s->loop.now_ms : s->loop.now_ms + SERVER_DRAIN_MS;
    stop_listening(s);
    if (s->index == 0)
        stats_stop_listening(&s->stats);
    web_server_stop_listening(&s->web);
    if (immediate) {
        close_all(s, CLOSE_SHUTDOWN);
        web_server_close_all(&s->web);   /* freed after this event batch */
    }
    check_drain_done(s);
}

static void on_signal(loop *l, int signo, void *ctx)
{
    server *s = ctx;
    (void)l;
    if (signo == SIGTERM || signo == SIGINT) {
        int now = s->draining;
        if (!now)
            log_info("main", "shutting down: no new connections, %zu open",
                     atomic_load(&s->shared->open_total));
        post_others(s, now ? SERVER_CTL_DRAIN_NOW : SERVER_CTL_DRAIN);
        begin_drain(s, now);
    } else if (signo == SIGHUP && !s->draining) {
        (void)server_reload(s);
    }
}

/* One loop takes next for the connections it accepts from now on; the
 * ones it already serves hold the config they started with. Runs on the
 * loop's own thread. */
void server_apply_config(server *s, const tgf_config *next)
{
    const tgf_config *old = s->cfg;
    s->cfg = config_ref_hold(next);
    s->env.cfg = s->cfg;
    s->stats.cfg = s->cfg;
    web_server_apply_config(&s->web, s->cfg);   /* worker 0's listener, if any */
    config_ref_drop(old);
}

/* Reload hook: the config every worker's loop adopts for new connections
 * (SERVER_CTL_CONFIG, handled in adopt_config on each loop's thread).
 * Takes over the caller's reference to cfg. */
void server_shared_adopt_config(server_shared *sh, const tgf_config *cfg)
{
    pthread_mutex_lock(&sh->cfg_lock);
    const tgf_config *old = sh->next_cfg;
    sh->next_cfg = cfg;
    pthread_mutex_unlock(&sh->cfg_lock);
    config_ref_drop(old);
    for (size_t i = 0; i < sh->count; i++)
        server_post(sh->servers[i], SERVER_CTL_CONFIG);
}

static void adopt_config(server *s)
{
    server_shared *sh = s->shared;
    /* Held under the lock: a second reload cannot free it before we hold it. */
    pthread_mutex_lock(&sh->cfg_lock);
    const tgf_config *next = sh->next_cfg;
    if (next && next != s->cfg)
        server_apply_config(s, next);
    pthread_mutex_unlock(&sh->cfg_lock);
}

int server_reload(server *s)
{
    char err[512];
    server_shared *sh = s->shared;
    if (sh->config_path == NULL) {
        log_warn("main", "SIGHUP: no configuration file to re-read (simple-run); ignored");
        return -1;
    }
    const tgf_config *next = reload_load(sh->config_path, s->cfg, sh->usage, err, sizeof err);
    if (next == NULL) {
        log_error("main", "reload failed, keeping the running configuration: %s", err);
        return -1;
    }
    log_set_level(next->debug ? LOG_DEBUG : LOG_INFO);
    char names[400] = "";
    size_t used = 0;
    for (size_t i = 0; i < next->secret_count && used + 1 < sizeof names; i++) {
        int n = snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                         next->secrets[i].name);
        used = n < 0 ? used : used + (size_t)n;
    }
    log_info("main", "reloaded %s: %zu secret%s (%s); the connections open now (%zu) keep the "
             "configuration they started with", sh->config_path, next->secret_count,
             next->secret_count == 1 ? "" : "s", names, atomic_load(&sh->open_total));
    server_shared_adopt_config(sh, next);   /* every worker, this one included */
    return 0;
}
static void publish_snapshot(server *s, int final)
{
    server_shared *sh = s->shared;
    s->metrics.memory_waits = s->pool.cap_hits;
    pthread_mutex_lock(&sh->snap_lock);
    s->snap = s->metrics;
    s->snap_gen++;
    if (final)
        s->snap_final = 1;
    pthread_cond_broadcast(&sh->snap_cond);
    pthread_mutex_unlock(&sh->snap_lock);
}

static void on_ctl(loop_watch *w, uint32_t ev)
{
    server *s = w->ctx;
    (void)ev;
    uint64_t v;
    ssize_t n = read(w->fd, &v, sizeof v);
    (void)n;
    unsigned bits = atomic_exchange(&s->ctl_pending, 0);
    if (bits & SERVER_CTL_SNAPSHOT)
        publish_snapshot(s, 0);
    if (bits & SERVER_CTL_CONFIG)
        adopt_config(s);
    if (bits & (SERVER_CTL_DRAIN | SERVER_CTL_DRAIN_NOW))
        begin_drain(s, (bits & SERVER_CTL_DRAIN_NOW) != 0);
    if (bits & SERVER_CTL_ACCEPT)
        kick_accept(s);
    check_drain_done(s);
}

/* Worker 0, before a scrape renders: its own snapshot now, and a fresh
 * one from every other worker (each copies its own counters in its own
 * thread), so the sum is current. Holds snap_lock until after_render. */
static void before_render(void *ctx)
{
    server *s = ctx;
    server_shared *sh = s->shared;
    s->metrics.memory_waits = s->pool.cap_hits;
    pthread_mutex_lock(&sh->snap_lock);
    s->snap = s->metrics;
    uint64_t *want = calloc(sh->count, sizeof *want);
    for (size_t i = 1; want && i < sh->count; i++) {
        want[i] = sh->servers[i]->snap_gen + 1;
        server_post(sh->servers[i], SERVER_CTL_SNAPSHOT);
    }
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += (long)SERVER_SNAPSHOT_WAIT_MS * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    for (size_t i = 1; want && i < sh->count; i++) {
        const server *o = sh->servers[i];
        while (o->snap_gen < want[i] && !o->snap_final)
            if (pthread_cond_timedwait(&sh->snap_cond, &sh->snap_lock, &until) != 0)
                break;   /* a stuck worker: render what it published last */
    }
    free(want);
}

static void after_render(void *ctx)
{
    server *s = ctx;
    pthread_mutex_unlock(&s->shared->snap_lock);
}

static void after_batch(loop *l, void *ctx)
{
    server *s = ctx;
    (void)l;
    reap(s);
    web_server_reap(&s->web);
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
    /* The concurrency limit is the whole process's, as mtg's. */
    size_t was = atomic_fetch_add(&s->shared->inspected_total, 1);
    int over_limit = was >= s->cfg->concurrency;
    if (over_limit)
        atomic_fetch_sub(&s->shared->inspected_total, 1);
    else
        sl->counted = 1;
    sl->next = s->active;
    if (s->active)
        s->active->prev = sl;
    s->active = sl;
    set_open(s, s->open_conns + 1);
    atomic_fetch_add(&s->shared->open_total, 1);
    conn_start(sl->conn, &s->env, fd, addr, len, over_limit);
}

static void on_listener(loop_watch *w, uint32_t ev)
{
    server *s = w->ctx;
    (void)ev;
    for (int i = 0; i < SERVER_ACCEPT_BATCH && s->listener.fd >= 0 && !s->accept_paused; i++) {
        if (atomic_load(&s->shared->open_total) >= s->shared->conn_cap || over_share(s)) {
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

/* Raises the descriptor limit and sizes the connection cap from it, for
 * all workers together (descriptors are the process's): each connection
 * holds two descriptors at most (client, and the fronting target or the
 * DC: the early fronting connection is closed before the DC is dialled),
 * so an accepted connection always gets its second one. Each worker's
 * epoll and eventfd come out of the reserve. */
static void size_descriptors(server_shared *sh)
{
    fdlimit_info fl;
    if (fdlimit_raise(&fl) < 0)
        log_warn("main", "cannot raise the descriptor limit: %s", strerror(errno));
    uint64_t soft = fl.soft ? fl.soft : 1024;
    uint64_t want = SERVER_FD_RESERVE + 3 * (uint64_t)sh->count;
    uint64_t reserve = soft / 4 < want ? soft / 4 : want;
    uint64_t cap = soft > reserve + 2 ? (soft - reserve) / 2 : 1;
    sh->conn_cap = cap > SIZE_MAX ? SIZE_MAX : (size_t)cap;
    log_info("main", "descriptors: soft limit %llu (was %llu), hard %llu: up to %zu connections",
             (unsigned long long)fl.soft, (unsigned long long)fl.soft_before,
             (unsigned long long)fl.hard, sh->conn_cap);
    if (sh->conn_cap < sh->cfg->concurrency)
        log_warn("main", "the descriptor limit carries %zu connections, fewer than concurrency "
                 "%u: raise the hard limit (docker run --ulimit nofile=N:N, or LimitNOFILE=)",
                 sh->conn_cap, sh->cfg->concurrency);
}

/* A hello may be replayed for as long as its timestamp passes: up to twice
 * the tolerated skew. The filter must remember it that long. */
static void check_replay_window(const server_shared *sh)
{
    uint64_t inserts = replay_memory_inserts(sh->replay);
    double window_s = 2.0 * (double)sh->cfg->tolerate_skew_ms / 1000.0;
    double rate = window_s > 0 ? (double)inserts / window_s : 1e12;
    log_info("main", "anti-replay remembers a hello for %llu handshakes: up to %.0f/s over the "
             "%.0f s a timestamp stays valid", (unsigned long long)inserts, rate, window_s);
    if (rate < SERVER_REPLAY_MIN_RATE)
        log_warn("main", "tolerate-time-skewness %.0f s is too long for [defense.anti-replay] "
                 "max-size/error-rate: above %.0f handshakes/s a replayed hello may be "
                 "forgotten while it is still valid; shorten the skew or raise max-size",
                 window_s / 2, rate);
}

/* SO_REUSEPORT listeners, one per worker: the kernel hashes each new
 * connection onto one of them. Kept for comparison (TGFRONT_LISTENER=
 * reuseport; bench/RESULTS.md has the numbers): the hash ignores load, a
 * worker at its share cannot hand its queue to another, and connections
 * queued on a closing worker's socket are reset. */
static int listen_reuseport(const tgf_config *cfg)
{
    const struct sockaddr *sa = (const struct sockaddr *)&cfg->bind_addr;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (sa->sa_family == AF_INET6 && net_is_wildcard(sa))
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, sa, cfg->bind_len) < 0 || listen(fd, SERVER_BACKLOG) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int open_listener(const server_shared *sh, char *err, size_t err_cap)
{
    const tgf_config *cfg = sh->cfg;
    char addr[80];
    dc_format_addr((const struct sockaddr *)&cfg->bind_addr, addr, sizeof addr);
    int fd = sh->reuseport
                 ? listen_reuseport(cfg)
                 : net_listen((const struct sockaddr *)&cfg->bind_addr, cfg->bind_len,
                              SERVER_BACKLOG);
    if (fd < 0)
        snprintf(err, err_cap, "cannot listen on %s (bind-to): %s", addr, strerror(errno));
    return fd;
}

int server_shared_init(server_shared *sh, const tgf_config *cfg, size_t workers, char *err,
                       size_t err_cap)
{
    memset(sh, 0, sizeof *sh);
    sh->listen_fd = -1;
    sh->count = workers;
    pthread_mutex_init(&sh->cfg_lock, NULL);
    /* A reference-counted copy: every loop and connection holds it, and a
     * reload swaps what new connections get (server.h). */
    sh->cfg = cfg = config_ref_copy(cfg);
    sh->usage = secret_usage_create();
    if (sh->cfg == NULL || sh->usage == NULL || secret_usage_prepare(sh->usage, sh->cfg) < 0) {
        snprintf(err, err_cap, "out of memory for the configuration");
        return -1;
    }
    const char *mode = getenv("TGFRONT_LISTENER");
    /* Measurement knobs for bench/ (not configuration): the alternatives
     * the default was chosen over. */
    sh->reuseport = workers > 1 && mode && strcmp(mode, "reuseport") == 0;
    sh->no_balance = mode && strcmp(mode, "exclusive-unbalanced") == 0;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sh->snap_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&sh->snap_lock, NULL);
    /* The pool cap bounds the whole process's buffers: split it. */
    sh->pool_cap = pool_default_cap() / workers;

    int n = server_resolve_fronting(cfg, sh->front_addrs, SERVER_MAX_FRONT_ADDRS, err, err_cap);
    if (n < 0)
        return -1;
    sh->front_count = (size_t)n;

    if (cfg->antireplay_enabled) {
        sh->replay = replay_create(cfg->antireplay_max_size, cfg->antireplay_error_rate);
        if (!sh->replay) {
            snprintf(err, err_cap, "cannot create the anti-replay filter (max-size %llu bytes)",
                     (unsigned long long)cfg->antireplay_max_size);
            return -1;
        }
        check_replay_window(sh);
    }
    size_descriptors(sh);
    if (!sh->reuseport) {
        sh->listen_fd = open_listener(sh, err, err_cap);
        if (sh->listen_fd < 0)
            return -1;
        atomic_store(&sh->listen_refs, (int)workers);
    }
    return 0;
}

void server_shared_destroy(server_shared *sh)
{
    if (sh->listen_fd >= 0)
        close(sh->listen_fd);
    sh->listen_fd = -1;
    if (sh->replay)
        replay_destroy(sh->replay);
    sh->replay = NULL;
    pthread_cond_destroy(&sh->snap_cond);
    pthread_mutex_destroy(&sh->snap_lock);
    config_ref_drop(sh->next_cfg);
    config_ref_drop(sh->cfg);
    sh->next_cfg = sh->cfg = NULL;
    secret_usage_destroy(sh->usage);
    sh->usage = NULL;
    pthread_mutex_destroy(&sh->cfg_lock);
}

/* Workers still running their loop: the count workers.c keeps. */
static atomic_size_t *running_of(server *s) { return &s->shared->running; }

int server_init(server *s, server_shared *sh, size_t index, char *err, size_t err_cap)
{
    const tgf_config *cfg = sh->cfg;
    memset(s, 0, sizeof *s);
    s->loop.epfd = s->loop.sigfd = -1;   /* server_destroy may run before loop_init */
    s->cfg = config_ref_hold(cfg);
    s->shared = sh;
    s->index = index;
    s->listener.fd = -1;
    s->ctl.fd = -1;
    s->stats.listener.fd = -1;
    pool_init(&s->pool, POOL_KEEP_BLOCKS, sh->pool_cap);
    metrics_init(&s->metrics);

    /* The lists and the upstreams are restart-only keys (reload.c): they
     * follow the start-up config. Worker 0 loads the lists once for the
     * process; the others share them (the workers are built in order). */
    if (index == 0 && iplists_start(&s->lists, sh->cfg, err, err_cap) < 0)
        return -1;
    if (index != 0)
        iplists_share(&s->lists, &sh->servers[0]->lists);
    s->metrics.iplist_size[METRICS_BLOCKLIST] = iplists_size(&s->lists, IPLISTS_BLOCK);
    s->metrics.iplist_size[METRICS_ALLOWLIST] = iplists_size(&s->lists, IPLISTS_ALLOW);
    for (size_t i = 0; i < cfg->proxy_count; i++) {
        char rerr[300];
        const socks5_upstream *u = &cfg->proxies[i];
        if (net_resolve(u->host, u->port, &s->proxy_addrs[i], 1, rerr, sizeof rerr) < 1) {
            snprintf(err, err_cap, "network.proxies entry %zu: %s", i + 1, rerr);
            return -1;
        }
        char pa[80];
        dc_format_addr((const struct sockaddr *)&s->proxy_addrs[i].addr, pa, sizeof pa);
        if (index == 0)
            log_info("main", "Telegram connections go through SOCKS5 proxy %s%s", pa,
                     u->has_auth ? " (with a user name and password)" : "");
    }

    if (loop_init_signals(&s->loop, SERVER_TICK_MS, index == 0) < 0) {
        snprintf(err, err_cap, "event loop: %s", strerror(errno));
        return -1;
    }
    s->loop.on_tick = on_tick;
    s->loop.on_signal = on_signal;
    s->loop.after_batch = after_batch;
    s->loop.on_wake = on_wake;
    s->loop.ctx = s;

    s->ctl.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    s->ctl.fn = on_ctl;
    s->ctl.ctx = s;
    if (s->ctl.fd < 0 || loop_watch_set(&s->loop, &s->ctl, LOOP_IN) < 0) {
        snprintf(err, err_cap, "worker control eventfd: %s", strerror(errno));
        return -1;
    }

    int fd = sh->reuseport ? open_listener(sh, err, err_cap) : sh->listen_fd;
    if (fd < 0)
        return -1;
    s->listener.fd = fd;
    s->listener.fn = on_listener;
    s->listener.ctx = s;
    s->listener.exclusive = !sh->reuseport && sh->count > 1;
    s->env = (conn_env){ .loop = &s->loop, .pool = &s->pool, .metrics = &s->metrics,
                         .cfg = s->cfg, .replay = sh->replay, .usage = sh->usage,
                         .site = sh->site, .front_addrs = sh->front_addrs,
                         .front_count = sh->front_count, .lists = &s->lists,
                         .proxy_addrs = s->proxy_addrs, .proxy_count = sh->cfg->proxy_count,
                         .on_fronted = on_conn_fronted,
                         .wake_at = on_conn_wake_at,
                         .on_closed = on_conn_closed, .owner = s };
    update_accept(s);

    /* The WEB listener is worker 0's: one loopback listener for the local
     * Caddy, its sessions in that loop (the other workers have none). */
    if (index == 0 ? web_server_init(&s->web, &s->loop, sh->cfg, &s->metrics, err, err_cap) < 0
                   : (web_server_init_off(&s->web, &s->loop), 0))
        return -1;
    /* Its streams count against the secrets' limits and the concurrency
     * as FakeTLS connections do (web_limits.h). */
    web_server_share(&s->web, sh->usage, &sh->inspected_total);

    if (index == 0) {
        s->metrics_list = calloc(sh->count, sizeof *s->metrics_list);
        if (!s->metrics_list) {
            snprintf(err, err_cap, "out of memory");
            return -1;
        }
        for (size_t i = 0; i < sh->count; i++)
            s->metrics_list[i] = &sh->servers[i]->snap;
        if (cfg->prometheus_enabled &&
            stats_open(&s->stats, &s->loop, cfg, s->metrics_list, sh->count, err, err_cap) < 0)
            return -1;
        s->stats.usage = sh->usage;
        s->metrics.site = sh->site;
        s->stats.before_render = before_render;
        s->stats.after_render = after_render;
        s->stats.render_ctx = s;

        const char *front_host = cfg->fronting_host[0] ? cfg->fronting_host : cfg->secret.host;
        char addr[80], faddr[80];
        dc_format_addr((const struct sockaddr *)&cfg->bind_addr, addr, sizeof addr);
        dc_format_addr((const struct sockaddr *)&sh->front_addrs[0].addr, faddr, sizeof faddr);
        log_info("main", "listening on %s (%zu worker%s%s); fronting to %s (%s)%s; "
                 "anti-replay %s; AES %s", addr, sh->count, sh->count == 1 ? "" : "s",
                 sh->reuseport ? ", SO_REUSEPORT" : "", front_host, faddr,
                 cfg->fronting_proxy_protocol ? " with PROXY v2" : "",
                 sh->replay ? "on" : "off", crypto_aes_impl());
    }
    return 0;
}

void server_never_run(server *s)
{
    leave_balance(s);
    stop_listening(s);
}

int server_run(server *s)
{
    int rc = 0;
    if (s->shared->count > 1)
        log_set_worker((int)s->index);
    if (loop_run(&s->loop) < 0) {
        log_error("main", "worker %zu: event loop failed: %s", s->index, strerror(errno));
        rc = 1;
    }
    publish_snapshot(s, 1);
    atomic_fetch_sub(running_of(s), 1);
    if (s->index != 0)
        server_post(s->shared->servers[0], SERVER_CTL_ACCEPT);   /* re-checks the drain */
    else
        log_info("main", "stopped");
    return rc;
}

void server_destroy(server *s)
{
    close_all(s, CLOSE_SHUTDOWN);
    reap(s);
    web_server_destroy(&s->web);
    stats_close(&s->stats);
    iplists_stop(&s->lists);
    if (s->listener.fd >= 0 && s->shared && s->shared->reuseport)
        close(s->listener.fd);
    s->listener.fd = -1;
    if (s->ctl.fd >= 0)
        close(s->ctl.fd);
    s->ctl.fd = -1;
    loop_close(&s->loop);
    pool_destroy(&s->pool);
    free(s->metrics_list);
    s->metrics_list = NULL;
    config_ref_drop(s->cfg);
    s->cfg = NULL;
}
