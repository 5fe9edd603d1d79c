/* web_stream: one WEB proxy stream: its obfuscated2 init, the dial to the
 * DC it names, the queue toward the DC (credit back to the client for what
 * the DC took) and reads from the DC into the carrier's output.
 *
 * Ownership: a stream owns its DC socket, its queue and its cipher states;
 * closing it releases them and hands the struct to the session's
 * defer_free (its watch may still be in the current event batch). */
#include "web_session_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto.h"
#include "dc.h"
#include "log.h"
#include "netutil.h"
#include "relay.h"

web_stream *web_stream_find(web_session *s, uint32_t id)
{
    for (web_stream *st = s->streams; st; st = st->next)
        if (st->id == id)
            return st;
    return NULL;
}

int web_stream_tombstoned(const web_session *s, uint32_t id)
{
    for (size_t i = 0; i < TOMBSTONES; i++)
        if (s->tomb[i] == id)
            return 1;
    return 0;
}

static void q_free(web_stream *st)
{
    web_session_unhold(st->s, st->q, st->q_cap);
    st->q = NULL;
    st->q_off = st->q_len = st->q_cap = 0;
}

/* Closes a stream; tell_client: send CLOSE (the relay ended it). Its id
 * becomes a tombstone: late DATA/WINDOW/CLOSE for it are ignored. */
void web_stream_close(web_stream *st, int tell_client)
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
    web_limits_give(s->env->limits, &st->hold);
    q_free(st);
    obfs2_wipe(&st->cli);
    obfs2_wipe(&st->dc);
    crypto_wipe(st->init, sizeof st->init);
    web_stream_tomb_add(s, st->id);
    web_session_metrics(s)->streams--;
    log_debug("web", "stream %u closed: %llu bytes up, %llu down", st->id,
              (unsigned long long)st->up_bytes, (unsigned long long)st->down_bytes);
    if (tell_client && s->state == SS_CARRIER)
        web_session_out_control(s, WF_CLOSE, st->id, NULL, 0);
    st->st = ST_DEAD;
    s->held -= sizeof *st;
    web_session_metrics(s)->memory_bytes -= sizeof *st;
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
            web_session_unhold(s, st->q, st->q_cap);
            st->q = nq;
            s->held += want;
            web_session_metrics(s)->memory_bytes += want;
            st->q_cap = want;
        }
    }
    memcpy(st->q + st->q_len, p, n);
    st->q_len += n;
    return 0;
}

/* Credit back to the client for bytes the DC took. */
void web_stream_grant(web_stream *st, int force)
{
    if (!st->credit || (!force && st->credit < CREDIT_FLUSH) || st->s->state != SS_CARRIER)
        return;
    uint8_t d[4] = { (uint8_t)(st->credit >> 24), (uint8_t)(st->credit >> 16),
                     (uint8_t)(st->credit >> 8), (uint8_t)st->credit };
    st->rx_window += st->credit;
    st->credit = 0;
    web_session_out_control(st->s, WF_WINDOW, st->id, d, 4);
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
            st->last_active_ms = web_session_now(st->s);
            st->credit += (uint32_t)w;
            st->up_bytes += (uint64_t)w;
            if (st->slot)
                st->slot->traffic[METRICS_FROM_CLIENT] += (uint64_t)w;
            web_limits_traffic(&st->hold, METRICS_FROM_CLIENT, (uint64_t)w);
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
            st->last_active_ms = web_session_now(st->s);
            st->credit += (uint32_t)w;
            st->up_bytes += (uint64_t)w;
            if (st->slot)
                st->slot->traffic[METRICS_FROM_CLIENT] += (uint64_t)w;
            web_limits_traffic(&st->hold, METRICS_FROM_CLIENT, (uint64_t)w);
        }
    }
    if (n && q_put(st, p, n) < 0)
        return -1;
    web_stream_grant(st, 0);
    return 0;
}

void web_stream_dial_next(web_stream *st)
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
        st->deadline_ms = cfg->timeout_tcp_ms ? web_session_now(s) + cfg->timeout_tcp_ms : 0;
        web_stream_update(st);
        return;
    }
    log_info("web", "stream %u: cannot dial to telegram DC %d", st->id, st->dc_num);
    web_session_metrics(s)->streams_dc_unreachable++;
    web_stream_close(st, 1);
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
    const web_cap_entry *cap = &s->cap;
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
        st->seed = (uint32_t)web_session_now(s);
    st->addr_next = 0;
    web_stream_dial_next(st);
    return 0;
}

/* DATA payload for a stream, in place in our input buffer. */
void web_stream_in(web_stream *st, uint8_t *p, size_t n)
{
    if (n)
        st->last_active_ms = web_session_now(st->s);
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
            web_stream_close(st, 1);
            return;
        }
        if (st->st == ST_DEAD)
            return;   /* closed by the dialler */
    }
    if (!n)
        return;
    /* Both key streams in one pass (the FakeTLS relay's fused AES). */
    crypto_ctr_apply2(&st->cli.rx, &st->dc.tx, p, p, n);
    if (stream_write(st, p, n) < 0) {
        web_stream_close(st, 1);
        return;
    }
    web_stream_update(st);
}

