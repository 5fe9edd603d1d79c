/* relay: moving bytes between a connection's two sockets after the
 * handshake. Each direction holds at most one pool block (16 KiB, or 64 KiB
 * once it moves bulk), and its source is read only while that block is
 * empty, so a slow reader stops the other side instead of growing memory. Telegram relays strip the client's TLS records,
 * re-encrypt (client key stream, then DC key stream) and frame what goes
 * back as records; fronted relays copy bytes unchanged. */
#include "relay.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Record sizes toward the client follow Go's crypto/tls (what Caddy, the
 * site we front, sends): TLS 1.3 records start at one TCP segment of
 * plaintext (1208-byte MSS estimate minus header, AEAD tag and content type:
 * 1186 bytes), grow by that much per record, and go to full size once 128 KiB
 * have been sent. Our records carry raw bytes, so their length is what Go's
 * ciphertext length would be: plaintext + 17. Full size is mtg's 16379
 * rather than Go's 16401: older tdlib drops records longer than 16384. */
#define GO_SEGMENT_PLAINTEXT 1186
#define GO_AEAD_EXPANSION 17
#define GO_BOOST_BYTES (128 * 1024)

/* Records per readv toward the client: a batch block holds four full ones,
 * or about ten of the first, small ones. */
#define RELAY_SLOTS 16
/* Payload runs handled per parse of the client's records (more just means
 * another parse call). */
#define RELAY_SPANS 32
/* Client payload runs shorter than this are moved and transformed later,
 * together with what follows them. */
#define RELAY_SMALL_RUN 256
/* Reads per relay_pump call while each fills its block: bounds the time one
 * busy connection holds the loop. */
#define RELAY_ROUNDS 4

size_t relay_record_payload_cap(uint32_t records, uint64_t bytes)
{
    size_t cap = FAKETLS_TX_MAX_PAYLOAD;
    if (bytes < GO_BOOST_BYTES && records < 1000) {
        size_t ramp = (size_t)GO_SEGMENT_PLAINTEXT * (records + 1) + GO_AEAD_EXPANSION;
        if (ramp < cap)
            cap = ramp;
    }
    return cap;
}

io_result relay_read(int fd, uint8_t *buf, size_t cap, size_t *got)
{
    *got = 0;
    for (;;) {
        ssize_t n = read(fd, buf, cap);
        if (n > 0) {
            *got = (size_t)n;
            return IO_DATA;
        }
        if (n == 0)
            return IO_EOF;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return IO_AGAIN;
        return IO_ERROR;
    }
}

relay_status relay_flush(relay_flow *f, int dst, pool *p)
{
    while (f->off < f->len) {
        ssize_t n = write(dst, f->buf + f->off, f->len - f->off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return RELAY_OK;
            return RELAY_DST_ERROR;
        }
        f->off += (size_t)n;
        f->bytes += (uint64_t)n;
        if (f->traffic)
            *f->traffic += (uint64_t)n;
    }
    pool_put(p, f->buf);
    f->buf = NULL;
    f->off = f->len = 0;
    if (f->eof && !f->shut) {
        if (!f->close_on_eof)
            shutdown(dst, SHUT_WR);
        f->shut = 1;
    }
    return RELAY_OK;
}

/* Both key streams over src[0..len) into dst, or a plain move without them
 * (or when they are the same stream: fast mode). */
static void apply_streams(const relay_xform *x, uint8_t *dst, const uint8_t *src, size_t len)
{
    if (x->first && x->second && !x->same_streams)
        crypto_ctr_apply2(x->first, x->second, dst, src, len);
    else if (dst != src)
        memmove(dst, src, len);
}

/* What a Go TLS server writes before its FIN (Conn.Close after a completed
 * handshake), an encrypted close_notify alert: 2 bytes + content type +
 * 16-byte tag, a 19-byte application-data record. Sent when the DC ends the
 * session (below) and when we end it ourselves (conn.c). Its payload
 * reaches the client's MTProto transport as stream bytes (tdlib's
 * TlsReaderByteFlow and mtcute pass every record on), so it is the start
 * of a packet that never completes: 7f LL LL 00 announces 256..1020 bytes
 * in the abridged transport and 16..65 KB in the intermediate ones, and
 * EOF follows, as a plain FIN would. Encrypted with the client's key
 * stream, it looks random on the wire, as a real alert does. */
