/* web_session: the HTTP side, the carrier and the frame mux of one
 * connection from Caddy, and the streams to the DCs.
 *
 * Ownership: a session owns its socket, its two buffers and its streams; a
 * stream owns its DC socket, its queue and its cipher states. Closing a
 * stream or a session releases all of that at once and hands the struct
 * to env->defer_free, so an event later in the same batch never meets
 * freed memory (it meets a watch with fd -1 instead). */
#include "web_session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "crypto.h"
#include "dc.h"
#include "log.h"
#include "netutil.h"
#include "obfs2.h"
#include "relay.h"
#include "web_frame.h"
#include "web_http.h"
#include "web_page.h"
#include "web_route.h"
#include "web_ws.h"

#define IN_CAP WEB_HTTP_HEAD_MAX          /* one read; an HTTP head fits */
#define OUT_CAP_HTTP WEB_PAGE_MAX         /* the page is the largest answer */
#define OUT_CAP_CARRIER (256u * 1024)
#define CONTROL_RESERVE 4096              /* out room kept for control frames */
#define DOWN_FRAME_MAX 65536              /* DATA towards the client (its JS thread) */
#define DOWN_MIN_ROOM 2048                /* below this, wait for the carrier to drain */
#define STREAM_WINDOW (4u << 20)          /* the v1 implicit window, both ways */
#define STREAM_Q_MARK (256u * 1024)       /* queue toward a DC: stop reading the carrier */
#define SESSION_Q_MARK (512u * 1024)      /* all of a session's queues together */
#define STREAM_Q_MAX (STREAM_Q_MARK + IN_CAP + OBFS2_FRAME_LEN)
#define CREDIT_FLUSH (256u * 1024)        /* WINDOW at this much, or on the tick */
#define UP_DATA_MAX 65536                 /* the client's DATA limit */
#define MAX_MESSAGE (WEB_FRAME_MAX_PAYLOAD + 65536)
#define TOMBSTONES 1024
#define HEAD_TIMEOUT_MS 15000
#define HTTP_IDLE_MS 60000
#define QUIET_PING_MS 20000
#define CLOSING_MS 2000

typedef enum { SS_HTTP, SS_CARRIER, SS_CLOSING, SS_CLOSED } sess_state;
typedef enum { ST_INIT, ST_CONNECT, ST_RELAY, ST_DEAD } stream_state;

typedef struct web_stream {
    struct web_stream *next;
    web_session *s;
    uint32_t id;
    stream_state st;
    loop_watch w;                 /* the DC socket; fd -1 until dialled */
    uint8_t init[OBFS2_FRAME_LEN];
    size_t init_have;
    obfs2_ciphers cli;            /* between the client and us */
    obfs2_ciphers dc;             /* between us and the DC */
    int dc_num;
    uint32_t seed;
    size_t addr_next;
    uint8_t *q;                   /* bytes for the DC, encrypted for it */
    size_t q_off, q_len, q_cap;
    uint64_t rx_window;           /* client bytes we still accept */
    uint64_t tx_window;           /* bytes we may still send the client */
    uint32_t credit;              /* written to the DC, not yet granted back */
    uint64_t deadline_ms;
    metrics_dc_slot *slot;
    uint64_t up_bytes, down_bytes;
    char ip[48];
} web_stream;

struct web_session {
    web_link link;                /* first: the owner's list */
    const web_env *env;
    loop_watch cw;
    sess_state state;
    web_end why;
    char peer[64];                /* the client (X-Forwarded-For) or Caddy */

    uint8_t *in;                  /* IN_CAP bytes */
    size_t in_len;
    uint8_t *out;
    size_t out_off, out_len, out_cap;
    int close_after_flush;

    ws_rx ws;
    web_frame_rx fr;
    int hello, carrier_counted;
    int cap_index;                /* the capability the page was served for */
    uint8_t ctl[8];               /* HELLO / WINDOW payload being collected */
    size_t ctl_len;
    web_stream *cur;              /* the stream of the frame being read, or NULL */
    int cur_skip;                 /* payload of a frame for a tombstoned stream */

    web_stream *streams;
    size_t nstreams;
    uint32_t *tomb;               /* TOMBSTONES closed ids, a ring */
    size_t tomb_next;

    uint64_t started_ms, last_rx_ms, last_tx_ms, deadline_ms;
    uint64_t held;                /* buffer bytes counted in memory_bytes */
};

static void session_free_now(web_session *s);
static void update_interest(web_session *s);
static void stream_update(web_stream *st);
static void stream_close(web_stream *st, int tell_client);

web_link *web_session_link(web_session *s) { return &s->link; }
web_session *web_session_of(web_link *l) { return (web_session *)(void *)l; }

static web_metrics *wm(const web_session *s) { return &s->env->metrics->web; }
static uint64_t now_ms(const web_session *s) { return s->env->loop->now_ms; }
static int closed(const web_session *s) { return s->state == SS_CLOSED; }

/* ---------- memory ---------- */

static void *hold(web_session *s, size_t n)
{
    void *p = malloc(n);
    if (p) {
        s->held += n;
        wm(s)->memory_bytes += n;
    }
    return p;
}

static void unhold(web_session *s, void *p, size_t n)
{
    if (!p)
        return;
    free(p);
    s->held -= n;
    wm(s)->memory_bytes -= n;
}

/* ---------- output ---------- */

static size_t out_room(web_session *s)
{
    if (s->out_off && s->out_off == s->out_len)
        s->out_off = s->out_len = 0;
    if (s->out_off && s->out_cap - s->out_len < s->out_cap / 2) {
        memmove(s->out, s->out + s->out_off, s->out_len - s->out_off);
        s->out_len -= s->out_off;
        s->out_off = 0;
    }
    return s->out_cap - s->out_len;
}

