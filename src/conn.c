/* conn: the per-connection state machine (relay.c moves the bytes once it
 * is established).
 *
 * Ownership: a conn owns its two fds and up to three pool blocks (hello
 * bytes, up flow, down flow). conn_close releases all of them; the struct
 * itself is freed by conn_reap after the event batch, because a later event
 * in the same batch may still point at its watches. */
#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "log.h"
#include "netutil.h"
#include "proxyproto.h"
#include "relay.h"
#include "server.h"

/* ServerHello application-data size when nothing better is known: what mtg
 * sends without doppelganger samples (2500..4699 bytes). */
#define SH_APPDATA_MIN 2500
#define SH_APPDATA_SPREAD 2200

/* Fronted connections are closed for idleness only after the web server
 * behind us would have closed them itself (Caddy's idle_timeout is 5 min):
 * our own close would be a tell. */
#define FRONT_IDLE_MIN_MS (6 * 60 * 1000)

static void update_interest(conn *c);
static void start_fronting(conn *c);
static void dial_next_front(conn *c);
static void dial_next_dc(conn *c);
static void process_hello(conn *c);
static void process_init(conn *c, size_t raw_from);

/* ---------- small helpers ---------- */

static uint64_t now_ms(conn *c) { return c->srv->loop.now_ms; }

static void drop_peer_fd(conn *c)
{
    if (c->pw.fd >= 0) {
        loop_watch_remove(&c->srv->loop, &c->pw);
        close(c->pw.fd);
        c->pw.fd = -1;
    }
}

static int ensure_hs(conn *c)
{
    if (c->hs)
        return 0;
    c->hs = pool_get(&c->srv->pool);
    if (!c->hs)
        return -1;
    c->hs_start = c->hs_len = CONN_HS_HEADROOM;
    return 0;
}

static int relaying(const conn *c) { return c->state == CS_RELAY || c->state == CS_FRONT_RELAY; }

/* Both directions ended and flushed: a normal close, FIN already sent both ways. */
static void close_if_done(conn *c)
{
    if (c->state != CS_CLOSED && relaying(c) && c->up.shut && c->down.shut)
        conn_close(c, CLOSE_DONE, 0, 0);
}

/* ---------- teardown ---------- */

void conn_close(conn *c, close_reason reason, int reset_client, int reset_peer)
{
    if (c->state == CS_CLOSED)
        return;
    server *s = c->srv;
    c->reason = reason;
    c->state = CS_CLOSED;

    loop_watch_remove(&s->loop, &c->cw);
    loop_watch_remove(&s->loop, &c->pw);
    if (c->cw.fd >= 0) {
        if (reset_client)
            net_close_reset(c->cw.fd);
        else
            close(c->cw.fd);
        c->cw.fd = -1;
    }
    if (c->pw.fd >= 0) {
        if (reset_peer)
            net_close_reset(c->pw.fd);
        else
            close(c->pw.fd);
        c->pw.fd = -1;
    }
    pool_put(&s->pool, c->hs);
    pool_put(&s->pool, c->up.buf);
    pool_put(&s->pool, c->down.buf);
    c->hs = c->up.buf = c->down.buf = NULL;
    crypto_wipe(&c->cli, sizeof c->cli);
    crypto_wipe(&c->dc, sizeof c->dc);
    crypto_wipe(c->init, sizeof c->init);

    metrics *m = &s->metrics;
    m->client_connections[c->family]--;
    if (c->fronted)
        m->fronting_connections[c->family]--;
    if (c->dc_counted && c->dc_slot)
        c->dc_slot->connections--;
    m->closed[reason]++;
    if (c->inspected)
        s->inspected--;
    s->open_conns--;

    if (c->prev)
        c->prev->next = c->next;
    else
        s->active = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = NULL;
    c->next = s->dead;
    s->dead = c;

    log_debug("conn", "closed: %s, %s, %llu bytes up, %llu bytes down",
              metrics_close_reason_name(reason), c->fronted ? "fronted" : "telegram",
              (unsigned long long)c->up.bytes, (unsigned long long)c->down.bytes);
    server_update_accept(s);
}

void conn_reap(server *s)
{
    while (s->dead) {
        conn *c = s->dead;
        s->dead = c->next;
        free(c);
    }
}

