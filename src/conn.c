/* conn: the per-connection state machine (relay.c moves the bytes once it
 * is established).
 *
 * Ownership: a conn owns its two fds (client, and the fronting target or the
 * DC) and up to three pool blocks (hello bytes, up flow, down flow).
 * conn_close releases all of them and tells the owner, who frees the
 * struct after the event batch, because a later event in the same batch may
 * still point at its watches. */
#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config_ref.h"
#include "crypto.h"
#include "faketls.h"
#include "log.h"
#include "mlkem_shape.h"
#include "netutil.h"
#include "obfs2.h"
#include "proxyproto.h"
#include "relay.h"
#include "secret_usage.h"
#include "socks5.h"

typedef enum {
    CS_PROXY_HEADER,
    CS_HELLO,
    CS_FRONT_RELAY,
    CS_OBFS2_INIT,
    CS_DC_CONNECT,
    CS_RELAY,
    CS_CLOSED
} conn_state;

/* The peer socket (pw) is, in turn, the early fronting connection and then,
 * for a proven client, the DC connection. */
typedef enum { PEER_NONE, PEER_FRONT, PEER_DC } peer_kind;

/* After our PROXY header, the client's first bytes wait this long, so the
 * site reads the header on its own, as from a load balancer that opened the
 * connection ahead of the client's data. Caddy's proxy_protocol wrapper
 * reads the header through a small buffer: taken together with the first
 * bytes, it leaves some of them unread when the site rejects them, and the
 * site's close becomes a RST where a stock server sends a FIN. */
#define FRONT_SETTLE_MS 3

/* Headroom kept in front of the hello bytes, so the obfuscated2 frame toward
 * the DC can be written in place in front of the client's early payload. */
#define CONN_HS_HEADROOM 64

/* A DC dial through a SOCKS5 proxy without [network.timeout] tcp. */
#define CONN_SOCKS_TIMEOUT_MS 10000

/* What Go's runtime sets on accepted sockets (net.ListenConfig's default
 * KeepAliveConfig): Caddy's visitors see this, so ours do until a hello
 * proves the secret. */
#define SITE_KEEPALIVE_IDLE_S 15
#define SITE_KEEPALIVE_INTERVAL_S 15
#define SITE_KEEPALIVE_COUNT 9

struct conn {
    const conn_env *env;
    /* The configuration at accept, held until conn_release: a reload does
     * not change what an established connection runs with. */
    const tgf_config *cfg;
    /* The secret the client proved (index into cfg's secrets), once
     * admitted: its usage slot, and the relay bytes already counted. */
    usage_slot *sec;
    uint32_t sec_index;
    uint64_t sec_seen[2];        /* by metrics_direction */
    loop_watch cw;               /* client socket */
    loop_watch pw;               /* fronting or DC socket; fd -1 if none */
    conn_state state;
    close_reason reason;
    peer_kind peer;
    unsigned peer_connecting : 1;
    unsigned front_failed : 1;   /* every fronting address failed */
    unsigned addr_known : 1;     /* client address final (inbound PROXY read) */
    unsigned fronted : 1;
    unsigned over_limit : 1;     /* front after the inbound PROXY header */
    unsigned dc_counted : 1;
    unsigned mem_wait : 1;       /* a block was refused: retry on the tick */
    unsigned cw_quiet : 1;       /* client socket hung up without an error */
    unsigned pw_quiet : 1;       /* peer socket likewise */
    unsigned fast : 1;           /* fast mode: DC -> client without AES */
    unsigned cli_keyed : 1;      /* cli holds the client's key streams */
    metrics_family family;
    struct sockaddr_storage client_addr;   /* real client (after inbound PROXY) */
    socklen_t client_len;
    uint64_t deadline_ms;        /* handshake or connect deadline; 0 = none */
    uint64_t accepted_ms;        /* for the handshake duration histogram */
    socks5_client *socks;        /* while the DC dial goes through a SOCKS5 proxy */
    uint64_t last_activity_ms;
    uint64_t activity_seen;      /* bytes counted at the last activity check */

    uint8_t hdr[PROXYPROTO_V2_TCP6_LEN];   /* our PROXY header, still to write */
    size_t hdr_off, hdr_len;
    uint64_t hdr_done_ms;        /* when the header was written; 0 = not yet */

    uint8_t *hs;                 /* hello bytes at hs[hs_start..hs_len) */
    size_t hs_start, hs_len;
    size_t hs_next_check;        /* hs_len at which the hello is worth re-checking */

    relay_flow up;               /* client -> peer */
    relay_flow down;             /* peer -> client */

    faketls_rx rx;
    obfs2_ciphers cli;           /* between client and us */
    obfs2_ciphers dc;            /* between us and the DC */
    uint8_t init[OBFS2_FRAME_LEN];
    size_t init_have;
    int dc_num;
    uint32_t dc_seed;            /* reproduces the shuffled address order */
    size_t addr_next;            /* next DC or fronting address to try */
    metrics_dc_slot *dc_slot;
    uint32_t tx_records;         /* records sent to the client after the ServerHello */
    uint64_t tx_bytes;           /* their bytes, for the record-size ramp */
    char peer_ip[48];
};

size_t conn_size(void) { return sizeof(conn); }

static void update_interest(conn *c);
static void start_fronting(conn *c);
static void process_hello(conn *c);
static void process_init(conn *c, size_t raw_from);
static void dial_next_front(conn *c);
static void dial_next_dc(conn *c);

/* ---------- small helpers ---------- */

static uint64_t now_ms(const conn *c) { return c->env->loop->now_ms; }
static pool *conn_pool(const conn *c) { return c->env->pool; }
static metrics *conn_metrics(const conn *c) { return c->env->metrics; }
static int closed(const conn *c) { return c->state == CS_CLOSED; }

static void drop_socks(conn *c)
{
    if (c->socks) {
        socks5_wipe(c->socks);
        free(c->socks);
        c->socks = NULL;
    }
}

static void drop_peer(conn *c)
{
    drop_socks(c);
    if (c->pw.fd >= 0) {
        loop_watch_remove(c->env->loop, &c->pw);
        close(c->pw.fd);
        c->pw.fd = -1;
    }
    c->peer = PEER_NONE;
    c->peer_connecting = 0;
    c->pw_quiet = 0;
}

static void close_fd(loop *l, loop_watch *w, int reset)
{
    if (w->fd < 0)
        return;
    loop_watch_remove(l, w);
    if (reset)
        net_close_reset(w->fd);
    else
        close(w->fd);
    w->fd = -1;
}

static void release_blocks(conn *c)
{
    pool_put(conn_pool(c), c->hs);
    pool_put(conn_pool(c), c->up.buf);
    pool_put(conn_pool(c), c->down.buf);
    c->hs = c->up.buf = c->down.buf = NULL;
}

