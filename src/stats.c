/* stats: each scrape gets a small struct with its request bytes; the
 * response is rendered once into a malloc'd buffer and written as the socket
 * allows. Scrapes are rare and local, so simplicity beats pooling here. */
#include "stats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "netutil.h"
#include "dc.h"

#define STATS_MAX_CONNS 16
#define STATS_REQ_MAX 2048
#define STATS_BODY_MAX (1024 * 1024)   /* room for every secret's series too */
#define STATS_TIMEOUT_MS 5000

typedef struct stats_conn {
    struct stats_conn *next;
    stats_endpoint *st;
    loop_watch w;
    char req[STATS_REQ_MAX];
    size_t req_len;
    char *resp;
    size_t resp_len, resp_off;
    uint64_t deadline_ms;
} stats_conn;

static void stats_free(stats_conn *sc)
{
    stats_endpoint *st = sc->st;
    loop_watch_remove(st->loop, &sc->w);
    close(sc->w.fd);
    for (stats_conn **p = &st->conns; *p; p = &(*p)->next)
        if (*p == sc) {
            *p = sc->next;
            break;
        }
    free(sc->resp);
    free(sc);
}

static void build_response(stats_conn *sc)
{
    const stats_endpoint *st = sc->st;
    const tgf_config *cfg = st->cfg;
    /* Request line: METHOD SP PATH SP VERSION. http-path is a prefix match. */
    char method[8] = "", path[256] = "";
    sscanf(sc->req, "%7s %255s", method, path);
    char *q = strchr(path, '?');
    if (q)
        *q = '\0';
    const char *want = cfg->prometheus_path;
    size_t wl = strlen(want);
    int ok_path = strncmp(path, want, wl) == 0 &&
                  (wl == 1 || path[wl] == '\0' || path[wl] == '/');
    char *body = malloc(STATS_BODY_MAX);
    sc->resp = malloc(STATS_BODY_MAX + 256);
    if (!body || !sc->resp) {
        free(body);
        free(sc->resp);
        sc->resp = NULL;
        return;
    }
    int status = 200;
    size_t blen;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        status = 405;
        blen = (size_t)snprintf(body, STATS_BODY_MAX, "method not allowed\n");
    } else if (!ok_path) {
        status = 404;
        blen = (size_t)snprintf(body, STATS_BODY_MAX, "not found\n");
    } else {
        const metrics *const *ms = st->metrics;
        blen = metrics_render(ms, st->metrics_count, cfg->prometheus_prefix, body, STATS_BODY_MAX);
        if (st->usage != NULL)
            blen = secret_usage_render(st->usage, cfg->prometheus_prefix, body, blen,
                                       STATS_BODY_MAX);
    }
    int head = snprintf(sc->resp, 256,
                        "HTTP/1.0 %d %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                        "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                        status, status == 200 ? "OK" : (status == 404 ? "Not Found" : "Method Not Allowed"),
                        blen);
    memcpy(sc->resp + head, body, strcmp(method, "HEAD") == 0 ? 0 : blen);
    sc->resp_len = (size_t)head + (strcmp(method, "HEAD") == 0 ? 0 : blen);
    free(body);
}

static void on_stats_conn(loop_watch *w, uint32_t ev)
{
    stats_conn *sc = w->ctx;
    (void)ev;
    if (!sc->resp) {
        ssize_t n = read(w->fd, sc->req + sc->req_len, sizeof sc->req - 1 - sc->req_len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            stats_free(sc);
            return;
        }
        sc->req_len += (size_t)n;
        sc->req[sc->req_len] = '\0';
        if (!strstr(sc->req, "\r\n\r\n") && !strstr(sc->req, "\n\n")) {
            if (sc->req_len == sizeof sc->req - 1)
                stats_free(sc);
            return;
        }
        build_response(sc);
        if (!sc->resp) {
            stats_free(sc);
            return;
        }
        loop_watch_set(sc->st->loop, &sc->w, LOOP_OUT);
    }
    while (sc->resp_off < sc->resp_len) {
        ssize_t n = write(w->fd, sc->resp + sc->resp_off, sc->resp_len - sc->resp_off);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            break;
        }
        sc->resp_off += (size_t)n;
    }
    shutdown(w->fd, SHUT_WR);
    stats_free(sc);
}

static void stats_accept(loop_watch *w, uint32_t ev)
{
    stats_endpoint *st = w->ctx;
    (void)ev;
    for (;;) {
        int fd = accept4(st->listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Level-triggered: a pending scrape we cannot accept would
                 * wake us forever. Resumed on the next tick. */
                st->paused = 1;
                loop_watch_set(st->loop, &st->listener, 0);
            }
            return;
        }
        size_t n = 0;
        for (stats_conn *p = st->conns; p; p = p->next)
            n++;
        stats_conn *sc = n < STATS_MAX_CONNS ? calloc(1, sizeof *sc) : NULL;
        if (!sc) {
            close(fd);
            continue;
        }
        sc->st = st;
        sc->w.fd = fd;
        sc->w.fn = on_stats_conn;
        sc->w.ctx = sc;
        sc->deadline_ms = st->loop->now_ms + STATS_TIMEOUT_MS;
        sc->next = st->conns;
        st->conns = sc;
        if (loop_watch_set(st->loop, &sc->w, LOOP_IN) < 0)
            stats_free(sc);
    }
}

int stats_open(stats_endpoint *st, loop *l, const tgf_config *cfg, const metrics *const *ms,
               size_t n, char *err, size_t err_cap)
{
    *st = (stats_endpoint){ .loop = l, .cfg = cfg, .metrics = ms, .metrics_count = n };
    st->listener = (loop_watch){ .fd = -1, .fn = stats_accept, .ctx = st };
    char addr[80];
    dc_format_addr((const struct sockaddr *)&cfg->prometheus_bind, addr, sizeof addr);
    int fd = net_listen((const struct sockaddr *)&cfg->prometheus_bind, cfg->prometheus_bind_len, 64);
    if (fd < 0) {
        snprintf(err, err_cap, "cannot listen on %s ([stats.prometheus] bind-to): %s", addr,
                 strerror(errno));
        return -1;
    }
    st->listener.fd = fd;
    if (loop_watch_set(l, &st->listener, LOOP_IN) < 0) {
        snprintf(err, err_cap, "epoll on the stats listener: %s", strerror(errno));
        return -1;
    }
    log_info("main", "prometheus metrics on http://%s%s", addr, cfg->prometheus_path);
    return 0;
}

void stats_tick(stats_endpoint *st, uint64_t now_ms)
{
    stats_conn *sc = st->conns;
    while (sc) {
        stats_conn *next = sc->next;
        if (now_ms >= sc->deadline_ms)
            stats_free(sc);
        sc = next;
    }
    if (st->paused && st->listener.fd >= 0) {
        st->paused = 0;
        loop_watch_set(st->loop, &st->listener, LOOP_IN);
    }
}

void stats_stop_listening(stats_endpoint *st)
{
    if (st->listener.fd >= 0) {
        loop_watch_remove(st->loop, &st->listener);
        close(st->listener.fd);
        st->listener.fd = -1;
    }
}

void stats_close(stats_endpoint *st)
{
    stats_stop_listening(st);
    while (st->conns)
        stats_free(st->conns);
}