/* ---------- interest ---------- */

static void update_interest(conn *c)
{
    if (c->state == CS_CLOSED)
        return;
    uint32_t cm = 0, pm = 0;
    switch (c->state) {
    case CS_PROXY_HEADER:
    case CS_HELLO:
        cm = EPOLLIN;
        break;
    case CS_OBFS2_INIT:
        cm = EPOLLIN;
        if (c->down.len)
            cm |= EPOLLOUT;
        break;
    case CS_FRONT_CONNECT:
    case CS_DC_CONNECT:
        if (c->down.len)
            cm |= EPOLLOUT;
        pm = EPOLLOUT;
        break;
    case CS_RELAY:
    case CS_FRONT_RELAY:
        if (!c->up.len && !c->up.eof)
            cm |= EPOLLIN;
        if (c->down.len)
            cm |= EPOLLOUT;
        if (!c->down.len && !c->down.eof)
            pm |= EPOLLIN;
        if (c->up.len)
            pm |= EPOLLOUT;
        break;
    case CS_CLOSED:
        return;
    }
    if (loop_watch_set(&c->srv->loop, &c->cw, cm) < 0 ||
        loop_watch_set(&c->srv->loop, &c->pw, pm) < 0) {
        log_warn("conn", "epoll_ctl failed: %s", strerror(errno));
        conn_close(c, CLOSE_INTERNAL, 0, 0);
    }
}

/* ---------- fronting ---------- */

static void start_fronting(conn *c)
{
    server *s = c->srv;
    if (ensure_hs(c) < 0) {
        conn_close(c, CLOSE_NO_MEMORY, 0, 0);
        return;
    }
    c->fronted = 1;
    /* The concurrency limit counts connections we inspect or relay to
     * Telegram; website visitors must not use up Telegram's slots. */
    if (c->inspected) {
        c->inspected = 0;
        s->inspected--;
    }
    s->metrics.domain_fronting++;
    s->metrics.fronting_connections[c->family]++;
    /* The hello block becomes the up flow: exactly the bytes read so far. */
    c->up.buf = c->hs;
    c->up.off = c->hs_start;
    c->up.len = c->hs_len;
    c->hs = NULL;
    c->state = CS_FRONT_CONNECT;
    c->addr_next = 0;
    dial_next_front(c);
}

static void dial_next_front(conn *c)
{
    server *s = c->srv;
    drop_peer_fd(c);
    while (c->addr_next < s->front_count) {
        const dc_addr *a = &s->front_addrs[c->addr_next++];
        int fd = net_connect_start((const struct sockaddr *)&a->addr, a->len);
        if (fd < 0) {
            log_debug("conn", "fronting connect failed: %s", strerror(errno));
            continue;
        }
        net_set_nodelay(fd);
        c->pw.fd = fd;
        c->deadline_ms = s->cfg->timeout_tcp_ms ? now_ms(c) + s->cfg->timeout_tcp_ms : 0;
        return;
    }
    log_warn("conn", "cannot dial to the fronting target");
    conn_close(c, CLOSE_FRONT_UNREACHABLE, 0, 0);
}

static void front_connected(conn *c)
{
    server *s = c->srv;
    c->state = CS_FRONT_RELAY;
    c->deadline_ms = 0;
    c->last_activity_ms = now_ms(c);
    if (s->cfg->fronting_proxy_protocol) {
        struct sockaddr_storage dst;
        socklen_t dlen = sizeof dst;
        uint8_t hdr[64];
        size_t n = 0;
        if (getpeername(c->pw.fd, (struct sockaddr *)&dst, &dlen) == 0)
            n = proxyproto_v2_build(hdr, sizeof hdr, (const struct sockaddr *)&c->client_addr,
                                    (const struct sockaddr *)&dst);
        if (n == 0 || n > c->up.off) {
            conn_close(c, CLOSE_INTERNAL, 0, 0);
            return;
        }
        /* The headroom in front of the client's bytes takes the header. */
        c->up.off -= n;
        memcpy(c->up.buf + c->up.off, hdr, n);
        c->up.bytes = 0;
    }
    if (relay_flush_up(c) < 0)
        conn_close(c, CLOSE_PEER_RESET, 1, 0);
}