/* ---------- the secret's numbers ---------- */

/* Adds the relay bytes written since the last call to the secret's
 * traffic and quota; the same bytes the DC's traffic counts (from the
 * moment the DC answered). */
static void account_secret(conn *c)
{
    if (c->sec == NULL || c->state != CS_RELAY)
        return;
    uint64_t now[2];
    now[METRICS_FROM_CLIENT] = c->up.bytes;
    now[METRICS_TO_CLIENT] = c->down.bytes;
    for (int d = 0; d < 2; d++) {
        secret_usage_add(c->sec, d, now[d] - c->sec_seen[d]);
        c->sec_seen[d] = now[d];
    }
}

/* ---------- teardown ---------- */

/* We end a session whose TLS handshake is complete: the client gets what
 * Go's Conn.Close writes first (close_reason.c says which reasons), in one
 * non-blocking send from the stack. Go counts the handshake complete once
 * it has read the client's Finished, the client's first application-data
 * record here (rx.finished): before it, Close sends nothing, and a record
 * Go refuses gets its fatal alert alone. Not when the DC's FIN already
 * queued one (down.eof), nor behind bytes the client has not taken
 * (down.len: a full socket gets no more, it is just closed): the stream
 * must stay whole records, each sent once. Go's closeNotify waits up to
 * 5 s (a write deadline) for the socket to take the record; we do not
 * wait: a socket with no room gets nothing, one with room for part of it
 * keeps that part. */
static void notify_client(conn *c, const close_reason_info *how)
{
    if (!how->alerts || c->fronted || c->cw.fd < 0 || c->down.len || c->down.eof ||
        c->down.shut || c->down.bytes == 0)
        return;
    if (c->state != CS_OBFS2_INIT && c->state != CS_DC_CONNECT && c->state != CS_RELAY)
        return;
    unsigned alerts = how->alerts;
    if (!c->rx.finished) {
        if (alerts < 2)
            return;
        alerts = 1;   /* the fatal alert, no close_notify */
    }
    uint8_t rec[2 * RELAY_CLOSE_NOTIFY_LEN];
    relay_xform x = { .kind = RELAY_TG_DOWN, .second = c->cli_keyed ? &c->cli.tx : NULL,
                      .same_streams = c->fast, .tx_records = &c->tx_records,
                      .tx_bytes = &c->tx_bytes };
    size_t n = 0;
    for (unsigned i = 0; i < alerts && i < 2; i++)
        n += relay_close_notify(&x, rec + n);
    c->down.shut = 1;
    ssize_t sent = n ? send(c->cw.fd, rec, n, MSG_DONTWAIT | MSG_NOSIGNAL) : -1;
    if (sent > 0) {
        c->down.bytes += (uint64_t)sent;
        if (c->down.traffic)
            *c->down.traffic += (uint64_t)sent;
    }
}

/* Linux turns a close() with unread bytes into a RST. The Go server a
 * FakeTLS client believes it talks to (Caddy, HTTP/2 for tdlib's ALPN) has
 * a reader on its socket the whole time, so it closes with a FIN where we
 * had stopped reading: during the DC dial, behind a DC that does not take
 * the up flow. So before a FIN on the Telegram path what the client has
 * queued is discarded without a copy, a bounded amount. Not after a bad
 * record: Go's record layer stops reading there, and the site's own close
 * with the bytes behind it unread is a RST (tests/probes: "bad record
 * inside a session"); we stop reading at the same place. The fronted path
 * is not touched: it never closes with bytes unread (front_site_closed),
 * and the site's own resets must stay resets. */
#define CONN_DRAIN_ROUNDS 16
#define CONN_DRAIN_BYTES (256 * 1024)

static void drain_client(conn *c, close_reason reason, const close_reason_info *how)
{
    if (how->rst_client || reason == CLOSE_BAD_RECORD || c->fronted || c->cw.fd < 0)
        return;
    if (c->state != CS_OBFS2_INIT && c->state != CS_DC_CONNECT && c->state != CS_RELAY)
        return;
    for (int i = 0; i < CONN_DRAIN_ROUNDS; i++) {
        ssize_t n = recv(c->cw.fd, NULL, CONN_DRAIN_BYTES, MSG_DONTWAIT | MSG_TRUNC);
        if (n == 0 || (n < 0 && errno != EINTR))
            return;
    }
}

void conn_close(conn *c, close_reason reason)
{
    if (closed(c))
        return;
    const close_reason_info *how = close_reason_get(reason);
    notify_client(c, how);
    drain_client(c, reason, how);
    account_secret(c);
    if (c->sec != NULL)
        secret_usage_release(c->sec);
    c->reason = reason;
    c->state = CS_CLOSED;
    close_fd(c->env->loop, &c->cw, how->rst_client);
    close_fd(c->env->loop, &c->pw, how->rst_peer);
    release_blocks(c);
    drop_socks(c);
    crypto_wipe(&c->cli, sizeof c->cli);
    crypto_wipe(&c->dc, sizeof c->dc);
    crypto_wipe(c->init, sizeof c->init);

    metrics *m = conn_metrics(c);
    m->client_connections[c->family]--;
    if (c->fronted)
        m->fronting_connections[c->family]--;
    if (c->dc_counted && c->dc_slot)
        c->dc_slot->connections--;
    m->closed[reason]++;
    if (reason == CLOSE_NO_MEMORY || reason == CLOSE_INTERNAL)
        log_warn("conn", "closed: %s", how->name);
    log_debug("conn", "closed: %s, %s, %llu bytes up, %llu bytes down", how->name,
              c->fronted ? "fronted" : "telegram", (unsigned long long)c->up.bytes,
              (unsigned long long)c->down.bytes);
    c->env->on_closed(c->env->owner, c);
}

static void close_reset(conn *c, int client_reset);

/* A relay status from relay.c, mapped to what the connection does. from_client:
 * the flow was client -> peer. */
static void on_relay_status(conn *c, relay_status st, int from_client)
{
    account_secret(c);
    switch (st) {
    case RELAY_OK:
        return;
    case RELAY_NO_MEMORY:
        c->mem_wait = 1;   /* stop reading; conn_tick retries */
        return;
    case RELAY_SRC_ERROR:
        close_reset(c, from_client);
        return;
    case RELAY_DST_ERROR:
        close_reset(c, !from_client);
        return;
    case RELAY_BAD_RECORD:
        conn_close(c, CLOSE_BAD_RECORD);
        return;
    }
}

/* ---------- interest ---------- */

static int relaying(const conn *c) { return c->state == CS_RELAY || c->state == CS_FRONT_RELAY; }