/* Appends bytes to the output; -1 when they do not fit. */
static int out_put(web_session *s, const void *p, size_t n)
{
    if (out_room(s) < n)
        return -1;
    memcpy(s->out + s->out_len, p, n);
    s->out_len += n;
    return 0;
}

/* One WebSocket binary message holding one v1 frame with payload p. */
static int out_frame(web_session *s, uint8_t type, uint32_t stream, const void *p, size_t n)
{
    uint8_t h[WS_HEADER_MAX + WEB_FRAME_HDR];
    size_t hl = ws_header(h, WS_OP_BINARY, WEB_FRAME_HDR + n);
    web_frame_header(h + hl, type, stream, (uint32_t)n);
    if (out_room(s) < hl + WEB_FRAME_HDR + n)
        return -1;
    out_put(s, h, hl + WEB_FRAME_HDR);
    if (n)
        out_put(s, p, n);
    return 0;
}

static void carrier_fail(web_session *s, web_end why, uint16_t code);

/* A control frame; no room means the client stopped reading us. */
static void out_control(web_session *s, uint8_t type, uint32_t stream, const void *p, size_t n)
{
    if (out_frame(s, type, stream, p, n) < 0)
        carrier_fail(s, WEB_END_NO_MEMORY, WS_CLOSE_INTERNAL);
}

static int flush(web_session *s)
{
    while (s->out_off < s->out_len) {
        ssize_t n = write(s->cw.fd, s->out + s->out_off, s->out_len - s->out_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0)
            return -1;
        s->out_off += (size_t)n;
        s->last_tx_ms = now_ms(s);
    }
    s->out_off = s->out_len = 0;
    return 0;
}

/* ---------- teardown ---------- */

static void session_close_now(web_session *s)
{
    if (closed(s))
        return;
    while (s->streams)
        stream_close(s->streams, 0);
    s->state = SS_CLOSED;
    if (s->cw.fd >= 0) {
        loop_watch_remove(s->env->loop, &s->cw);
        close(s->cw.fd);
        s->cw.fd = -1;
    }
    web_metrics *m = wm(s);
    m->sessions--;
    if (s->carrier_counted) {
        m->carriers--;
        (*s->env->carriers)--;
    }
    m->ended[s->why]++;
    log_debug("web", "session from %s ended: %s", s->peer, web_end_name(s->why));
    s->env->on_closed(s->env->owner, s);
    session_free_now(s);
}

static void session_free_now(web_session *s)
{
    unhold(s, s->in, IN_CAP);
    unhold(s, s->out, s->out_cap);
    unhold(s, s->tomb, TOMBSTONES * sizeof *s->tomb);
    s->in = s->out = NULL;
    s->tomb = NULL;
    s->held -= sizeof *s;
    wm(s)->memory_bytes -= sizeof *s;
    s->env->defer_free(s->env->owner, s);
}

/* Ends with our close frame (carrier) or our last answer (HTTP) sent
 * first, as far as the client takes it within CLOSING_MS. */
static void begin_closing(web_session *s, web_end why)
{
    if (s->state == SS_CLOSING || closed(s))
        return;
    s->why = why;
    while (s->streams)
        stream_close(s->streams, 0);
    s->state = SS_CLOSING;
    s->deadline_ms = now_ms(s) + CLOSING_MS;
    if (flush(s) < 0 || s->out_off == s->out_len) {
        session_close_now(s);
        return;
    }
    update_interest(s);
}

static void carrier_fail(web_session *s, web_end why, uint16_t code)
{
    if (s->state != SS_CARRIER)
        return;
    uint8_t c[2 + WS_HEADER_MAX];
    size_t hl = ws_header(c, WS_OP_CLOSE, 2);
    c[hl] = (uint8_t)(code >> 8);
    c[hl + 1] = (uint8_t)code;
    out_put(s, c, hl + 2);   /* best effort: no room, no close frame */
    log_debug("web", "carrier from %s: closing %u (%s)", s->peer, code, web_end_name(why));
    begin_closing(s, why);
}

void web_session_end(web_session *s, web_end why)
{
    if (s->state == SS_CARRIER)
        carrier_fail(s, why, WS_CLOSE_NORMAL);
    else if (s->state == SS_HTTP)
        begin_closing(s, why);
    else if (s->state == SS_CLOSING && why == WEB_END_SHUTDOWN)
        session_close_now(s);
}

/* ---------- streams ---------- */

static web_stream *find_stream(web_session *s, uint32_t id)
{
    for (web_stream *st = s->streams; st; st = st->next)
        if (st->id == id)
            return st;
    return NULL;
}

static int tombstoned(const web_session *s, uint32_t id)
{
    for (size_t i = 0; i < TOMBSTONES; i++)
        if (s->tomb[i] == id)
            return 1;
    return 0;
}

static void q_free(web_stream *st)
{
    unhold(st->s, st->q, st->q_cap);
    st->q = NULL;
    st->q_off = st->q_len = st->q_cap = 0;
}

/* Closes a stream; tell_client: send CLOSE (the relay ended it). Its id
 * becomes a tombstone: late DATA/WINDOW/CLOSE for it are ignored. */
static void stream_close(web_stream *st, int tell_client)
{
    web_session *s = st->s;
    for (web_stream **p = &s->streams; *p; p = &(*p)->next)
        if (*p == st) {
            *p = st->next;
            break;
        }
    s->nstreams--;
    if (s->cur == st) {
        s->cur = NULL;
        s->cur_skip = 1;
    }
    if (st->w.fd >= 0) {
        loop_watch_remove(s->env->loop, &st->w);
        close(st->w.fd);
        st->w.fd = -1;
    }
    if (st->slot) {
        st->slot->connections--;
        st->slot = NULL;
    }
    q_free(st);
    obfs2_wipe(&st->cli);
    obfs2_wipe(&st->dc);
    crypto_wipe(st->init, sizeof st->init);
    s->tomb[s->tomb_next] = st->id;
    s->tomb_next = (s->tomb_next + 1) % TOMBSTONES;
    wm(s)->streams--;
    log_debug("web", "stream %u closed: %llu bytes up, %llu down", st->id,
              (unsigned long long)st->up_bytes, (unsigned long long)st->down_bytes);
    if (tell_client && s->state == SS_CARRIER)
        out_control(s, WF_CLOSE, st->id, NULL, 0);
    st->st = ST_DEAD;
    s->held -= sizeof *st;
    wm(s)->memory_bytes -= sizeof *st;
    s->env->defer_free(s->env->owner, st);   /* its watch may be in this batch */
}