/* ---------- Telegram path ---------- */

static void send_server_hello(conn *c, const faketls_hello *h)
{
    server *s = c->srv;
    uint8_t scalar[32], pub[32];
    uint8_t appdata[SH_APPDATA_MIN + SH_APPDATA_SPREAD];
    uint32_t r;
    if (crypto_random(scalar, sizeof scalar) < 0 || crypto_random(&r, sizeof r) < 0) {
        conn_close(c, CLOSE_INTERNAL, 0, 0);
        return;
    }
    crypto_x25519_public(scalar, pub);
    crypto_wipe(scalar, sizeof scalar);
    size_t app_len = SH_APPDATA_MIN + r % SH_APPDATA_SPREAD;
    if (crypto_random(appdata, app_len) < 0 || !(c->down.buf = pool_get(&s->pool))) {
        conn_close(c, CLOSE_NO_MEMORY, 0, 0);
        return;
    }
    size_t n = faketls_build_server_hello(c->down.buf, POOL_BLOCK_SIZE, h, &s->cfg->secret, pub,
                                          appdata, app_len);
    if (n == 0) {
        conn_close(c, CLOSE_INTERNAL, 0, 0);
        return;
    }
    c->down.off = 0;
    c->down.len = n;
    if (relay_flush_down(c) < 0)
        conn_close(c, CLOSE_CLIENT_RESET, 0, 0);
}

static void process_hello(conn *c)
{
    server *s = c->srv;
    faketls_hello h;
    faketls_reason why = FAKETLS_R_NONE;
    if (c->hs_len < c->hs_next_check && c->hs_len < POOL_BLOCK_SIZE && !c->up.eof)
        return;   /* the record in progress is not complete yet */
    faketls_result r = faketls_check_client_hello(c->hs + c->hs_start, c->hs_len - c->hs_start,
                                                  &s->cfg->secret, (int64_t)time(NULL),
                                                  s->cfg->tolerate_skew_ms, &h, &why);
    if (r == FAKETLS_NEED_MORE) {
        c->hs_next_check = c->hs_start + faketls_hello_next_check(c->hs + c->hs_start,
                                                                  c->hs_len - c->hs_start);
        if (c->hs_len < POOL_BLOCK_SIZE && !c->up.eof)
            return;
        why = c->up.eof ? FAKETLS_R_NONE : FAKETLS_R_TOO_LONG;
        r = FAKETLS_REJECT;
    }
    if (r == FAKETLS_REJECT) {
        s->metrics.handshake_rejected[why]++;
        log_debug("conn", "not a proxy client (%s): fronting", faketls_reason_name(why));
        start_fronting(c);
        return;
    }
    if (s->replay && replay_check_and_insert(s->replay, h.client_random, sizeof h.client_random)) {
        s->metrics.replay_attacks++;
        log_warn("conn", "replay attack has been detected: fronting");
        start_fronting(c);
        return;
    }
    /* Authenticated: from here on failures close instead of fronting. */
    size_t rest = c->hs_len - c->hs_start - h.consumed;
    memmove(c->hs + CONN_HS_HEADROOM, c->hs + c->hs_start + h.consumed, rest);
    c->hs_start = CONN_HS_HEADROOM;
    c->hs_len = CONN_HS_HEADROOM;
    c->state = CS_OBFS2_INIT;
    faketls_rx_init(&c->rx);
    send_server_hello(c, &h);
    if (c->state == CS_CLOSED)
        return;
    c->hs_len += rest;
    if (rest)
        process_init(c, c->hs_start);
}