/* The site's FIN, all its bytes out: close the client socket instead of
 * shutting it, so our kernel answers the client's next byte with a RST at
 * once, as the site's own closed socket does (Caddy's TLS server sends FIN
 * only by close()). Client bytes already on their way go to the site first. */
static void front_site_closed(conn *c)
{
    if (closed(c) || c->state != CS_FRONT_RELAY || !c->down.close_on_eof || !c->down.shut)
        return;
    int pending = 0;
    if (!c->up.len && !c->up.eof && ioctl(c->cw.fd, FIONREAD, &pending) == 0 && pending == 0) {
        conn_close(c, CLOSE_DONE);
        return;
    }
    c->down.close_on_eof = 0;
    shutdown(c->cw.fd, SHUT_WR);
}

/* Both directions ended and flushed: a normal close, FIN already sent both ways. */
static void close_if_done(conn *c)
{
    front_site_closed(c);
    if (!closed(c) && relaying(c) && c->up.shut && c->down.shut)
        conn_close(c, CLOSE_DONE);
}

/* The header is out but the site may not have read it yet. */
static int settling(const conn *c)
{
    return c->hdr_done_ms && now_ms(c) < c->hdr_done_ms + FRONT_SETTLE_MS;
}

/* Client bytes may go to the peer: connected, header out and read. */
static int peer_ready(const conn *c)
{
    return c->pw.fd >= 0 && !c->peer_connecting && c->hdr_off == c->hdr_len && !settling(c);
}

static uint32_t client_mask(const conn *c)
{
    uint32_t m = 0;
    switch (c->state) {
    case CS_PROXY_HEADER:
    case CS_HELLO:
    case CS_OBFS2_INIT:
        if (!c->mem_wait)
            m = LOOP_IN;
        break;
    case CS_DC_CONNECT:
        break;
    case CS_RELAY:
    case CS_FRONT_RELAY:
        /* Client bytes wait until our PROXY header has gone out alone. */
        if (!c->up.len && !c->up.eof && !c->mem_wait && peer_ready(c))
            m = LOOP_IN;
        break;
    case CS_CLOSED:
        return 0;
    }
    if (c->down.len)
        m |= LOOP_OUT;
    return m;
}

static uint32_t peer_mask(const conn *c)
{
    if (c->peer_connecting || c->hdr_off < c->hdr_len)
        return LOOP_OUT;
    if (c->socks) {
        size_t pending;
        return socks5_pending(c->socks, &pending) ? LOOP_OUT
             : socks5_want(c->socks) ? LOOP_IN : 0;
    }
    uint32_t m = 0;
    switch (c->state) {
    case CS_PROXY_HEADER:
    case CS_HELLO:
        /* The site may speak or close before we decide: that decides. */
        m = LOOP_IN;
        break;
    case CS_RELAY:
    case CS_FRONT_RELAY:
        if (!c->down.len && !c->down.eof && !c->mem_wait)
            m = LOOP_IN;
        if (c->up.len && !settling(c))
            m |= LOOP_OUT;
        break;
    default:
        break;
    }
    return m;
}

/* A socket that has had the other end's FIN and sent ours has nothing left
 * to report; left registered, it would report a hangup on every wait. One
 * that hung up without an error (quiet) stays off epoll until we want to
 * read from it again, and then tells us its EOF. */
static int set_watch(loop *l, loop_watch *w, uint32_t mask, int finished, int quiet)
{
    if (finished || (quiet && mask == 0)) {
        loop_watch_remove(l, w);
        return 0;
    }
    return loop_watch_set(l, w, mask);
}

static void update_interest(conn *c)
{
    if (closed(c))
        return;
    loop *l = c->env->loop;
    int relay = relaying(c);
    if (set_watch(l, &c->cw, client_mask(c), relay && c->up.eof && c->down.shut, c->cw_quiet) < 0 ||
        set_watch(l, &c->pw, peer_mask(c), relay && c->down.eof && c->up.shut, c->pw_quiet) < 0) {
        log_warn("conn", "epoll_ctl failed: %s", strerror(errno));
        conn_close(c, CLOSE_INTERNAL);
    }
}

/* Notes progress for the Telegram idle timeout. */
static void note_activity(conn *c)
{
    uint64_t seen = c->up.read_bytes + c->up.bytes + c->down.read_bytes + c->down.bytes;
    if (seen != c->activity_seen) {
        c->activity_seen = seen;
        c->last_activity_ms = now_ms(c);
    }
}

/* ---------- the early fronting connection ---------- */

static void dial_next_front(conn *c)
{
    const conn_env *env = c->env;
    drop_peer(c);
    while (c->addr_next < env->front_count) {
        const dc_addr *a = &env->front_addrs[c->addr_next++];
        int fd = net_connect_start((const struct sockaddr *)&a->addr, a->len);
        if (fd < 0) {
            log_debug("conn", "fronting connect failed: %s", strerror(errno));
            continue;
        }
        net_set_nodelay(fd);
        c->pw.fd = fd;
        c->peer = PEER_FRONT;
        c->peer_connecting = 1;
        return;
    }
    c->front_failed = 1;
    conn_metrics(c)->front_unreachable++;
    log_warn("conn", "cannot dial to the fronting target");
    if (c->fronted)
        conn_close(c, CLOSE_FRONT_UNREACHABLE);
}

/* The early fronting connection failed. Before a verdict a Telegram client
 * needs no site, and anyone else now meets a site that is down; after it,
 * the site's failure is passed on as a reset. */
static void front_lost(conn *c)
{
    if (c->fronted) {
        close_reset(c, 0);
        return;
    }
    drop_peer(c);
    c->front_failed = 1;
    conn_metrics(c)->front_unreachable++;
}

/* Queues our PROXY v2 header once the fronting connection is up and the
 * client's address is final. It is written on its own, before any client
 * byte, as a load balancer in front of a stock server would. */
static void queue_front_header(conn *c)
{
    if (!c->cfg->fronting_proxy_protocol || c->peer_connecting || !c->addr_known ||
        c->hdr_len)
        return;
    struct sockaddr_storage dst;
    socklen_t dlen = sizeof dst;
    size_t n = 0;
    if (getpeername(c->pw.fd, (struct sockaddr *)&dst, &dlen) == 0)
        n = proxyproto_v2_build(c->hdr, sizeof c->hdr, (const struct sockaddr *)&c->client_addr,
                                (const struct sockaddr *)&dst);
    if (n == 0) {
        front_lost(c);   /* the site reset at once (ENOTCONN) */
        return;
    }
    c->hdr_off = 0;
    c->hdr_len = n;
}

/* Writes what is due to the fronting target: our header, then the client's
 * bytes once the verdict is "front". */
