/* web_session: the HTTP side, the carrier and the frame mux of one
 * connection from Caddy (web_stream.c has the streams to the DCs).
 *
 * Ownership: a session owns its socket, its two buffers and its streams.
 * Closing it closes its streams, releases the buffers and hands the struct
 * to env->defer_free, so an event later in the same batch never meets
 * freed memory (it meets a watch with fd -1 instead). */
#include "web_session.h"
#include "web_session_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "log.h"
#include "netutil.h"
#include "relay.h"
#include "web_frame.h"
#include "web_http.h"
#include "web_page.h"
#include "web_route.h"
#include "web_ws.h"

static void session_free_now(web_session *s);

web_link *web_session_link(web_session *s) { return &s->link; }
web_session *web_session_of(web_link *l) { return (web_session *)(void *)l; }

web_metrics *web_session_metrics(const web_session *s) { return &s->env->metrics->web; }
uint64_t web_session_now(const web_session *s) { return s->env->loop->now_ms; }
static int closed(const web_session *s) { return s->state == SS_CLOSED; }

/* ---------- memory ---------- */

void *web_session_hold(web_session *s, size_t n)
{
    void *p = malloc(n);
    if (p) {
        s->held += n;
        web_session_metrics(s)->memory_bytes += n;
    }
    return p;
}

void web_session_unhold(web_session *s, void *p, size_t n)
{
    if (!p)
        return;
    free(p);
    s->held -= n;
    web_session_metrics(s)->memory_bytes -= n;
}

/* ---------- output ---------- */

size_t web_session_out_room(web_session *s)
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
    if (web_session_out_room(s) < n)
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
    if (web_session_out_room(s) < hl + WEB_FRAME_HDR + n)
        return -1;
    out_put(s, h, hl + WEB_FRAME_HDR);
    if (n)
        out_put(s, p, n);
    return 0;
}

static void carrier_fail(web_session *s, web_end why, uint16_t code);

/* A control frame; no room means the client stopped reading us. */
void web_session_out_control(web_session *s, uint8_t type, uint32_t stream, const void *p, size_t n)
{
    if (out_frame(s, type, stream, p, n) < 0)
        carrier_fail(s, WEB_END_NO_MEMORY, WS_CLOSE_INTERNAL);
}

int web_session_flush(web_session *s)
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
        s->last_tx_ms = web_session_now(s);
    }
    s->out_off = s->out_len = 0;
    return 0;
}

/* ---------- teardown ---------- */

void web_session_close_now(web_session *s)
{
    if (closed(s))
        return;
    while (s->streams)
        web_stream_close(s->streams, 0);
    s->state = SS_CLOSED;
    if (s->cw.fd >= 0) {
        loop_watch_remove(s->env->loop, &s->cw);
        close(s->cw.fd);
        s->cw.fd = -1;
    }
    web_metrics *m = web_session_metrics(s);
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
    web_session_unhold(s, s->in, s->in_cap);
    web_session_unhold(s, s->out, s->out_cap);
    web_session_unhold(s, s->tomb, TOMBSTONES * sizeof *s->tomb);
    s->in = s->out = NULL;
    s->tomb = NULL;
    crypto_wipe(&s->cap, sizeof s->cap);
    s->held -= sizeof *s;
    web_session_metrics(s)->memory_bytes -= sizeof *s;
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
        web_stream_close(s->streams, 0);
    s->state = SS_CLOSING;
    s->deadline_ms = web_session_now(s) + CLOSING_MS;
    if (web_session_flush(s) < 0 || s->out_off == s->out_len) {
        web_session_close_now(s);
        return;
    }
    web_session_update(s);
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
        web_session_close_now(s);
}

/* ---------- limits ---------- */

/* A secret's client refused by a limit (where, why): counted, and logged
 * at most once per WEB_LIMITS_LOG_MS (a refused WebView retries at once). */