static void finish_init(conn *c)
{
    server *s = c->srv;
    int16_t raw_dc = 0;
    if (obfs2_accept_client(c->init, s->cfg->secret.key, &c->cli, &raw_dc) != OBFS2_OK) {
        log_info("conn", "obfuscated handshake failed: unsupported protocol tag");
        conn_close(c, CLOSE_BAD_OBFS2, 0, 0);
        return;
    }
    int dc = dc_resolve(&s->cfg->dcs, raw_dc);
    if (dc < 0) {
        log_warn("conn", "unknown DC %d requested", (int)raw_dc);
        conn_close(c, CLOSE_UNKNOWN_DC, 0, 0);
        return;
    }
    c->dc_num = dc;

    uint8_t frame[OBFS2_FRAME_LEN];
    do {
        if (crypto_random(frame, sizeof frame) < 0) {
            conn_close(c, CLOSE_INTERNAL, 0, 0);
            return;
        }
    } while (!obfs2_noise_ok(frame));
    obfs2_build_dc_frame(frame, (int16_t)dc, &c->dc);

    /* Early payload after the init frame is re-encrypted behind the DC frame. */
    size_t early = c->hs_len - c->hs_start;
    if (OBFS2_FRAME_LEN + early > POOL_BLOCK_SIZE || !(c->up.buf = pool_get(&s->pool))) {
        conn_close(c, CLOSE_NO_MEMORY, 0, 0);
        return;
    }
    uint8_t *data = c->hs + c->hs_start;
    crypto_ctr_apply(&c->cli.rx, data, early);
    crypto_ctr_apply(&c->dc.tx, data, early);
    memcpy(c->up.buf, frame, OBFS2_FRAME_LEN);
    memcpy(c->up.buf + OBFS2_FRAME_LEN, data, early);
    c->up.off = 0;
    c->up.len = OBFS2_FRAME_LEN + early;
    pool_put(&s->pool, c->hs);
    c->hs = NULL;

    if (crypto_random(&c->dc_seed, sizeof c->dc_seed) < 0)
        c->dc_seed = (uint32_t)now_ms(c);
    c->state = CS_DC_CONNECT;
    c->addr_next = 0;
    dial_next_dc(c);
}

/* New raw record bytes sit at hs[raw_from..hs_len): unwrap them in place so
 * hs[hs_start..hs_len) holds only payload, then take the init frame. */
static void process_init(conn *c, size_t raw_from)
{
    size_t payload = 0;
    faketls_reason why = FAKETLS_R_NONE;
    if (faketls_rx_unwrap(&c->rx, c->hs + raw_from, c->hs_len - raw_from, &payload, &why) < 0) {
        log_info("conn", "bad TLS record from an authenticated client (%s)",
                 faketls_reason_name(why));
        conn_close(c, CLOSE_BAD_RECORD, 0, 0);
        return;
    }
    c->hs_len = raw_from + payload;
    size_t avail = c->hs_len - c->hs_start;
    size_t take = OBFS2_FRAME_LEN - c->init_have;
    if (take > avail)
        take = avail;
    memcpy(c->init + c->init_have, c->hs + c->hs_start, take);
    c->init_have += take;
    c->hs_start += take;
    if (c->init_have == OBFS2_FRAME_LEN)
        finish_init(c);
}

static void dial_next_dc(conn *c)
{
    server *s = c->srv;
    dc_addr list[2 * DC_MAX_ADDRS];
    size_t n = dc_addresses(&s->cfg->dcs, c->dc_num, c->dc_seed, list, 2 * DC_MAX_ADDRS);
    drop_peer_fd(c);
    while (c->addr_next < n) {
        const dc_addr *a = &list[c->addr_next++];
        int fd = net_connect_start((const struct sockaddr *)&a->addr, a->len);
        if (fd < 0) {
            log_debug("conn", "DC %d connect failed: %s", c->dc_num, strerror(errno));
            continue;
        }
        net_set_nodelay(fd);
        const tgf_config *cfg = s->cfg;
        if (!cfg->keepalive_disabled)
            net_set_keepalive(fd, cfg->keepalive_idle_s, cfg->keepalive_interval_s,
                              cfg->keepalive_count);
        net_format_ip((const struct sockaddr *)&a->addr, c->peer_ip, sizeof c->peer_ip);
        c->pw.fd = fd;
        c->deadline_ms = cfg->timeout_tcp_ms ? now_ms(c) + cfg->timeout_tcp_ms : 0;
        return;
    }
    log_warn("conn", "cannot dial to telegram DC %d", c->dc_num);
    conn_close(c, CLOSE_DC_UNREACHABLE, 0, 0);
}