static void flush_to_front(conn *c)
{
    while (c->hdr_off < c->hdr_len) {
        ssize_t n = write(c->pw.fd, c->hdr + c->hdr_off, c->hdr_len - c->hdr_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            front_lost(c);
            return;
        }
        c->hdr_off += (size_t)n;
        if (c->hdr_off == c->hdr_len)
            c->hdr_done_ms = now_ms(c);
    }
    if (!c->fronted)
        return;
    if (settling(c)) {
        c->env->wake_at(c->env->owner, c, c->hdr_done_ms + FRONT_SETTLE_MS);
        return;
    }
    on_relay_status(c, relay_flush(&c->up, c->pw.fd, conn_pool(c)), 1);
}

void conn_wake(conn *c, uint64_t now)
{
    (void)now;
    if (closed(c))
        return;
    if (c->fronted && c->peer == PEER_FRONT && !c->peer_connecting)
        flush_to_front(c);
    if (closed(c))
        return;
    close_if_done(c);
    update_interest(c);
}

static void front_connect_done(conn *c, int err)
{
    if (err) {
        log_debug("conn", "fronting connect failed: %s", strerror(err));
        dial_next_front(c);
        return;
    }
    c->peer_connecting = 0;
    queue_front_header(c);
    if (!closed(c))
        flush_to_front(c);
}

/* The verdict is "front": the hello bytes become the up flow, exactly the
 * bytes read so far, in order. */
static void start_fronting(conn *c)
{
    metrics *m = conn_metrics(c);
    c->fronted = 1;
    c->state = CS_FRONT_RELAY;
    c->deadline_ms = 0;
    m->domain_fronting++;
    m->fronting_connections[c->family]++;
    c->up.traffic = &m->fronting_traffic[METRICS_FROM_CLIENT];
    c->down.traffic = &m->fronting_traffic[METRICS_TO_CLIENT];
    c->down.close_on_eof = 1;
    c->env->on_fronted(c->env->owner, c);
    if (c->hs && c->hs_len > c->hs_start) {
        c->up.buf = c->hs;
        c->up.off = c->hs_start;
        c->up.len = c->hs_len;
    } else {
        pool_put(conn_pool(c), c->hs);
    }
    c->hs = NULL;
    if (c->front_failed) {
        conn_close(c, CLOSE_FRONT_UNREACHABLE);
        return;
    }
    if (!c->addr_known) {
        /* Fronted before a load balancer's header arrived (deadline, EOF):
         * our header names the socket's own peer, so the site still sees a
         * header first. */
        c->addr_known = 1;
        if (c->peer == PEER_FRONT && !c->peer_connecting)
            queue_front_header(c);
        if (closed(c))
            return;
    }
    if (c->pw.fd >= 0 && !c->peer_connecting && c->hdr_off == c->hdr_len)
        flush_to_front(c);   /* at once, or once the header has settled */
}

/* ---------- Telegram path ---------- */

/* The answer is shaped after the site's own answer to this kind of hello
 * (site_profile.h): its cipher, extension order and key-share group, and
 * one application-data record as long as its encrypted flight. */
static void send_server_hello(conn *c, const faketls_hello *h, uint8_t *block)
{
    tg_secret key = { .host_len = 0 };
    uint8_t scalar[32], share[FAKETLS_MLKEM_SERVER_SHARE];
    site_answer a;
    uint32_t r;
    c->down.buf = block;
    site_store_pick(c->env->site, h, &a, NULL);
    uint8_t *pub = share;
    if (a.sh.group == FAKETLS_GROUP_X25519MLKEM768) {
        /* The hybrid server share: ML-KEM ciphertext, then X25519. */
        pub = share + FAKETLS_MLKEM_CT_LEN;
        if (mlkem_shape_ct(share) < 0) {
            conn_close(c, CLOSE_INTERNAL);
            return;
        }
    }
    /* The scalar and the size draw in one system call (handshake cost). */
    uint8_t rnd[sizeof scalar + sizeof r];
    if (crypto_random(rnd, sizeof rnd) < 0) {
        conn_close(c, CLOSE_INTERNAL);
        return;
    }
    memcpy(scalar, rnd, sizeof scalar);
    memcpy(&r, rnd + sizeof scalar, sizeof r);
    crypto_wipe(rnd, sizeof rnd);
    crypto_x25519_public(scalar, pub);
    crypto_wipe(scalar, sizeof scalar);
    size_t fixed = faketls_shaped_len(h->session_id_len, &a.sh, 0);
    size_t room = fixed && fixed < POOL_BLOCK_SIZE ? POOL_BLOCK_SIZE - fixed : 0;
    size_t app_len = site_answer_appdata_len(&a, r, room < FAKETLS_RECORD_MAX ? room
                                                                              : FAKETLS_RECORD_MAX);
    size_t n = 0;
    /* The random record body is drawn where the builder leaves it. */
    uint8_t *appdata = block + fixed;
    memcpy(key.key, c->cfg->secret_keys[c->sec_index], SECRET_KEY_LEN);
    if (fixed && fixed + app_len <= POOL_BLOCK_SIZE && crypto_random(appdata, app_len) == 0)
        n = faketls_build_shaped(block, POOL_BLOCK_SIZE, h, &key, &a.sh, share, appdata,
                                 app_len);
    crypto_wipe(key.key, sizeof key.key);
    if (n == 0) {
        conn_close(c, CLOSE_INTERNAL);
        return;
    }
    c->down.off = 0;
    c->down.len = n;
    on_relay_status(c, relay_flush(&c->down, c->cw.fd, conn_pool(c)), 0);
}

/* A proven hello: the early fronting connection goes (with a plain FIN
 * after, at most, our PROXY header: the site logs nothing for it at info
 * level), the client gets its own keep-alive and the ServerHello. */
static void accept_telegram(conn *c, const faketls_hello *h, uint8_t *block)
{
    const tgf_config *cfg = c->cfg;
    drop_peer(c);
    c->addr_next = 0;
    if (cfg->client_keepalive_disabled)
        net_set_keepalive(c->cw.fd, 0, 0, 0);
    else
        net_set_keepalive(c->cw.fd, cfg->client_keepalive_idle_s,
                          cfg->client_keepalive_interval_s, cfg->client_keepalive_count);
    size_t rest = c->hs_len - c->hs_start - h->consumed;
    memmove(c->hs + CONN_HS_HEADROOM, c->hs + c->hs_start + h->consumed, rest);
    c->hs_start = c->hs_len = CONN_HS_HEADROOM;
    c->state = CS_OBFS2_INIT;
    faketls_rx_init(&c->rx);
    send_server_hello(c, h, block);
    if (closed(c))
        return;
    c->hs_len += rest;
    if (rest)
        process_init(c, c->hs_start);
}

/* A hello proved a secret but its timestamp is outside the window: the
 * client's or our clock is wrong. Nobody else can tell them why Telegram
 * does not connect, so say it (at most every few seconds). */