static void limit_refused(web_session *s, const char *name, web_limit_at at, web_limit why)
{
    const web_env *env = s->env;
    web_session_metrics(s)->limited[at][why]++;
    if (why == WEB_LIM_CONCURRENCY)
        env->metrics->concurrency_limited++;
    uint64_t more = 0;
    if (!env->limits || !web_limits_log_ok(env->limits, web_session_now(s), &more))
        return;
    char tail[80] = "";
    if (more)
        snprintf(tail, sizeof tail, " (%llu more refusals since the last line)",
                 (unsigned long long)more);
    static const char *const what[WEB_AT_COUNT] = {
        "bridge page answered as the site", "carrier answered as the site",
        "stream refused (CLOSE)" };
    if (why == WEB_LIM_CONCURRENCY)
        log_info("web", "client %s: concurrency (%u) reached: %s%s", s->peer,
                 env->cfg->concurrency, what[at], tail);
    else
        log_info("web", "client %s of secret '%s': %s: %s%s", s->peer, name,
                 web_limit_name(why), what[at], tail);
}

/* Capability ci belongs to secrets[ci / 2] (web_server.c builds two per
 * secret, in order, from env->cfg). A secret that could not take a stream
 * now (expired, at max-connections, quota used up) opens nothing: its
 * page and carrier are the site's answer, as its FakeTLS client is
 * fronted. 1 when refused (counted and logged). */
static int cap_refused(web_session *s, int ci, web_limit_at at)
{
    const web_env *env = s->env;
    size_t i = (size_t)ci / 2;
    if (ci < 0 || i >= env->cfg->secret_count)
        return 0;
    const config_secret *sec = &env->cfg->secrets[i];
    web_limit why = web_limits_check(env->limits, sec, (int64_t)time(NULL));
    if (why == WEB_LIM_OK)
        return 0;
    limit_refused(s, sec->name, at, why);
    return 1;
}

/* ---------- the frame mux ---------- */

static void mux_fail(web_session *s, web_end why)
{
    carrier_fail(s, why, WS_CLOSE_PROTOCOL);
}

static void on_open(web_session *s, uint32_t id)
{
    if (web_stream_find(s, id) || web_stream_tombstoned(s, id)) {
        log_info("web", "carrier from %s: OPEN of a used stream id", s->peer);
        mux_fail(s, WEB_END_MUX);
        return;
    }
    const tgf_web_config *wc = &s->env->cfg->web;
    if (s->nstreams >= wc->max_streams) {
        web_session_metrics(s)->streams_refused++;
        web_stream_tomb_add(s, id);
        web_session_out_control(s, WF_CLOSE, id, NULL, 0);
        return;
    }
    /* A stream is what a FakeTLS connection is (web_limits.h): it takes
     * one of its secret's connections and a concurrency slot, under the
     * limits the running config gives that secret now (a reload applies
     * to the next stream). The secret is found by its key, as a FakeTLS
     * hello finds it (a rename keeps its clients under its limits); one
     * whose key the config no longer has keeps the limits its carrier
     * started with, as the carrier keeps its key.
     * Refused: a CLOSE for this stream only (the v1 mux's own refusal,
     * as over max-streams); the carrier and its other streams go on. */
    const config_secret *sec = web_limits_find_key(s->env->cfg, s->cap.key);
    if (!sec)
        sec = &s->sec;
    web_limit_hold hold;
    web_limit why = web_limits_take(s->env->limits, sec, s->env->cfg->concurrency,
                                    (int64_t)time(NULL), &hold);
    if (why != WEB_LIM_OK) {
        limit_refused(s, sec->name, WEB_AT_STREAM, why);
        web_stream_tomb_add(s, id);
        web_session_out_control(s, WF_CLOSE, id, NULL, 0);
        return;
    }
    web_stream *st = web_stream_open(s, id);
    if (!st) {
        web_limits_give(s->env->limits, &hold);
        web_stream_tomb_add(s, id);
        web_session_out_control(s, WF_CLOSE, id, NULL, 0);
        return;
    }
    st->hold = hold;
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
        web_stream *st = web_stream_find(s, f->stream);
        if (!st) {
            if (web_stream_tombstoned(s, f->stream)) {
                s->cur_skip = 1;
                return;
            }
            log_info("web", "carrier from %s: frame for an unknown stream", s->peer);
            mux_fail(s, WEB_END_MUX);
            return;
        }
        if (f->type == WF_CLOSE) {
            web_stream_close(st, 0);   /* abort: queued bytes are dropped */
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
        web_stream_in(s->cur, p, n);
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
        web_session_out_control(s, WF_WELCOME, 0, NULL, 0);   /* alone, the first message */
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
        web_stream_update(s->cur);
    }
}