#define CLOSE_NOTIFY_LEN (RELAY_CLOSE_NOTIFY_LEN - FAKETLS_HEADER_LEN)

size_t relay_close_notify(relay_xform *x, uint8_t *rec)
{
    uint8_t *pt = rec + FAKETLS_HEADER_LEN;
    if (crypto_random(pt, CLOSE_NOTIFY_LEN) < 0)
        return 0;
    faketls_tx_header(rec, CLOSE_NOTIFY_LEN);
    if (x->second == NULL)
        return RELAY_CLOSE_NOTIFY_LEN;   /* no client stream: random, as ciphertext is */
    if (x->same_streams) {
        /* Fast mode left the client's stream where the relay started:
         * bring it to the end of what the client has received. */
        crypto_ctr_skip(x->second, *x->tx_bytes - (uint64_t)FAKETLS_HEADER_LEN * *x->tx_records);
        x->same_streams = 0;
    }
    pt[0] = 0x7f;
    pt[1] = (uint8_t)(64 + pt[1] % 192);
    pt[2] = 0;
    pt[3] = 0;
    crypto_ctr_apply(x->second, pt, CLOSE_NOTIFY_LEN);
    return RELAY_CLOSE_NOTIFY_LEN;
}

/* TG_UP: the client's records in buf[0..len) become their payload at
 * buf[0..*out), decrypted and re-encrypted in the same pass that strips the
 * headers. Runs shorter than RELAY_SMALL_RUN are only moved, and the key
 * streams go over them in one call later with what follows: a client
 * sending tiny records must not cost a key schedule per record. -1 on
 * broken framing. */
static int unwrap_up(relay_xform *x, uint8_t *buf, size_t len, size_t *out)
{
    faketls_span spans[RELAY_SPANS];
    size_t r = 0, w = 0, pend = 0;   /* buf[pend..w): moved, not yet transformed */
    while (r < len) {
        size_t count = 0, used = 0;
        int rc = faketls_rx_spans(x->rx, buf + r, len - r, spans, RELAY_SPANS, &count, &used,
                                  &x->why);
        for (size_t i = 0; i < count; i++) {
            const uint8_t *src = buf + r + spans[i].off;
            if (spans[i].len < RELAY_SMALL_RUN) {
                memmove(buf + w, src, spans[i].len);
            } else {
                apply_streams(x, buf + pend, buf + pend, w - pend);
                apply_streams(x, buf + w, src, spans[i].len);
                pend = w + spans[i].len;
            }
            w += spans[i].len;
        }
        if (rc < 0)
            return -1;
        r += used;
    }
    apply_streams(x, buf + pend, buf + pend, w - pend);
    *out = w;
    return 0;
}

/* TG_DOWN: lays out the payload slots of as many records as fit in
 * buf[0..cap) (at most RELAY_SLOTS), each sized by the ramp as if the ones
 * before it were full, which they are whenever a later one gets a byte.
 * Only the first slot may be cut short by the block's end: a short record
 * after a full one (16379 then 59 bytes in a 16 KiB block) is a shape Go's
 * TLS stack never sends. */
static size_t down_slots(const relay_xform *x, uint8_t *buf, size_t cap, struct iovec *iov)
{
    uint32_t records = *x->tx_records;
    uint64_t bytes = *x->tx_bytes;
    size_t at = 0, n = 0;
    while (n < RELAY_SLOTS && cap - at > FAKETLS_HEADER_LEN) {
        size_t room = relay_record_payload_cap(records, bytes);
        if (room > cap - at - FAKETLS_HEADER_LEN) {
            if (n > 0)
                break;
            room = cap - at - FAKETLS_HEADER_LEN;
        }
        iov[n].iov_base = buf + at + FAKETLS_HEADER_LEN;
        iov[n].iov_len = room;
        at += FAKETLS_HEADER_LEN + room;
        bytes += FAKETLS_HEADER_LEN + room;
        records++;
        n++;
    }
    return n;
}