static void dc_connected(conn *c)
{
    server *s = c->srv;
    c->state = CS_RELAY;
    c->deadline_ms = 0;
    c->last_activity_ms = now_ms(c);
    c->dc_slot = metrics_dc_slot_get(&s->metrics, c->dc_num, c->peer_ip);
    if (c->dc_slot) {
        c->dc_slot->connections++;
        c->dc_counted = 1;
    }
    log_debug("conn", "relaying to DC %d at %s", c->dc_num, c->peer_ip);
    if (relay_flush_up(c) < 0)
        conn_close(c, CLOSE_PEER_RESET, 1, 0);
}

/* ---------- event dispatch ---------- */

/* Handshake reads: bytes accumulate in the hello block. */
static void read_handshake(conn *c)
{
    if (ensure_hs(c) < 0) {
        conn_close(c, CLOSE_NO_MEMORY, 0, 0);
        return;
    }
    if (c->hs_len == POOL_BLOCK_SIZE) {
        /* A full block is never a Telegram hello (process_hello fronts it
         * first); after the ServerHello it means a client flooding us. */
        if (c->state == CS_OBFS2_INIT)
            conn_close(c, CLOSE_BAD_RECORD, 0, 0);
        else
            start_fronting(c);
        return;
    }
    size_t from = c->hs_len;
    ssize_t n = relay_read(c->cw.fd, c->hs + c->hs_len, POOL_BLOCK_SIZE - c->hs_len);
    if (n == -1)
        return;
    if (n == -2) {
        conn_close(c, CLOSE_CLIENT_RESET, 0, 0);
        return;
    }
    if (n == 0) {
        if (c->state == CS_OBFS2_INIT) {
            conn_close(c, CLOSE_DONE, 0, 0);
            return;
        }
        /* EOF before a verdict: front what we have, then pass the FIN on. */
        c->up.eof = 1;
        start_fronting(c);
        return;
    }
    c->hs_len += (size_t)n;

    if (c->state == CS_PROXY_HEADER) {
        struct sockaddr_storage src, dst;
        size_t used = 0;
        int is_local = 0;
        proxyproto_result r = proxyproto_parse(c->hs + c->hs_start, c->hs_len - c->hs_start,
                                               &used, &src, &dst, &is_local);
        if (r == PROXYPROTO_NEED_MORE)
            return;
        if (r == PROXYPROTO_INVALID) {
            log_info("conn", "invalid PROXY header: %s", proxyproto_result_str(r));
            conn_close(c, CLOSE_PROXY_HEADER, 0, 0);
            return;
        }
        if (r == PROXYPROTO_OK) {
            c->hs_start += used;
            if (!is_local && (src.ss_family == AF_INET || src.ss_family == AF_INET6)) {
                c->client_addr = src;
                c->client_len = src.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                         : sizeof(struct sockaddr_in6);
                /* The gauge follows the real client's family. */
                metrics *m = &c->srv->metrics;
                m->client_connections[c->family]--;
                c->family = metrics_family_of((struct sockaddr *)&src);
                m->client_connections[c->family]++;
            }
        }
        if (c->over_limit) {
            /* Over the limit: the load balancer's header is ours to strip,
             * everything after it goes to the web server. */
            start_fronting(c);
            return;
        }
        c->state = CS_HELLO;
        if (c->hs_len == c->hs_start)
            return;
    }
    if (c->state == CS_HELLO)
        process_hello(c);
    else if (c->state == CS_OBFS2_INIT)
        process_init(c, from);
}

static void on_client(loop_watch *w, uint32_t ev)
{
    conn *c = w->ctx;
    if (c->state == CS_CLOSED)
        return;
    int readable = (w->mask & EPOLLIN) && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR));
    int writable = (w->mask & EPOLLOUT) && (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR));
    if (writable && relay_flush_down(c) < 0) {
        conn_close(c, CLOSE_CLIENT_RESET, 0, 1);
        return;
    }
    if (readable && c->state != CS_CLOSED) {
        if (relaying(c))
            relay_from_client(c);
        else
            read_handshake(c);
    }
    close_if_done(c);
    update_interest(c);
}