/* Appends to the queue toward the DC. -1 past STREAM_Q_MAX (cannot
 * happen while the carrier is not read at the mark) or out of memory. */
static int q_put(web_stream *st, const uint8_t *p, size_t n)
{
    web_session *s = st->s;
    if (st->q_off == st->q_len)
        st->q_off = st->q_len = 0;
    if (st->q_len + n > st->q_cap) {
        if (st->q_off) {
            memmove(st->q, st->q + st->q_off, st->q_len - st->q_off);
            st->q_len -= st->q_off;
            st->q_off = 0;
        }
        if (st->q_len + n > st->q_cap) {
            size_t want = st->q_cap ? st->q_cap : 16384;
            while (want < st->q_len + n)
                want *= 2;
            if (want > STREAM_Q_MAX)
                want = STREAM_Q_MAX;
            if (st->q_len + n > want)
                return -1;
            uint8_t *nq = malloc(want);
            if (!nq)
                return -1;
            if (st->q_len)
                memcpy(nq, st->q, st->q_len);
            unhold(s, st->q, st->q_cap);
            st->q = nq;
            s->held += want;
            wm(s)->memory_bytes += want;
            st->q_cap = want;
        }
    }
    memcpy(st->q + st->q_len, p, n);
    st->q_len += n;
    return 0;
}

/* Credit back to the client for bytes the DC took. */
static void grant(web_stream *st, int force)
{
    if (!st->credit || (!force && st->credit < CREDIT_FLUSH) || st->s->state != SS_CARRIER)
        return;
    uint8_t d[4] = { (uint8_t)(st->credit >> 24), (uint8_t)(st->credit >> 16),
                     (uint8_t)(st->credit >> 8), (uint8_t)st->credit };
    st->rx_window += st->credit;
    st->credit = 0;
    out_control(st->s, WF_WINDOW, st->id, d, 4);
}

/* Writes the queue, then what arrived (p[0..n), already encrypted for
 * the DC), queueing what the socket does not take. -1: the DC failed. */