static io_result read_down(relay_xform *x, int src, uint8_t *buf, size_t cap, size_t *got,
                           size_t *room)
{
    struct iovec iov[RELAY_SLOTS];
    size_t n = down_slots(x, buf, cap, iov);
    *got = 0;
    *room = 0;
    for (size_t i = 0; i < n; i++)
        *room += iov[i].iov_len;
    for (;;) {
        ssize_t r = readv(src, iov, (int)n);
        if (r > 0) {
            *got = (size_t)r;
            return IO_DATA;
        }
        if (r == 0)
            return IO_EOF;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return IO_AGAIN;
        return IO_ERROR;
    }
}

/* TG_DOWN: got payload bytes sit in the slots down_slots laid out: each
 * filled slot gets its header and its key streams; the records end to end
 * are what goes out. Returns their length. */
static size_t frame_down(relay_xform *x, uint8_t *buf, size_t cap, size_t got)
{
    struct iovec iov[RELAY_SLOTS];
    size_t n = down_slots(x, buf, cap, iov), out = 0;
    for (size_t i = 0; i < n && got > 0; i++) {
        size_t take = got < iov[i].iov_len ? got : iov[i].iov_len;
        uint8_t *payload = iov[i].iov_base;
        apply_streams(x, payload, payload, take);
        faketls_tx_header(payload - FAKETLS_HEADER_LEN, take);
        (*x->tx_records)++;
        *x->tx_bytes += FAKETLS_HEADER_LEN + take;
        out += FAKETLS_HEADER_LEN + take;
        got -= take;
    }
    return out;
}

/* One read into a fresh block, transformed into f's pending bytes. */
static relay_status fill(relay_flow *f, int src, relay_xform *x, pool *p)
{
    pool_size size = f->bulk ? POOL_BATCH : POOL_LARGE;
    if (!(f->buf = pool_get(p, size))) {
        /* At the cap a full block may still fit: it is all a read needs. */
        if (size == POOL_LARGE || !(f->buf = pool_get(p, POOL_LARGE)))
            return RELAY_NO_MEMORY;
    }
    size_t cap = pool_block_size(f->buf), len = 0, room = cap;
    io_result r = x->kind == RELAY_TG_DOWN ? read_down(x, src, f->buf, cap, &len, &room)
                                           : relay_read(src, f->buf, cap, &len);
    f->off = 0;
    f->len = 0;
    switch (r) {
    case IO_DATA:
        f->read_bytes += len;
        f->bulk = len == room;
        if (x->kind == RELAY_TG_UP && unwrap_up(x, f->buf, len, &len) < 0) {
            pool_put(p, f->buf);
            f->buf = NULL;
            return RELAY_BAD_RECORD;
        }
        if (x->kind == RELAY_TG_DOWN)
            len = frame_down(x, f->buf, cap, len);
        f->len = len;
        break;
    case IO_EOF:
        f->eof = 1;
        if (x->kind == RELAY_TG_DOWN && x->second)
            f->len = relay_close_notify(x, f->buf);
        break;
    case IO_AGAIN:
        f->bulk = 0;
        break;
    case IO_ERROR:
        pool_put(p, f->buf);
        f->buf = NULL;
        return RELAY_SRC_ERROR;
    }
    return RELAY_OK;
}

relay_status relay_pump(relay_flow *f, int src, int dst, relay_xform *x, pool *p)
{
    if (f->len || f->eof)
        return relay_flush(f, dst, p);
    for (int round = 0;; round++) {
        relay_status st = fill(f, src, x, p);
        if (st != RELAY_OK)
            return st;
        st = relay_flush(f, dst, p);
        /* Go on only while the source keeps filling blocks and the
         * destination takes them whole; otherwise the event loop calls
         * again when there is something to do. */
        if (st != RELAY_OK || f->len || f->eof || !f->bulk || round + 1 == RELAY_ROUNDS)
            return st;
    }
}

_Static_assert(FAKETLS_HEADER_LEN + FAKETLS_TX_MAX_PAYLOAD <= POOL_BLOCK_SIZE,
               "a full-size record must fit one pool block");
_Static_assert(4 * (FAKETLS_HEADER_LEN + FAKETLS_TX_MAX_PAYLOAD) <= POOL_BATCH_SIZE,
               "four full-size records must fit one batch block");