static void frame_error(web_session *s)
{
    web_session_metrics(s)->frame_errors[s->fr.why]++;
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
        if (web_session_out_room(s) < hl + d->ctl_len) {
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
    s->cap = s->env->caps[s->cap_index];   /* callers checked the index */
    size_t si = (size_t)s->cap_index / 2;   /* caps[2i], caps[2i + 1]: secrets[i] */
    if (si < s->env->cfg->secret_count)
        s->sec = s->env->cfg->secrets[si];
    uint8_t *big = web_session_hold(s, OUT_CAP_CARRIER);
    uint32_t *tomb = web_session_hold(s, TOMBSTONES * sizeof *tomb);
    if (!big || !tomb) {
        web_session_unhold(s, big, OUT_CAP_CARRIER);
        web_session_unhold(s, tomb, TOMBSTONES * sizeof *tomb);
        return -1;
    }
    /* Stream ids are 24-bit and never 0 on the wire: 0 marks a free slot. */
    memset(tomb, 0, TOMBSTONES * sizeof *tomb);
    memcpy(big, s->out + s->out_off, s->out_len - s->out_off);
    s->out_len -= s->out_off;
    s->out_off = 0;
    web_session_unhold(s, s->out, s->out_cap);
    s->out = big;
    s->out_cap = OUT_CAP_CARRIER;
    s->tomb = tomb;
    ws_rx_init(&s->ws, MAX_MESSAGE);
    web_frame_rx_init(&s->fr, UP_DATA_MAX);
    s->state = SS_CARRIER;
    s->carrier_counted = 1;
    web_session_metrics(s)->carriers++;
    (*s->env->carriers)++;
    s->deadline_ms = 0;
    return 0;
}

/* The carrier's read buffer: a whole 64 KiB DATA frame per read (the
 * head's 16 KiB cost four reads, four DC writes and four epoll rounds).
 * Called once the request no longer points into s->in, with s->in_len
 * bytes (what followed the head) to keep; without memory the 16 KiB one
 * stays, which works, only slower. */
static void carrier_in_grow(web_session *s)
{
    if (s->in_cap >= IN_CAP_CARRIER)
        return;
    uint8_t *in = web_session_hold(s, IN_CAP_CARRIER);
    if (!in)
        return;
    memcpy(in, s->in, s->in_len);
    web_session_unhold(s, s->in, s->in_cap);
    s->in = in;
    s->in_cap = IN_CAP_CARRIER;
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
    if (carrier_setup(s) < 0)
        return -1;
    carrier_in_grow(s);
    return 0;
}

void web_session_feed(web_session *s, uint8_t *p, size_t n)
{
    if (s->state == SS_CARRIER)
        carrier_bytes(s, p, n);
    if (!closed(s) && s->state == SS_CARRIER && web_session_flush(s) < 0)
        web_session_close_now(s);
    else
        web_session_update(s);
}

int web_session_carrier_open(const web_session *s) { return s->state == SS_CARRIER; }

static int answer(web_session *s, size_t n, web_answer a)
{
    web_session_metrics(s)->answers[a]++;
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
    if ((k == WR_BRIDGE || k == WR_NOT_FOUND) && cap_refused(s, ci, WEB_AT_PAGE))
        k = WR_SITE;
    int must_close = r->connection_close || r->has_body;
    if (k == WR_WS) {
        if (*env->carriers >= env->cfg->web.max_sessions) {
            answer(s, web_page_busy(o, cap), WEB_ANS_BUSY);
            begin_closing(s, WEB_END_HTTP_DONE);
            return 0;
        }
        int tci = web_tokens_take(env->tokens, web_session_now(s), tok.p, tok.n);
        if (tci < 0 || (size_t)tci >= env->ncaps || cap_refused(s, tci, WEB_AT_CARRIER)) {
            k = WR_SITE;   /* a wrong token looks like any unknown path */
        } else {
            s->cap_index = tci;
            web_session_metrics(s)->answers[WEB_ANS_UPGRADE]++;
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
        if (web_tokens_mint(env->tokens, web_session_now(s), ci, token) < 0 ||
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
                s->deadline_ms = web_session_now(s) + HEAD_TIMEOUT_MS;
            return;
        }
        if (res == WH_BAD) {
            web_session_metrics(s)->bad_http[why]++;
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
            carrier_in_grow(s);
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
        if (!pending && s->in_len < s->in_cap)
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

void web_session_update(web_session *s)
{
    if (closed(s))
        return;
    if (s->state == SS_CLOSING && s->out_off == s->out_len) {
        web_session_close_now(s);
        return;
    }
    if (loop_watch_set(s->env->loop, &s->cw, client_mask(s)) < 0) {
        web_session_close_now(s);
        return;
    }
    for (web_stream *st = s->streams, *next; st; st = next) {
        next = st->next;
        web_stream_update(st);
    }
}

static void read_client(web_session *s)
{
    size_t got = 0;
    io_result r = relay_read(s->cw.fd, s->in + s->in_len, s->in_cap - s->in_len, &got);
    if (r == IO_AGAIN)
        return;
    if (r != IO_DATA) {
        if (s->state == SS_CARRIER)
            s->why = WEB_END_PEER_GONE;
        else
            s->why = WEB_END_HTTP_DONE;
        web_session_close_now(s);
        return;
    }
    s->last_rx_ms = web_session_now(s);
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
    if ((ev & (LOOP_OUT | LOOP_ERR | LOOP_HUP)) && s->out_len > s->out_off && web_session_flush(s) < 0) {
        s->why = s->state == SS_CARRIER ? WEB_END_PEER_GONE : s->why;
        web_session_close_now(s);
        return;
    }
    if ((ev & (LOOP_IN | LOOP_ERR | LOOP_HUP)) && (w->mask & LOOP_IN))
        read_client(s);
    else if ((ev & (LOOP_ERR | LOOP_HUP)) && !(w->mask & LOOP_IN)) {
        s->why = s->state == SS_CARRIER ? WEB_END_PEER_GONE : s->why;
        web_session_close_now(s);
        return;
    }
    /* Answers go out, then the next head (if one is waiting) is read. */
    for (int i = 0; i < 4 && !closed(s); i++) {
        if (s->state == SS_HTTP)
            http_process(s);
        if (!closed(s) && web_session_flush(s) < 0) {
            web_session_close_now(s);
            return;
        }
        if (s->state != SS_HTTP || s->out_len > s->out_off || !s->in_len)
            break;
    }
    if (closed(s))
        return;
    /* A drained output lets the DC streams read again. Only after a
     * write: otherwise (a client read) a stream has had its room all
     * along and epoll reports its socket, so a read here would mostly
     * be one EAGAIN per carrier read. */
    for (web_stream *st = (ev & LOOP_OUT) ? s->streams : NULL, *next; st && !closed(s); st = next) {
        next = st->next;
        if (st->st == ST_RELAY && (web_stream_mask(st) & LOOP_IN))
            web_stream_read(st);
    }
    if (!closed(s) && s->state == SS_CARRIER && web_session_flush(s) < 0) {
        web_session_close_now(s);
        return;
    }
    web_session_update(s);
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
    s->in_cap = IN_CAP;
    env->metrics->web.memory_bytes += s->held;
    s->out_cap = OUT_CAP_HTTP;
    s->cw = (loop_watch){ .fd = fd, .fn = on_client, .ctx = s };
    s->state = SS_HTTP;
    s->why = WEB_END_HTTP_DONE;
    (void)len;
    net_format_ip(peer, s->peer, sizeof s->peer);
    net_set_nodelay(fd);
    s->started_ms = s->last_rx_ms = s->last_tx_ms = web_session_now(s);
    env->metrics->web.sessions++;
    return s;
}

void web_session_run(web_session *s)
{
    web_session_update(s);
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
            web_stream_tick(st, now);
        }
        /* A quiet carrier gets a PING so middleboxes keep it; the answer
         * is not awaited (a late PONG never kills a download). */
        if (s->state == SS_CARRIER && s->hello && now - s->last_tx_ms >= QUIET_PING_MS &&
            s->out_len == s->out_off) {
            uint8_t p[8];
            for (int i = 0; i < 8; i++)
                p[i] = (uint8_t)(now >> (56 - 8 * i));
            web_session_out_control(s, WF_PING, 0, p, sizeof p);
        }
        break;
    case SS_CLOSING:
        if (now >= s->deadline_ms) {
            web_session_close_now(s);
            return;
        }
        break;
    default:
        return;
    }
    if (!closed(s) && web_session_flush(s) < 0) {
        web_session_close_now(s);
        return;
    }
    web_session_update(s);
}