static void on_peer(loop_watch *w, uint32_t ev)
{
    conn *c = w->ctx;
    if (c->state == CS_CLOSED)
        return;
    if (c->state == CS_FRONT_CONNECT || c->state == CS_DC_CONNECT) {
        int err = net_connect_error(c->pw.fd);
        if (err == 0 && !(ev & EPOLLERR)) {
            if (c->state == CS_FRONT_CONNECT)
                front_connected(c);
            else
                dc_connected(c);
        } else if (c->state == CS_FRONT_CONNECT) {
            log_debug("conn", "fronting connect failed: %s", strerror(err ? err : ECONNREFUSED));
            dial_next_front(c);
        } else {
            log_debug("conn", "DC %d connect failed: %s", c->dc_num, strerror(err ? err : ECONNREFUSED));
            dial_next_dc(c);
        }
        close_if_done(c);
        update_interest(c);
        return;
    }
    int readable = (w->mask & EPOLLIN) && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR));
    int writable = (w->mask & EPOLLOUT) && (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR));
    if (writable && relay_flush_up(c) < 0) {
        conn_close(c, CLOSE_PEER_RESET, 1, 0);
        return;
    }
    if (readable && c->state != CS_CLOSED && relaying(c))
        relay_from_peer(c);
    close_if_done(c);
    update_interest(c);
}

/* ---------- accept and timers ---------- */

void conn_accept(server *s, int fd, const struct sockaddr *addr, socklen_t len)
{
    conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    const tgf_config *cfg = s->cfg;
    c->srv = s;
    c->cw.fd = fd;
    c->cw.fn = on_client;
    c->cw.ctx = c;
    c->pw.fd = -1;
    c->pw.fn = on_peer;
    c->pw.ctx = c;
    if (len > sizeof c->client_addr)
        len = sizeof c->client_addr;
    memcpy(&c->client_addr, addr, len);
    c->client_len = len;
    c->family = metrics_family_of(addr);
    net_set_nodelay(fd);
    if (!cfg->keepalive_disabled)
        net_set_keepalive(fd, cfg->keepalive_idle_s, cfg->keepalive_interval_s,
                          cfg->keepalive_count);

    c->next = s->active;
    if (s->active)
        s->active->prev = c;
    s->active = c;
    s->open_conns++;
    s->metrics.client_connections[c->family]++;
    c->last_activity_ms = now_ms(c);
    c->deadline_ms = cfg->timeout_handshake_ms ? now_ms(c) + cfg->timeout_handshake_ms : 0;

    if (s->inspected >= cfg->concurrency) {
        s->metrics.concurrency_limited++;
        log_debug("conn", "connection was concurrency limited: fronting");
        if (cfg->proxy_protocol_listener) {
            c->over_limit = 1;   /* fronted once the PROXY header is read */
            c->state = CS_PROXY_HEADER;
        } else {
            start_fronting(c);
        }
    } else {
        c->inspected = 1;
        s->inspected++;
        c->state = cfg->proxy_protocol_listener ? CS_PROXY_HEADER : CS_HELLO;
    }
    update_interest(c);
}

void conn_check_deadline(conn *c, uint64_t now)
{
    const tgf_config *cfg = c->srv->cfg;
    switch (c->state) {
    case CS_PROXY_HEADER:
    case CS_HELLO:
        if (c->deadline_ms && now >= c->deadline_ms) {
            /* The handshake deadline forwards what was read; it never closes. */
            log_debug("conn", "handshake timeout: fronting");
            start_fronting(c);
        }
        break;
    case CS_OBFS2_INIT:
        if (c->deadline_ms && now >= c->deadline_ms)
            conn_close(c, CLOSE_HANDSHAKE_TIMEOUT, 0, 0);
        break;
    case CS_FRONT_CONNECT:
        if (c->deadline_ms && now >= c->deadline_ms)
            dial_next_front(c);
        break;
    case CS_DC_CONNECT:
        if (c->deadline_ms && now >= c->deadline_ms)
            dial_next_dc(c);
        break;
    case CS_RELAY:
    case CS_FRONT_RELAY: {
        uint64_t idle = cfg->timeout_idle_ms;
        if (c->fronted && idle < FRONT_IDLE_MIN_MS)
            idle = FRONT_IDLE_MIN_MS;
        if (idle && now - c->last_activity_ms >= idle)
            conn_close(c, CLOSE_IDLE, 0, 0);
        break;
    }
    case CS_CLOSED:
        break;
    }
    update_interest(c);
}