static void report_skew(conn *c, const faketls_hello *h, int64_t now)
{
    const config_secret *sec = &c->cfg->secrets[h->key_index];
    int64_t skew = (int64_t)h->timestamp - now;
    uint64_t more = 0;
    usage_slot *slot = secret_usage_slot(c->env->usage, sec->name);
    if (slot != NULL)
        secret_usage_refuse(slot, USAGE_TIME_SKEW);
    if (!secret_usage_skew_warn(c->env->usage, skew, now_ms(c), &more))
        return;
    char ip[48], tail[80] = "";
    net_format_ip((const struct sockaddr *)&c->client_addr, ip, sizeof ip);
    if (more)
        snprintf(tail, sizeof tail, " (%llu more skewed hellos since the last warning)",
                 (unsigned long long)more);
    log_warn("conn", "client %s proved secret '%s' but its clock is %lld s %s ours (tolerance "
             "%u ms): fronted. Sync the clock: on this server (NTP: chrony, systemd-timesyncd) "
             "when every client is off, else on the phone or computer (automatic date and "
             "time); a replay of an old hello looks the same%s", ip, sec->name, (long long)(skew < 0 ? -skew : skew),
             skew < 0 ? "behind" : "ahead of", c->cfg->tolerate_skew_ms, tail);
}

/* A proven hello within its secret's limits takes one of its connections
 * (c->sec); 0. Otherwise -1: the client is fronted like any visitor, since
 * closing it would tell a prober there is a proxy here. */
static int admit_secret(conn *c, const faketls_hello *h, int64_t now)
{
    const config_secret *sec = &c->cfg->secrets[h->key_index];
    usage_slot *slot = secret_usage_slot(c->env->usage, sec->name);
    c->sec_index = h->key_index;
    if (slot == NULL)
        return 0;   /* the table is full: served, not counted (refused at reload) */
    usage_refusal why = secret_usage_admit(slot, sec, now);
    if (why != USAGE_REFUSED_COUNT) {
        log_debug("conn", "secret '%s': %s: fronting", sec->name, secret_usage_refusal_name(why));
        return -1;
    }
    c->sec = slot;
    return 0;
}

/* The bytes that decide: the client's hello. */
static void process_hello(conn *c)
{
    const conn_env *env = c->env;
    const tgf_config *cfg = c->cfg;
    metrics *m = conn_metrics(c);
    size_t cap = pool_block_size(c->hs);
    faketls_hello h;
    faketls_reason why = FAKETLS_R_NONE;
    if (c->hs_len < c->hs_next_check && c->hs_len < cap)
        return;   /* the record in progress is not complete yet */
    const faketls_keyring ring = { cfg->secret_keys, cfg->secret_count, cfg->secret.host,
                                   cfg->secret.host_len, cfg->secret_hmac };
    int64_t now = (int64_t)time(NULL);
    faketls_result r = faketls_check_client_hello_any(c->hs + c->hs_start, c->hs_len - c->hs_start,
                                                      &ring, now, cfg->tolerate_skew_ms, &h, &why);
    if (r == FAKETLS_NEED_MORE) {
        c->hs_next_check = c->hs_start + faketls_hello_next_check(c->hs + c->hs_start,
                                                                  c->hs_len - c->hs_start);
        if (c->hs_len < POOL_BLOCK_SIZE)
            return;   /* read_handshake grows a small block when it fills */
        why = FAKETLS_R_TOO_LONG;
        r = FAKETLS_REJECT;
    }
    if (r == FAKETLS_REJECT) {
        m->handshake_rejected[why]++;
        if (why == FAKETLS_R_TIME_SKEW)
            report_skew(c, &h, now);
        log_debug("conn", "not a proxy client (%s): fronting", faketls_reason_name(why));
        start_fronting(c);
        return;
    }
    /* The answer's block is taken before the replay filter sees the hello,
     * so running out of memory here cannot turn a client into a replay. */
    uint8_t *block = pool_get(conn_pool(c), POOL_LARGE);
    if (!block) {
        c->mem_wait = 1;
        return;
    }
    /* The key is the 28 HMAC bytes of the random: its last 4 carry the
     * timestamp, which a prober could re-stamp within the window. */
    if (env->replay && replay_check_and_insert(env->replay, h.client_random, FAKETLS_RANDOM_MAC_LEN)) {
        pool_put(conn_pool(c), block);
        m->replay_attacks++;
        log_warn("conn", "replay attack has been detected: fronting");
        start_fronting(c);
        return;
    }
    if (admit_secret(c, &h, now) < 0) {
        pool_put(conn_pool(c), block);
        start_fronting(c);
        return;
    }
    accept_telegram(c, &h, block);
}