/* One read from the DC into the carrier's output, as one DATA frame. */
void web_stream_read(web_stream *st)
{
    web_session *s = st->s;
    size_t room = web_session_out_room(s);
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
        web_stream_close(st, 1);   /* the DC ended: the client learns by CLOSE */
        return;
    }
    st->last_active_ms = web_session_now(s);
    crypto_ctr_apply2(&st->dc.rx, &st->cli.tx, data, data, got);
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
    web_limits_traffic(&st->hold, METRICS_TO_CLIENT, got);
}

uint32_t web_stream_mask(const web_stream *st)
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

void web_stream_update(web_stream *st)
{
    if (st->st == ST_DEAD || st->w.fd < 0)
        return;
    if (loop_watch_set(st->s->env->loop, &st->w, web_stream_mask(st)) < 0)
        web_stream_close(st, 1);
}

static void stream_connected(web_stream *st)
{
    web_session *s = st->s;
    st->st = ST_RELAY;
    st->deadline_ms = 0;
    st->last_active_ms = web_session_now(s);
    st->slot = metrics_dc_slot_get(s->env->metrics, st->dc_num, st->ip);
    if (st->slot)
        st->slot->connections++;
    log_debug("web", "stream %u relaying to DC %d at %s", st->id, st->dc_num, st->ip);
    if (stream_write(st, NULL, 0) < 0)
        web_stream_close(st, 1);
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
            web_stream_dial_next(st);
            web_session_update(s);
            return;
        }
        stream_connected(st);
    } else {
        if ((ev & (LOOP_OUT | LOOP_ERR | LOOP_HUP)) && st->q_len > st->q_off &&
            stream_write(st, NULL, 0) < 0) {
            web_stream_close(st, 1);
        } else if (ev & (LOOP_IN | LOOP_ERR | LOOP_HUP)) {
            if (w->mask & LOOP_IN)
                web_stream_read(st);
            else if (ev & (LOOP_ERR | LOOP_HUP))
                web_stream_close(st, 1);
        }
    }
    if (s->state == SS_CARRIER && web_session_flush(s) < 0) {
        web_session_close_now(s);
        return;
    }
    web_session_update(s);
}

void web_stream_tick(web_stream *st, uint64_t now)
{
    web_session *s = st->s;
    uint32_t idle = s->env->cfg->timeout_idle_ms;
    int due = st->deadline_ms && now >= st->deadline_ms;
    if (st->st == ST_CONNECT && due) {
        web_stream_dial_next(st);
    } else if (st->st == ST_INIT && due) {
        /* debug, as conn.c's handshake timeouts: a client can make many */
        log_debug("web", "stream %u: no obfuscated2 init within the handshake timeout", st->id);
        web_session_metrics(s)->streams_init_timeout++;
        web_stream_close(st, 1);
    } else if (st->st == ST_RELAY && idle && now - st->last_active_ms >= idle) {
        /* As a FakeTLS relay (conn.c, CS_RELAY): silence both ways for
         * the idle timeout ends it; the carrier's pings are not its bytes. */
        log_debug("web", "stream %u: idle timeout", st->id);
        web_session_metrics(s)->streams_idle++;
        web_stream_close(st, 1);
    } else {
        web_stream_grant(st, 1);
    }
}

/* A new stream in INIT; NULL when memory is short. */
web_stream *web_stream_open(web_session *s, uint32_t id)
{
    web_stream *st = web_session_hold(s, sizeof *st);
    if (!st)
        return NULL;
    memset(st, 0, sizeof *st);
    st->s = s;
    st->id = id;
    st->st = ST_INIT;
    st->w = (loop_watch){ .fd = -1, .fn = on_dc, .ctx = st };
    st->rx_window = STREAM_WINDOW;
    st->tx_window = STREAM_WINDOW;
    /* Its slots are held from now: a stream that never sends its init
     * gives them back after the handshake timeout, as a FakeTLS client
     * that never finishes its hello and init is dropped. */
    uint32_t hs = s->env->cfg->timeout_handshake_ms;
    st->last_active_ms = web_session_now(s);
    st->deadline_ms = hs ? st->last_active_ms + hs : 0;
    st->next = s->streams;
    s->streams = st;
    s->nstreams++;
    web_session_metrics(s)->streams++;
    web_session_metrics(s)->streams_opened++;
    return st;
}

void web_stream_tomb_add(web_session *s, uint32_t id)
{
    s->tomb[s->tomb_next] = id;
    s->tomb_next = (s->tomb_next + 1) % TOMBSTONES;
}