static int stream_write(web_stream *st, const uint8_t *p, size_t n)
{
    if (st->st == ST_RELAY) {
        while (st->q_off < st->q_len) {
            ssize_t w = write(st->w.fd, st->q + st->q_off, st->q_len - st->q_off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            if (w < 0)
                return -1;
            st->q_off += (size_t)w;
            st->credit += (uint32_t)w;
            st->up_bytes += (uint64_t)w;
            if (st->slot)
                st->slot->traffic[METRICS_FROM_CLIENT] += (uint64_t)w;
        }
        if (st->q_off == st->q_len)
            q_free(st);
        while (n && !st->q_len) {
            ssize_t w = write(st->w.fd, p, n);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            if (w < 0)
                return -1;
            p += w;
            n -= (size_t)w;
            st->credit += (uint32_t)w;
            st->up_bytes += (uint64_t)w;
            if (st->slot)
                st->slot->traffic[METRICS_FROM_CLIENT] += (uint64_t)w;
        }
    }
    if (n && q_put(st, p, n) < 0)
        return -1;
    grant(st, 0);
    return 0;
}

static void stream_dial_next(web_stream *st)
{
    web_session *s = st->s;
    const tgf_config *cfg = s->env->cfg;
    dc_addr list[2 * DC_MAX_ADDRS];
    size_t n = dc_addresses(&cfg->dcs, st->dc_num, st->seed, list, 2 * DC_MAX_ADDRS);
    if (st->w.fd >= 0) {
        loop_watch_remove(s->env->loop, &st->w);
        close(st->w.fd);
        st->w.fd = -1;
    }
    while (st->addr_next < n) {
        const dc_addr *a = &list[st->addr_next++];
        int fd = net_connect_start((const struct sockaddr *)&a->addr, a->len);
        if (fd < 0)
            continue;
        net_set_nodelay(fd);
        if (!cfg->keepalive_disabled)
            net_set_keepalive(fd, cfg->keepalive_idle_s, cfg->keepalive_interval_s,
                              cfg->keepalive_count);
        net_format_ip((const struct sockaddr *)&a->addr, st->ip, sizeof st->ip);
        st->w.fd = fd;
        st->st = ST_CONNECT;
        st->deadline_ms = cfg->timeout_tcp_ms ? now_ms(s) + cfg->timeout_tcp_ms : 0;
        stream_update(st);
        return;
    }
    log_info("web", "stream %u: cannot dial to telegram DC %d", st->id, st->dc_num);
    wm(s)->streams_dc_unreachable++;
    stream_close(st, 1);
}

/* A dd link's client sends the padded-intermediate tag; a plain link's
 * sends abridged (ef) or intermediate (ee). obfs2_accept_client checks for
 * dd only, so the other tags are tried by flipping the encrypted tag bytes:
 * in CTR mode that flips the plaintext by the same bits, and the cipher
 * state does not depend on them. Returns the tag byte, or 0. */
static uint8_t accept_any_tag(const uint8_t frame[OBFS2_FRAME_LEN], const uint8_t key16[16],
                              int plain_link, obfs2_ciphers *out, int16_t *dc)
{
    static const uint8_t tags[] = { 0xdd, 0xef, 0xee };
    uint8_t f[OBFS2_FRAME_LEN];
    uint8_t found = 0;
    for (size_t t = 0; t < (plain_link ? 3 : 1) && !found; t++) {
        memcpy(f, frame, sizeof f);
        for (int i = 56; i < 60; i++)
            f[i] ^= (uint8_t)(tags[t] ^ 0xdd);
        if (obfs2_accept_client(f, key16, out, dc) == OBFS2_OK)
            found = tags[t];
    }
    crypto_wipe(f, sizeof f);
    return found;
}

/* The client's 64-byte obfuscated2 frame is complete. */
static int stream_init_done(web_stream *st)
{
    web_session *s = st->s;
    const tgf_config *cfg = s->env->cfg;
    int16_t raw = 0;
    const web_cap_entry *cap = &s->env->caps[s->cap_index];
    uint8_t tag = accept_any_tag(st->init, cap->key, cap->kind == WEB_CAP_PLAIN, &st->cli, &raw);
    if (!tag) {
        log_info("web", "stream %u: obfuscated2 frame with a wrong tag or secret", st->id);
        return -1;
    }
    st->dc_num = dc_resolve(&cfg->dcs, raw);
    if (st->dc_num < 0) {
        log_info("web", "stream %u: unknown DC %d", st->id, raw);
        return -1;
    }
    uint8_t frame[OBFS2_FRAME_LEN];
    do {
        if (crypto_random(frame, sizeof frame) < 0)
            return -1;
    } while (!obfs2_noise_ok(frame));
    obfs2_build_dc_frame(frame, raw, &st->dc);
    /* The DC reads the client's framing: give it the client's tag (the
     * same CTR bit flip on the encrypted bytes 56..59). */
    for (int i = 56; i < 60; i++)
        frame[i] ^= (uint8_t)(tag ^ 0xdd);
    int r = q_put(st, frame, sizeof frame);
    crypto_wipe(frame, sizeof frame);
    if (r < 0)
        return -1;
    if (crypto_random(&st->seed, sizeof st->seed) < 0)
        st->seed = (uint32_t)now_ms(s);
    st->addr_next = 0;
    stream_dial_next(st);
    return 0;
}

/* DATA payload for a stream, in place in our input buffer. */
static void stream_in(web_stream *st, uint8_t *p, size_t n)
{
    if (st->st == ST_INIT) {
        size_t take = OBFS2_FRAME_LEN - st->init_have;
        if (take > n)
            take = n;
        memcpy(st->init + st->init_have, p, take);
        st->init_have += take;
        p += take;
        n -= take;
        if (st->init_have < OBFS2_FRAME_LEN)
            return;
        if (stream_init_done(st) < 0) {
            stream_close(st, 1);
            return;
        }
        if (st->st == ST_DEAD)
            return;   /* closed by the dialler */
    }
    if (!n)
        return;
    crypto_ctr_apply(&st->cli.rx, p, n);
    crypto_ctr_apply(&st->dc.tx, p, n);
    if (stream_write(st, p, n) < 0) {
        stream_close(st, 1);
        return;
    }
    stream_update(st);
}

/* One read from the DC into the carrier's output, as one DATA frame. */
static void stream_read(web_stream *st)
{
    web_session *s = st->s;
    size_t room = out_room(s);
    if (room < CONTROL_RESERVE + DOWN_MIN_ROOM || !st->tx_window)
        return;
    size_t max = room - CONTROL_RESERVE - WS_HEADER_MAX - WEB_FRAME_HDR;
    if (max > DOWN_FRAME_MAX)
        max = DOWN_FRAME_MAX;
    if (max > st->tx_window)
        max = (size_t)st->tx_window;
    uint8_t *base = s->out + s->out_len;
    uint8_t *data = base + WS_HEADER_MAX + WEB_FRAME_HDR;
    size_t got = 0;
    io_result r = relay_read(st->w.fd, data, max, &got);
    if (r == IO_AGAIN)
        return;
    if (r != IO_DATA) {
        stream_close(st, 1);   /* the DC ended: the client learns by CLOSE */
        return;
    }
    crypto_ctr_apply(&st->dc.rx, data, got);
    crypto_ctr_apply(&st->cli.tx, data, got);
    uint8_t h[WS_HEADER_MAX];
    size_t hl = ws_header(h, WS_OP_BINARY, WEB_FRAME_HDR + got);
    uint8_t *start = data - WEB_FRAME_HDR - hl;
    memcpy(start, h, hl);
    web_frame_header(start + hl, WF_DATA, st->id, (uint32_t)got);
    size_t total = hl + WEB_FRAME_HDR + got;
    if (start != base)
        memmove(base, start, total);
    s->out_len += total;
    st->tx_window -= got;
    st->down_bytes += got;
    if (st->slot)
        st->slot->traffic[METRICS_TO_CLIENT] += got;
}

static uint32_t stream_mask(const web_stream *st)
{
    if (st->st == ST_CONNECT)
        return LOOP_OUT;
    if (st->st != ST_RELAY)
        return 0;
    const web_session *s = st->s;
    uint32_t m = 0;
    size_t room = s->out_cap - (s->out_len - s->out_off);
    if (s->state == SS_CARRIER && st->tx_window && room >= CONTROL_RESERVE + DOWN_MIN_ROOM)
        m |= LOOP_IN;
    if (st->q_len > st->q_off)
        m |= LOOP_OUT;
    return m;
}

static void stream_update(web_stream *st)
{
    if (st->st == ST_DEAD || st->w.fd < 0)
        return;
    if (loop_watch_set(st->s->env->loop, &st->w, stream_mask(st)) < 0)
        stream_close(st, 1);
}

static void stream_connected(web_stream *st)
{
    web_session *s = st->s;
    st->st = ST_RELAY;
    st->deadline_ms = 0;
    st->slot = metrics_dc_slot_get(s->env->metrics, st->dc_num, st->ip);
    if (st->slot)
        st->slot->connections++;
    log_debug("web", "stream %u relaying to DC %d at %s", st->id, st->dc_num, st->ip);
    if (stream_write(st, NULL, 0) < 0)
        stream_close(st, 1);
}

static void on_dc(loop_watch *w, uint32_t ev)
{
    web_stream *st = w->ctx;
    if (w->fd < 0 || st->st == ST_DEAD)
        return;
    web_session *s = st->s;
    if (st->st == ST_CONNECT) {
        int err = net_connect_error(w->fd);
        if (err || (ev & LOOP_ERR)) {
            stream_dial_next(st);
            update_interest(s);
            return;
        }
        stream_connected(st);
    } else {
        if ((ev & (LOOP_OUT | LOOP_ERR | LOOP_HUP)) && st->q_len > st->q_off &&
            stream_write(st, NULL, 0) < 0) {
            stream_close(st, 1);
        } else if (ev & (LOOP_IN | LOOP_ERR | LOOP_HUP)) {
            if (w->mask & LOOP_IN)
                stream_read(st);
            else if (ev & (LOOP_ERR | LOOP_HUP))
                stream_close(st, 1);
        }
    }
    if (s->state == SS_CARRIER && flush(s) < 0) {
        session_close_now(s);
        return;
    }
    update_interest(s);
}

/* ---------- the frame mux ---------- */

static void mux_fail(web_session *s, web_end why)
{
    carrier_fail(s, why, WS_CLOSE_PROTOCOL);
}

static void on_open(web_session *s, uint32_t id)
{
    if (find_stream(s, id) || tombstoned(s, id)) {
        log_info("web", "carrier from %s: OPEN of a used stream id", s->peer);
        mux_fail(s, WEB_END_MUX);
        return;
    }
    const tgf_web_config *wc = &s->env->cfg->web;
    if (s->nstreams >= wc->max_streams) {
        wm(s)->streams_refused++;
        s->tomb[s->tomb_next] = id;
        s->tomb_next = (s->tomb_next + 1) % TOMBSTONES;
        out_control(s, WF_CLOSE, id, NULL, 0);
        return;
    }
    web_stream *st = hold(s, sizeof *st);
    if (!st) {
        out_control(s, WF_CLOSE, id, NULL, 0);
        return;
    }
    memset(st, 0, sizeof *st);
    st->s = s;
    st->id = id;
    st->st = ST_INIT;
    st->w = (loop_watch){ .fd = -1, .fn = on_dc, .ctx = st };
    st->rx_window = STREAM_WINDOW;
    st->tx_window = STREAM_WINDOW;
    st->next = s->streams;
    s->streams = st;
    s->nstreams++;
    wm(s)->streams++;
    wm(s)->streams_opened++;
}

/* A frame header passed web_frame_check_client. */
static void on_header(web_session *s)
{
    web_frame_rx *f = &s->fr;
    s->cur = NULL;
    s->cur_skip = 0;
    s->ctl_len = 0;
    if (!s->hello) {
        if (f->type != WF_HELLO) {
            mux_fail(s, WEB_END_MUX);
            return;
        }
        return;
    }
    switch (f->type) {
    case WF_HELLO:
        mux_fail(s, WEB_END_MUX);
        return;
    case WF_OPEN:
        on_open(s, f->stream);
        return;
    case WF_PONG:
        s->cur_skip = 1;
        return;
    case WF_DATA:
    case WF_WINDOW:
    case WF_CLOSE: {
        web_stream *st = find_stream(s, f->stream);
        if (!st) {
            if (tombstoned(s, f->stream)) {
                s->cur_skip = 1;
                return;
            }
            log_info("web", "carrier from %s: frame for an unknown stream", s->peer);
            mux_fail(s, WEB_END_MUX);
            return;
        }
        if (f->type == WF_CLOSE) {
            stream_close(st, 0);   /* abort: queued bytes are dropped */
            return;
        }
        if (f->type == WF_DATA) {
            if (f->len > st->rx_window || f->len > UP_DATA_MAX) {
                log_info("web", "carrier from %s: stream %u over its window", s->peer, st->id);
                mux_fail(s, WEB_END_MUX);
                return;
            }
            st->rx_window -= f->len;
        }
        s->cur = st;
        return;
    }
    default:
        mux_fail(s, WEB_END_FRAME);
        return;
    }
}

static void on_payload(web_session *s, uint8_t *p, size_t n)
{
    web_frame_rx *f = &s->fr;
    if (s->cur_skip)
        return;
    if (f->type == WF_HELLO || f->type == WF_WINDOW) {
        memcpy(s->ctl + s->ctl_len, p, n);   /* lengths checked: 1 and 4 */
        s->ctl_len += n;
        return;
    }
    if (f->type == WF_DATA && s->cur)
        stream_in(s->cur, p, n);
}

/* The frame's last byte has arrived. */
static void on_frame_end(web_session *s)
{
    web_frame_rx *f = &s->fr;
    if (s->cur_skip)
        return;
    if (f->type == WF_HELLO && !s->hello) {
        if (s->ctl[0] != 0x01) {
            mux_fail(s, WEB_END_MUX);
            return;
        }
        s->hello = 1;
        out_control(s, WF_WELCOME, 0, NULL, 0);   /* alone, the first message */
        return;
    }
    if (f->type == WF_WINDOW && s->cur) {
        uint32_t d = (uint32_t)s->ctl[0] << 24 | (uint32_t)s->ctl[1] << 16 |
                     (uint32_t)s->ctl[2] << 8 | s->ctl[3];
        if (d == 0 || s->cur->tx_window + d > (1ull << 32)) {
            mux_fail(s, WEB_END_MUX);
            return;
        }
        s->cur->tx_window += d;
        stream_update(s->cur);
    }
}

static void frame_error(web_session *s)
{
    wm(s)->frame_errors[s->fr.why]++;
    log_info("web", "carrier from %s: bad frame (%s)", s->peer, web_frame_reason_name(s->fr.why));
    mux_fail(s, WEB_END_FRAME);
}

/* Message bytes (unmasked) through the frame decoder. */
static void mux_bytes(web_session *s, uint8_t *p, size_t n)
{
    size_t off = 0;
    while (s->state == SS_CARRIER) {
        size_t used = 0, plen = 0;
        uint8_t *piece = NULL;
        web_frame_event e = web_frame_rx_feed(&s->fr, p + off, n - off, &used, &piece, &plen);
        off += used;
        switch (e) {
        case WFX_NEED_MORE:
            return;
        case WFX_HEADER:
            on_header(s);
            if (s->fr.left == 0 && s->state == SS_CARRIER)
                on_frame_end(s);
            break;
        case WFX_PAYLOAD:
            on_payload(s, piece, plen);
            if (s->fr.left == 0 && s->state == SS_CARRIER)
                on_frame_end(s);
            break;
        case WFX_ERROR:
            frame_error(s);
            return;
        }
    }
}

/* ---------- the WebSocket ---------- */

static void on_ws_control(web_session *s)
{
    ws_rx *d = &s->ws;
    if (d->ctl_op == WS_OP_PING) {
        uint8_t h[WS_HEADER_MAX];
        size_t hl = ws_header(h, WS_OP_PONG, d->ctl_len);
        if (out_room(s) < hl + d->ctl_len) {
            carrier_fail(s, WEB_END_NO_MEMORY, WS_CLOSE_INTERNAL);
            return;
        }
        out_put(s, h, hl);
        out_put(s, d->ctl, d->ctl_len);
    } else if (d->ctl_op == WS_OP_CLOSE) {
        uint16_t code = ws_close_code(d->ctl, d->ctl_len);
        if (code == WS_CLOSE_PROTOCOL)
            carrier_fail(s, WEB_END_WS_PROTOCOL, WS_CLOSE_PROTOCOL);
        else
            carrier_fail(s, WEB_END_CLIENT_CLOSE, WS_CLOSE_NORMAL);
    }
}

static void carrier_bytes(web_session *s, uint8_t *p, size_t n)
{
    size_t off = 0;
    while (s->state == SS_CARRIER) {
        size_t used = 0, plen = 0;
        uint8_t *piece = NULL;
        ws_event e = ws_rx_feed(&s->ws, p + off, n - off, &used, &piece, &plen);
        off += used;
        switch (e) {
        case WSX_NEED_MORE:
            return;
        case WSX_MSG_BEGIN:
            web_frame_rx_message(&s->fr);
            break;
        case WSX_MSG_DATA:
            mux_bytes(s, piece, plen);
            break;
        case WSX_MSG_END:
            if (web_frame_rx_end(&s->fr) < 0) {
                frame_error(s);
                return;
            }
            break;
        case WSX_CONTROL:
            on_ws_control(s);
            break;
        case WSX_ERROR: {
            uint16_t code = s->ws.close_code;
            web_end why = code == WS_CLOSE_UNSUPPORTED ? WEB_END_WS_TEXT
                        : code == WS_CLOSE_TOO_BIG ? WEB_END_WS_TOO_BIG
                                                   : WEB_END_WS_PROTOCOL;
            log_info("web", "carrier from %s: WebSocket error, closing %u", s->peer, code);
            carrier_fail(s, why, code);
            return;
        }
        }
    }
}

/* ---------- HTTP ---------- */

/* The client's address: the right-most X-Forwarded-For entry Caddy set,
 * when trusted (our peer is loopback: only Caddy reaches the listener). */
static void take_peer(web_session *s, const web_http_req *r)
{
    if (!s->env->cfg->web.trust_forwarded_for || !r->xff_last.n || r->xff_last.n >= 47)
        return;
    char ip[48];
    memcpy(ip, r->xff_last.p, r->xff_last.n);
    ip[r->xff_last.n] = '\0';
    struct in6_addr a6;
    struct in_addr a4;
    if (inet_pton(AF_INET, ip, &a4) == 1 || inet_pton(AF_INET6, ip, &a6) == 1)
        memcpy(s->peer, ip, r->xff_last.n + 1);
}

/* The carrier's buffers and decoders; the 101 answer is the caller's. */
static int carrier_setup(web_session *s)
{
    uint8_t *big = hold(s, OUT_CAP_CARRIER);
    uint32_t *tomb = hold(s, TOMBSTONES * sizeof *tomb);
    if (!big || !tomb) {
        unhold(s, big, OUT_CAP_CARRIER);
        unhold(s, tomb, TOMBSTONES * sizeof *tomb);
        return -1;
    }
    /* Stream ids are 24-bit and never 0 on the wire: 0 marks a free slot. */
    memset(tomb, 0, TOMBSTONES * sizeof *tomb);
    memcpy(big, s->out + s->out_off, s->out_len - s->out_off);
    s->out_len -= s->out_off;
    s->out_off = 0;
    unhold(s, s->out, s->out_cap);
    s->out = big;
    s->out_cap = OUT_CAP_CARRIER;
    s->tomb = tomb;
    ws_rx_init(&s->ws, MAX_MESSAGE);
    web_frame_rx_init(&s->fr, UP_DATA_MAX);
    s->state = SS_CARRIER;
    s->carrier_counted = 1;
    wm(s)->carriers++;
    (*s->env->carriers)++;
    s->deadline_ms = 0;
    return 0;
}

static int start_carrier(web_session *s, const web_http_req *r)
{
    if (carrier_setup(s) < 0)
        return -1;
    char accept[WS_ACCEPT_LEN + 1];
    ws_accept(r->ws_key.p, r->ws_key.n, accept);
    size_t n = web_page_upgrade(accept, r->proto.p, r->proto.n, (char *)s->out + s->out_len,
                                s->out_cap - s->out_len);
    if (!n)
        return -1;
    s->out_len += n;
    log_info("web", "carrier opened for %s", s->peer);
    return 0;
}

int web_session_force_carrier(web_session *s, int cap_index)
{
    if (s->state != SS_HTTP || cap_index < 0 || (size_t)cap_index >= s->env->ncaps)
        return -1;
    s->cap_index = cap_index;
    return carrier_setup(s);
}

void web_session_feed(web_session *s, uint8_t *p, size_t n)
{
    if (s->state == SS_CARRIER)
        carrier_bytes(s, p, n);
    if (!closed(s) && s->state == SS_CARRIER && flush(s) < 0)
        session_close_now(s);
    else
        update_interest(s);
}

int web_session_carrier_open(const web_session *s) { return s->state == SS_CARRIER; }

static int answer(web_session *s, size_t n, web_answer a)
{
    wm(s)->answers[a]++;
    if (!n)
        return -1;
    s->out_len += n;
    return 0;
}

/* One complete head at in[0..head_len). Returns the bytes it used, or 0
 * when the session is closing. */
static size_t http_request(web_session *s, const web_http_req *r)
{
    const web_env *env = s->env;
    char *o = (char *)s->out + s->out_len;
    size_t cap = s->out_cap - s->out_len;
    take_peer(s, r);
    web_route_cfg rc = { .host = env->host, .ws_path = env->cfg->web.ws_path, .caps = env->caps,
                         .ncaps = env->ncaps };
    int ci = -1;
    web_str tok;
    web_route_kind k = web_route(&rc, r, &ci, &tok);
    int must_close = r->connection_close || r->has_body;
    if (k == WR_WS) {
        if (*env->carriers >= env->cfg->web.max_sessions) {
            answer(s, web_page_busy(o, cap), WEB_ANS_BUSY);
            begin_closing(s, WEB_END_HTTP_DONE);
            return 0;
        }
        int tci = web_tokens_take(env->tokens, now_ms(s), tok.p, tok.n);
        if (tci < 0 || (size_t)tci >= env->ncaps) {
            k = WR_SITE;   /* a wrong token looks like any unknown path */
        } else {
            s->cap_index = tci;
            wm(s)->answers[WEB_ANS_UPGRADE]++;
            if (start_carrier(s, r) < 0) {
                begin_closing(s, WEB_END_NO_MEMORY);
                return 0;
            }
            return r->head_len;
        }
    }
    int ok = 0;
    if (k == WR_BRIDGE) {
        char token[WEB_TOKEN_LEN + 1], nonce[25];
        uint8_t raw[18];
        if (web_tokens_mint(env->tokens, now_ms(s), ci, token) < 0 ||
            crypto_random(raw, sizeof raw) < 0) {
            begin_closing(s, WEB_END_NO_MEMORY);
            return 0;
        }
        web_b64_encode(raw, sizeof raw, 1, 0, nonce, sizeof nonce);
        ok = answer(s, web_page_render(env->host, env->cfg->web.ws_path, token, nonce, o, cap),
                    WEB_ANS_BRIDGE);
        crypto_wipe(token, sizeof token);
        log_info("web", "bridge page for %s", s->peer);
    } else if (k == WR_NOT_FOUND) {
        ok = answer(s, web_page_not_found(must_close, o, cap), WEB_ANS_NOT_FOUND);
    } else {
        ok = answer(s, web_page_site(must_close, o, cap), WEB_ANS_SITE);
    }
    if (ok < 0 || must_close) {
        begin_closing(s, WEB_END_HTTP_DONE);
        return 0;
    }
    return r->head_len;
}

/* Handles the complete heads in the input buffer, one at a time: the next
 * is parsed once the last answer is out (no pipelining needed). */
static void http_process(web_session *s)
{
    while (s->state == SS_HTTP && s->in_len && s->out_len == s->out_off) {
        web_http_req r;
        web_http_reason why;
        web_http_result res = web_http_parse((const char *)s->in, s->in_len, &r, &why);
        if (res == WH_NEED_MORE) {
            if (!s->deadline_ms)
                s->deadline_ms = now_ms(s) + HEAD_TIMEOUT_MS;
            return;
        }
        if (res == WH_BAD) {
            wm(s)->bad_http[why]++;
            log_info("web", "refused an HTTP head from %s: %s", s->peer,
                     web_http_reason_name(why));
            answer(s, web_page_bad_request((char *)s->out + s->out_len, s->out_cap - s->out_len),
                   WEB_ANS_BAD_REQUEST);
            begin_closing(s, WEB_END_HTTP_DONE);
            return;
        }
        s->deadline_ms = 0;
        size_t used = http_request(s, &r);
        if (!used)
            return;
        memmove(s->in, s->in + used, s->in_len - used);
        s->in_len -= used;
        if (s->state == SS_CARRIER) {
            /* Bytes after the upgrade head are the carrier's. */
            size_t n = s->in_len;
            s->in_len = 0;
            if (n)
                carrier_bytes(s, s->in, n);
            return;
        }
    }
}

/* ---------- events ---------- */

/* The carrier is read only while no stream's queue toward its DC, and not
 * all of them together, is at its mark: a session's queues hold at most
 * SESSION_Q_MARK plus one read, whatever its streams do. */
static int any_queue_full(const web_session *s)
{
    size_t total = 0;
    for (const web_stream *st = s->streams; st; st = st->next) {
        size_t q = st->q_len - st->q_off;
        if (q >= STREAM_Q_MARK)
            return 1;
        total += q;
    }
    return total >= SESSION_Q_MARK;
}

static uint32_t client_mask(web_session *s)
{
    uint32_t m = 0;
    size_t pending = s->out_len - s->out_off;
    if (pending)
        m |= LOOP_OUT;
    switch (s->state) {
    case SS_HTTP:
        if (!pending && s->in_len < IN_CAP)
            m |= LOOP_IN;
        break;
    case SS_CARRIER:
        if (s->out_cap - pending >= CONTROL_RESERVE && !any_queue_full(s))
            m |= LOOP_IN;
        break;
    default:
        break;
    }
    return m;
}

static void update_interest(web_session *s)
{
    if (closed(s))
        return;
    if (s->state == SS_CLOSING && s->out_off == s->out_len) {
        session_close_now(s);
        return;
    }
    if (loop_watch_set(s->env->loop, &s->cw, client_mask(s)) < 0) {
        session_close_now(s);
        return;
    }
    for (web_stream *st = s->streams, *next; st; st = next) {
        next = st->next;
        stream_update(st);
    }
}

static void read_client(web_session *s)
{
    size_t got = 0;
    io_result r = relay_read(s->cw.fd, s->in + s->in_len, IN_CAP - s->in_len, &got);
    if (r == IO_AGAIN)
        return;
    if (r != IO_DATA) {
        if (s->state == SS_CARRIER)
            s->why = WEB_END_PEER_GONE;
        else
            s->why = WEB_END_HTTP_DONE;
        session_close_now(s);
        return;
    }
    s->last_rx_ms = now_ms(s);
    if (s->state == SS_HTTP) {
        s->in_len += got;
        http_process(s);
    } else {
        carrier_bytes(s, s->in, got);
    }
}

static void on_client(loop_watch *w, uint32_t ev)
{
    web_session *s = w->ctx;
    if (closed(s))
        return;
    if ((ev & (LOOP_OUT | LOOP_ERR | LOOP_HUP)) && s->out_len > s->out_off && flush(s) < 0) {
        s->why = s->state == SS_CARRIER ? WEB_END_PEER_GONE : s->why;
        session_close_now(s);
        return;
    }
    if ((ev & (LOOP_IN | LOOP_ERR | LOOP_HUP)) && (w->mask & LOOP_IN))
        read_client(s);
    else if ((ev & (LOOP_ERR | LOOP_HUP)) && !(w->mask & LOOP_IN)) {
        s->why = s->state == SS_CARRIER ? WEB_END_PEER_GONE : s->why;
        session_close_now(s);
        return;
    }
    /* Answers go out, then the next head (if one is waiting) is read. */
    for (int i = 0; i < 4 && !closed(s); i++) {
        if (s->state == SS_HTTP)
            http_process(s);
        if (!closed(s) && flush(s) < 0) {
            session_close_now(s);
            return;
        }
        if (s->state != SS_HTTP || s->out_len > s->out_off || !s->in_len)
            break;
    }
    if (closed(s))
        return;
    /* A drained output lets the DC streams read again. */
    for (web_stream *st = s->streams, *next; st && !closed(s); st = next) {
        next = st->next;
        if (st->st == ST_RELAY && (stream_mask(st) & LOOP_IN))
            stream_read(st);
    }
    if (!closed(s) && s->state == SS_CARRIER && flush(s) < 0) {
        session_close_now(s);
        return;
    }
    update_interest(s);
}

web_session *web_session_start(const web_env *env, int fd, const struct sockaddr *peer,
                               socklen_t len)
{
    web_session *s = calloc(1, sizeof *s);
    if (!s) {
        close(fd);
        return NULL;
    }
    s->env = env;
    s->held = sizeof *s;
    s->in = malloc(IN_CAP);
    s->out = malloc(OUT_CAP_HTTP);
    if (!s->in || !s->out) {
        free(s->in);
        free(s->out);
        free(s);
        close(fd);
        return NULL;
    }
    s->held += IN_CAP + OUT_CAP_HTTP;
    env->metrics->web.memory_bytes += s->held;
    s->out_cap = OUT_CAP_HTTP;
    s->cw = (loop_watch){ .fd = fd, .fn = on_client, .ctx = s };
    s->state = SS_HTTP;
    s->why = WEB_END_HTTP_DONE;
    (void)len;
    net_format_ip(peer, s->peer, sizeof s->peer);
    net_set_nodelay(fd);
    s->started_ms = s->last_rx_ms = s->last_tx_ms = now_ms(s);
    env->metrics->web.sessions++;
    return s;
}

void web_session_run(web_session *s)
{
    update_interest(s);
}

void web_session_tick(web_session *s, uint64_t now)
{
    if (closed(s))
        return;
    const tgf_config *cfg = s->env->cfg;
    switch (s->state) {
    case SS_HTTP:
        if (s->deadline_ms && now >= s->deadline_ms) {
            begin_closing(s, WEB_END_HEAD_TIMEOUT);
            return;
        }
        if (!s->in_len && now - s->last_rx_ms >= HTTP_IDLE_MS) {
            begin_closing(s, WEB_END_HTTP_DONE);
            return;
        }
        break;
    case SS_CARRIER:
        if (cfg->timeout_idle_ms && now - s->last_rx_ms >= cfg->timeout_idle_ms) {
            carrier_fail(s, WEB_END_IDLE, WS_CLOSE_NORMAL);
            break;
        }
        for (web_stream *st = s->streams, *next; st && s->state == SS_CARRIER; st = next) {
            next = st->next;
            if (st->st == ST_CONNECT && st->deadline_ms && now >= st->deadline_ms)
                stream_dial_next(st);
            else
                grant(st, 1);
        }
        /* A quiet carrier gets a PING so middleboxes keep it; the answer
         * is not awaited (a late PONG never kills a download). */
        if (s->state == SS_CARRIER && s->hello && now - s->last_tx_ms >= QUIET_PING_MS &&
            s->out_len == s->out_off) {
            uint8_t p[8];
            for (int i = 0; i < 8; i++)
                p[i] = (uint8_t)(now >> (56 - 8 * i));
            out_control(s, WF_PING, 0, p, sizeof p);
        }
        break;
    case SS_CLOSING:
        if (now >= s->deadline_ms) {
            session_close_now(s);
            return;
        }
        break;
    default:
        return;
    }
    if (!closed(s) && flush(s) < 0) {
        session_close_now(s);
        return;
    }
    update_interest(s);
}