static void finish_init(conn *c)
{
    const tgf_config *cfg = c->cfg;
    int16_t raw_dc = 0;
    if (obfs2_accept_client(c->init, cfg->secret_keys[c->sec_index], &c->cli, &raw_dc) !=
        OBFS2_OK) {
        log_info("conn", "obfuscated handshake failed: unsupported protocol tag");
        conn_close(c, CLOSE_BAD_OBFS2);
        return;
    }
    c->cli_keyed = 1;
    int dc = dc_resolve(&cfg->dcs, raw_dc);
    if (dc < 0) {
        log_warn("conn", "unknown DC %d requested", (int)raw_dc);
        conn_close(c, CLOSE_UNKNOWN_DC);
        return;
    }
    c->dc_num = dc;

    uint8_t frame[OBFS2_FRAME_LEN];
    do {
        if (crypto_random(frame, sizeof frame) < 0) {
            conn_close(c, CLOSE_INTERNAL);
            return;
        }
    } while (!obfs2_noise_ok(frame));
    if (cfg->fast_mode) {
        uint8_t key[32], iv[16];
        obfs2_client_tx_material(c->init, cfg->secret_keys[c->sec_index], key, iv);
        obfs2_mirror_material(frame, key, iv);
        crypto_wipe(key, sizeof key);
        crypto_wipe(iv, sizeof iv);
        c->fast = 1;
    }
    obfs2_build_dc_frame(frame, (int16_t)dc, &c->dc);

    /* Early payload after the init frame is re-encrypted behind the DC
     * frame, which goes in place in front of it (the init frame and the
     * headroom left that room, so hs_start >= CONN_HS_HEADROOM +
     * OBFS2_FRAME_LEN here): the hello block becomes the up flow. */
    uint8_t *data = c->hs + c->hs_start;
    size_t early = c->hs_len - c->hs_start;
    crypto_ctr_apply(&c->cli.rx, data, early);
    crypto_ctr_apply(&c->dc.tx, data, early);
    c->hs_start -= OBFS2_FRAME_LEN;
    memcpy(c->hs + c->hs_start, frame, OBFS2_FRAME_LEN);
    crypto_wipe(frame, sizeof frame);
    c->up.buf = c->hs;
    c->up.off = c->hs_start;
    c->up.len = c->hs_len;
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
        conn_close(c, CLOSE_BAD_RECORD);
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
    const tgf_config *cfg = c->cfg;
    dc_addr list[2 * DC_MAX_ADDRS];
    size_t n = dc_addresses(&cfg->dcs, c->dc_num, c->dc_seed, list, 2 * DC_MAX_ADDRS);
    drop_peer(c);
    while (c->addr_next < n) {
        const dc_addr *a = &list[c->addr_next++];
        const dc_addr *to = a;
        const conn_env *env = c->env;
        size_t px = 0;
        if (env->proxy_count) {
            /* Each attempt goes through the next upstream, starting from a
             * random one: with several, a dead proxy costs one attempt. */
            px = (c->dc_seed + c->addr_next - 1) % env->proxy_count;
            to = &env->proxy_addrs[px];
        }
        int fd = net_connect_start((const struct sockaddr *)&to->addr, to->len);
        if (fd < 0) {
            log_debug("conn", "DC %d connect failed: %s", c->dc_num, strerror(errno));
            continue;
        }
        if (env->proxy_count) {
            c->socks = malloc(sizeof *c->socks);
            if (!c->socks) {
                close(fd);
                conn_close(c, CLOSE_NO_MEMORY);
                return;
            }
            socks5_begin(c->socks, &cfg->proxies[px], (const struct sockaddr *)&a->addr);
        }
        net_set_nodelay(fd);
        if (!cfg->keepalive_disabled)
            net_set_keepalive(fd, cfg->keepalive_idle_s, cfg->keepalive_interval_s,
                              cfg->keepalive_count);
        net_format_ip((const struct sockaddr *)&a->addr, c->peer_ip, sizeof c->peer_ip);
        c->pw.fd = fd;
        c->peer = PEER_DC;
        c->peer_connecting = 1;
        c->deadline_ms = cfg->timeout_tcp_ms ? now_ms(c) + cfg->timeout_tcp_ms : 0;
        /* The kernel times a connect out, not a proxy that never answers. */
        if (!c->deadline_ms && env->proxy_count)
            c->deadline_ms = now_ms(c) + CONN_SOCKS_TIMEOUT_MS;
        return;
    }
    log_warn("conn", "cannot dial to telegram DC %d", c->dc_num);
    conn_close(c, CLOSE_DC_UNREACHABLE);
}

static void start_dc_relay(conn *c);

/* The SOCKS5 handshake with the upstream proxy: write what it has, read
 * exactly what it wants, until the tunnel to the DC is up. */
static void socks_step(conn *c)
{
    for (;;) {
        size_t len;
        const uint8_t *out = socks5_pending(c->socks, &len);
        if (out) {
            ssize_t n = send(c->pw.fd, out, len, MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
            if (n <= 0) {
                log_debug("conn", "DC %d via SOCKS5: write: %s", c->dc_num, strerror(errno));
                dial_next_dc(c);
                return;
            }
            socks5_sent(c->socks, (size_t)n);
            continue;
        }
        uint8_t in[300];
        size_t want = socks5_want(c->socks);
        if (want > sizeof in)
            want = sizeof in;
        ssize_t n = read(c->pw.fd, in, want);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            log_warn("conn", "DC %d via SOCKS5 proxy: %s", c->dc_num,
                     n == 0 ? "the proxy closed the connection" : strerror(errno));
            dial_next_dc(c);
            return;
        }
        socks5_result r = socks5_input(c->socks, in, (size_t)n);
        if (r == SOCKS5_FAIL) {
            if (c->socks->error == SOCKS5_E_REFUSED)
                log_warn("conn", "DC %d via SOCKS5 proxy: %s: %s", c->dc_num,
                         socks5_error_str(c->socks->error), socks5_rep_str(c->socks->rep));
            else
                log_warn("conn", "DC %d via SOCKS5 proxy: %s", c->dc_num,
                         socks5_error_str(c->socks->error));
            dial_next_dc(c);
            return;
        }
        if (r == SOCKS5_DONE) {
            drop_socks(c);
            start_dc_relay(c);
            return;
        }
    }
}

static void dc_connect_done(conn *c, int err)
{
    if (err) {
        log_debug("conn", "DC %d connect failed: %s", c->dc_num, strerror(err));
        dial_next_dc(c);
        return;
    }
    c->peer_connecting = 0;
    if (c->socks) {
        socks_step(c);
        return;
    }
    start_dc_relay(c);
}

static void start_dc_relay(conn *c)
{
    metrics *m = conn_metrics(c);
    c->state = CS_RELAY;
    metrics_observe_handshake(m, now_ms(c) - c->accepted_ms);
    c->deadline_ms = 0;
    c->last_activity_ms = now_ms(c);
    c->dc_slot = metrics_dc_slot_get(m, c->dc_num, c->peer_ip);
    c->sec_seen[METRICS_FROM_CLIENT] = c->up.bytes;
    c->sec_seen[METRICS_TO_CLIENT] = c->down.bytes;
    if (c->dc_slot) {
        c->dc_slot->connections++;
        c->dc_counted = 1;
        c->up.traffic = &c->dc_slot->traffic[METRICS_FROM_CLIENT];
        c->down.traffic = &c->dc_slot->traffic[METRICS_TO_CLIENT];
    }
    log_debug("conn", "relaying to DC %d at %s", c->dc_num, c->peer_ip);
    on_relay_status(c, relay_flush(&c->up, c->pw.fd, conn_pool(c)), 1);
}

/* ---------- handshake reads ---------- */

/* Makes room for the next read: a small block first, a full one only when
 * a plausible hello (the parser still says NEED_MORE) fills the small one.
 * Returns 0, 1 when the bytes were handed on (fronted), -1 when no block
 * could be had (the caller waits). */
static int make_room(conn *c)
{
    if (!c->hs) {
        if (!(c->hs = pool_get(conn_pool(c), POOL_SMALL)))
            return -1;
        c->hs_start = c->hs_len = CONN_HS_HEADROOM;
        return 0;
    }
    size_t cap = pool_block_size(c->hs);
    if (c->hs_len < cap)
        return 0;
    if (cap == POOL_BLOCK_SIZE) {
        /* A full block is never a Telegram hello (process_hello fronts it
         * first); after the ServerHello it means a client flooding us. */
        if (c->state == CS_OBFS2_INIT)
            conn_close(c, CLOSE_BAD_RECORD);
        else
            start_fronting(c);
        return 1;
    }
    uint8_t *big = pool_get(conn_pool(c), POOL_LARGE);
    if (!big)
        return -1;
    memcpy(big, c->hs, c->hs_len);
    pool_put(conn_pool(c), c->hs);
    c->hs = big;
    return 0;
}

/* The access lists, once the client's address is final: a refused client
 * is fronted like any visitor (mtg closes it, and a close is a tell).
 * Returns 1 when refused. */
static int list_refused(conn *c)
{
    if (!c->env->lists)
        return 0;
    iplists_verdict v = iplists_check(c->env->lists, (const struct sockaddr *)&c->client_addr);
    if (v == IPLISTS_PASS)
        return 0;
    metrics_iplist which = v == IPLISTS_BLOCKED ? METRICS_BLOCKLIST : METRICS_ALLOWLIST;
    conn_metrics(c)->ip_blocklisted[which]++;
    if (log_enabled(LOG_DEBUG)) {
        char ip[64];
        net_format_ip((const struct sockaddr *)&c->client_addr, ip, sizeof ip);
        log_debug("conn", "%s: %s: fronting", ip, v == IPLISTS_BLOCKED ? "ip was blacklisted"
                                                 : "ip was rejected by allowlist");
    }
    return 1;
}

/* The inbound PROXY header of a load balancer in front of us. Returns 0 to
 * go on with the bytes after it, 1 when there is nothing more to do now. */
static int process_proxy_header(conn *c)
{
    struct sockaddr_storage src, dst;
    size_t used = 0;
    int is_local = 0;
    proxyproto_reason why = PROXYPROTO_R_NONE;
    proxyproto_result r = proxyproto_parse_why(c->hs + c->hs_start, c->hs_len - c->hs_start,
                                               &used, &src, &dst, &is_local, &why);
    if (r == PROXYPROTO_NEED_MORE)
        return 1;
    if (r == PROXYPROTO_INVALID) {
        log_info("conn", "invalid PROXY header: %s", proxyproto_reason_str(why));
        conn_close(c, CLOSE_PROXY_HEADER);
        return 1;
    }
    if (r == PROXYPROTO_OK) {
        c->hs_start += used;
        if (!is_local && (src.ss_family == AF_INET || src.ss_family == AF_INET6)) {
            c->client_addr = src;
            c->client_len = src.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                     : sizeof(struct sockaddr_in6);
            /* The gauge follows the real client's family. */
            metrics *m = conn_metrics(c);
            m->client_connections[c->family]--;
            c->family = metrics_family_of((struct sockaddr *)&src);
            m->client_connections[c->family]++;
        }
    }
    c->addr_known = 1;
    if (c->peer == PEER_FRONT && !c->peer_connecting) {
        queue_front_header(c);
        if (closed(c))
            return 1;
        flush_to_front(c);
        if (closed(c))
            return 1;
    }
    if (c->over_limit || list_refused(c)) {
        /* Over the limit or refused by a list: the load balancer's header
         * is ours to strip, everything after it goes to the web server. */
        start_fronting(c);
        return 1;
    }
    c->state = CS_HELLO;
    return c->hs_len == c->hs_start;
}

static void read_handshake(conn *c)
{
    int room = make_room(c);
    if (room) {
        if (room < 0)
            c->mem_wait = 1;
        return;
    }
    size_t from = c->hs_len, got = 0;
    io_result r = relay_read(c->cw.fd, c->hs + c->hs_len, pool_block_size(c->hs) - c->hs_len, &got);
    if (r == IO_AGAIN)
        return;
    if (r == IO_ERROR) {
        conn_close(c, CLOSE_CLIENT_RESET);
        return;
    }
    if (r == IO_EOF) {
        if (c->state == CS_OBFS2_INIT) {
            conn_close(c, CLOSE_DONE);
            return;
        }
        /* EOF before a verdict: front what we have, then pass the FIN on. */
        c->up.eof = 1;
        start_fronting(c);
        return;
    }
    c->hs_len += got;
    if (c->state == CS_PROXY_HEADER && process_proxy_header(c))
        return;
    if (c->state == CS_HELLO)
        process_hello(c);
    else if (c->state == CS_OBFS2_INIT)
        process_init(c, from);
}

/* ---------- events ---------- */

static relay_xform up_xform(conn *c)
{
    if (c->state != CS_RELAY)
        return (relay_xform){ .kind = RELAY_COPY };
    return (relay_xform){ .kind = RELAY_TG_UP, .rx = &c->rx, .first = &c->cli.rx,
                          .second = &c->dc.tx };
}

static relay_xform down_xform(conn *c)
{
    if (c->state != CS_RELAY)
        return (relay_xform){ .kind = RELAY_COPY };
    /* Fast mode: dc.rx and cli.tx are the same stream at the same offset,
     * so applying both would cancel out: apply neither (c->fast stays set
     * once the close_notify has brought cli.tx up to date: it is the
     * last record). */
    return (relay_xform){ .kind = RELAY_TG_DOWN, .first = &c->dc.rx, .second = &c->cli.tx,
                          .same_streams = c->fast, .tx_records = &c->tx_records,
                          .tx_bytes = &c->tx_bytes };
}

static void pump_up(conn *c)
{
    relay_xform x = up_xform(c);
    relay_status st = relay_pump(&c->up, c->cw.fd, c->pw.fd, &x, conn_pool(c));
    if (st == RELAY_BAD_RECORD)
        log_info("conn", "bad TLS record from client (%s)", faketls_reason_name(x.why));
    on_relay_status(c, st, 1);
}

static void pump_down(conn *c)
{
    relay_xform x = down_xform(c);
    on_relay_status(c, relay_pump(&c->down, c->pw.fd, c->cw.fd, &x, conn_pool(c)), 0);
}

/* An error or hangup on a socket we are not reading: a reset must reach
 * the other side now, not at our next write. */
/* One side reset. What it sent before the reset may still be queued in our
 * socket, or held in its flow: pass that on first, as far as the other side
 * takes it at once, so the reset arrives after those bytes, as it would
 * without us (a site's alert before its RST, a client's last request). */
static void salvage(conn *c, int client_side)
{
    if (!relaying(c) || !peer_ready(c))
        return;
    relay_flow *f = client_side ? &c->up : &c->down;
    int src = client_side ? c->cw.fd : c->pw.fd;
    int dst = client_side ? c->pw.fd : c->cw.fd;
    relay_xform x = client_side ? up_xform(c) : down_xform(c);
    /* A reset follows, not a FIN: the flow must not shut the other side. */
    f->shut = 1;
    for (int i = 0; i < 64 && !f->eof; i++) {
        uint64_t before = f->read_bytes;
        if (relay_pump(f, src, dst, &x, conn_pool(c)) != RELAY_OK || f->len ||
            f->read_bytes == before)
            return;
    }
}

static void close_reset(conn *c, int client_reset)
{
    salvage(c, client_reset);
    conn_close(c, client_reset ? CLOSE_CLIENT_RESET : CLOSE_PEER_RESET);
}

/* An error or hangup on a socket we are not reading: a reset must reach
 * the other side now, not at our next write. */
static void pass_reset(conn *c, loop_watch *w, int client_side)
{
    int err = net_connect_error(w->fd);
    if (err) {
        close_reset(c, client_side);
        return;
    }
    /* A hangup with nothing to read wanted now: hear it again once we read. */
    if (client_side)
        c->cw_quiet = 1;
    else
        c->pw_quiet = 1;
    loop_watch_remove(c->env->loop, w);
}

static void on_client(loop_watch *w, uint32_t ev)
{
    conn *c = w->ctx;
    if (closed(c))
        return;
    int wanted_in = w->mask & LOOP_IN;
    if ((ev & (LOOP_OUT | LOOP_ERR | LOOP_HUP)) && c->down.len)
        on_relay_status(c, relay_flush(&c->down, c->cw.fd, conn_pool(c)), 0);
    if (!closed(c) && (ev & (LOOP_IN | LOOP_ERR | LOOP_HUP)) && wanted_in) {
        if (relaying(c))
            pump_up(c);
        else
            read_handshake(c);
    } else if (!closed(c) && (ev & (LOOP_ERR | LOOP_HUP)) && !wanted_in) {
        pass_reset(c, w, 1);
    }
    if (closed(c))
        return;
    note_activity(c);
    close_if_done(c);
    update_interest(c);
}

static void on_peer_connect(conn *c, uint32_t ev)
{
    int err = net_connect_error(c->pw.fd);
    if (!err && (ev & LOOP_ERR))
        err = ECONNREFUSED;
    if (c->peer == PEER_FRONT)
        front_connect_done(c, err);
    else
        dc_connect_done(c, err);
}

static void on_peer(loop_watch *w, uint32_t ev)
{
    conn *c = w->ctx;
    if (closed(c))
        return;
    int wanted_in = w->mask & LOOP_IN;
    if (c->peer_connecting) {
        on_peer_connect(c, ev);
    } else if (c->socks) {
        socks_step(c);
    } else if (c->hdr_off < c->hdr_len) {
        flush_to_front(c);
    } else if (c->state == CS_HELLO || c->state == CS_PROXY_HEADER) {
        /* The site spoke or closed before we decided: so must we. */
        if (ev & (LOOP_IN | LOOP_ERR | LOOP_HUP)) {
            start_fronting(c);
            if (!closed(c))
                pump_down(c);
        }
    } else {
        if ((ev & (LOOP_OUT | LOOP_ERR | LOOP_HUP)) && c->up.len && !settling(c))
            on_relay_status(c, relay_flush(&c->up, c->pw.fd, conn_pool(c)), 1);
        if (!closed(c) && (ev & (LOOP_IN | LOOP_ERR | LOOP_HUP)) && wanted_in && relaying(c))
            pump_down(c);
        else if (!closed(c) && (ev & (LOOP_ERR | LOOP_HUP)) && !wanted_in && w->fd >= 0)
            pass_reset(c, w, 0);
    }
    if (closed(c))
        return;
    note_activity(c);
    close_if_done(c);
    update_interest(c);
}

/* ---------- start and timers ---------- */

conn *conn_start(void *mem, const conn_env *env, int fd, const struct sockaddr *addr,
                 socklen_t len, int over_limit)
{
    conn *c = memset(mem, 0, sizeof(conn));
    const tgf_config *cfg = config_ref_hold(env->cfg);
    c->env = env;
    c->cfg = cfg;
    c->cw = (loop_watch){ .fd = fd, .fn = on_client, .ctx = c };
    c->pw = (loop_watch){ .fd = -1, .fn = on_peer, .ctx = c };
    if (len > sizeof c->client_addr)
        len = sizeof c->client_addr;
    memcpy(&c->client_addr, addr, len);
    c->client_len = len;
    c->family = metrics_family_of(addr);
    c->over_limit = over_limit;
    c->addr_known = !cfg->proxy_protocol_listener;
    net_set_nodelay(fd);
    net_set_keepalive(fd, SITE_KEEPALIVE_IDLE_S, SITE_KEEPALIVE_INTERVAL_S, SITE_KEEPALIVE_COUNT);
    conn_metrics(c)->client_connections[c->family]++;
    c->last_activity_ms = now_ms(c);
    c->accepted_ms = now_ms(c);
    c->deadline_ms = cfg->timeout_handshake_ms ? now_ms(c) + cfg->timeout_handshake_ms : 0;
    c->state = cfg->proxy_protocol_listener ? CS_PROXY_HEADER : CS_HELLO;

    /* The site's clock starts when the client connects, as it would
     * without us: its connection is opened now, whatever the verdict. */
    dial_next_front(c);
    if (over_limit && !cfg->proxy_protocol_listener) {
        conn_metrics(c)->concurrency_limited++;
        log_debug("conn", "connection was concurrency limited: fronting");
        start_fronting(c);
    } else if (over_limit) {
        conn_metrics(c)->concurrency_limited++;
    } else if (!cfg->proxy_protocol_listener && !closed(c) && list_refused(c)) {
        start_fronting(c);
    }
    update_interest(c);
    return c;
}

void conn_release(conn *c)
{
    config_ref_drop(c->cfg);
    c->cfg = NULL;
}

void conn_tick(conn *c, uint64_t now)
{
    const tgf_config *cfg = c->cfg;
    if (closed(c))
        return;
    if (c->mem_wait) {
        c->mem_wait = 0;
        if (c->state == CS_HELLO && c->hs && c->hs_len > c->hs_start)
            process_hello(c);
    }
    int due = c->deadline_ms && now >= c->deadline_ms;
    switch (c->state) {
    case CS_PROXY_HEADER:
    case CS_HELLO:
        if (due) {
            /* The handshake deadline forwards what was read; it never closes. */
            log_debug("conn", "handshake timeout: fronting");
            start_fronting(c);
        }
        break;
    case CS_OBFS2_INIT:
        if (due)
            conn_close(c, CLOSE_HANDSHAKE_TIMEOUT);
        break;
    case CS_DC_CONNECT:
        if (due)
            dial_next_dc(c);
        break;
    case CS_RELAY:
        /* Only Telegram relays idle out: a fronted connection is the site's
         * to close (and TCP keep-alive's), as it would be without us. */
        if (cfg->timeout_idle_ms && now - c->last_activity_ms >= cfg->timeout_idle_ms)
            conn_close(c, CLOSE_IDLE);
        break;
    case CS_FRONT_RELAY:
    case CS_CLOSED:
        break;
    }
    update_interest(c);
}
