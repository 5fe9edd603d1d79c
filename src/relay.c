/* relay: moving bytes between a connection's two sockets after the
 * handshake. Each direction holds at most one pool block, and its source is
 * read only while that block is empty, so a slow reader stops the other side
 * instead of growing memory. Telegram relays strip the client's TLS records,
 * re-encrypt (client key stream, then DC key stream) and frame what goes
 * back as records; fronted relays copy bytes unchanged. */
#include "relay.h"

#include <errno.h>
#include <sys/socket.h>
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

/* Transforms len bytes at buf in place; returns the bytes to send, which
 * start at buf - header for TG_DOWN (the caller left room). */
static int transform(relay_xform *x, uint8_t *buf, size_t *len)
{
    switch (x->kind) {
    case RELAY_COPY:
        return 0;
    case RELAY_TG_UP:
        if (faketls_rx_unwrap(x->rx, buf, *len, len, &x->why) < 0)
            return -1;
        crypto_ctr_apply(x->first, buf, *len);
        crypto_ctr_apply(x->second, buf, *len);
        return 0;
    case RELAY_TG_DOWN:
        crypto_ctr_apply(x->first, buf, *len);
        crypto_ctr_apply(x->second, buf, *len);
        faketls_tx_header(buf - FAKETLS_HEADER_LEN, *len);
        (*x->tx_records)++;
        *len += FAKETLS_HEADER_LEN;
        *x->tx_bytes += *len;
        return 0;
    }
    return -1;
}

/* The DC ended the session: what a Go TLS server writes before its FIN, an
 * encrypted close_notify alert (2 bytes + content type + 16-byte tag: a
 * 19-byte application-data record). Its payload reaches the client's
 * MTProto transport as stream bytes (tdlib's TlsReaderByteFlow and mtcute
 * pass every record on), so it is the start of a packet that never
 * completes: 7f LL LL 00 announces 256..1020 bytes in the abridged
 * transport and 16..65 KB in the intermediate ones, and EOF follows, as a
 * plain FIN would. Encrypted with the client's key stream, it looks
 * random on the wire, as a real alert does. */
#define CLOSE_NOTIFY_LEN 19

static size_t close_notify(relay_xform *x, uint8_t *rec)
{
    uint8_t *pt = rec + FAKETLS_HEADER_LEN;
    if (crypto_random(pt + 1, CLOSE_NOTIFY_LEN - 1) < 0)
        return 0;
    pt[0] = 0x7f;
    pt[1] = (uint8_t)(64 + pt[1] % 192);
    pt[2] = 0;
    pt[3] = 0;
    crypto_ctr_apply(x->second, pt, CLOSE_NOTIFY_LEN);
    faketls_tx_header(rec, CLOSE_NOTIFY_LEN);
    return FAKETLS_HEADER_LEN + CLOSE_NOTIFY_LEN;
}

relay_status relay_pump(relay_flow *f, int src, int dst, relay_xform *x, pool *p)
{
    if (f->len || f->eof)
        return relay_flush(f, dst, p);
    if (!(f->buf = pool_get(p, POOL_LARGE)))
        return RELAY_NO_MEMORY;
    /* Telegram bytes go out as TLS records: leave room for the header. */
    size_t hdr = x->kind == RELAY_TG_DOWN ? FAKETLS_HEADER_LEN : 0;
    size_t cap = x->kind == RELAY_TG_DOWN
                     ? relay_record_payload_cap(*x->tx_records, *x->tx_bytes)
                     : POOL_BLOCK_SIZE;
    size_t len = 0;
    io_result r = relay_read(src, f->buf + hdr, cap, &len);
    f->off = 0;
    f->len = 0;
    switch (r) {
    case IO_DATA:
        f->read_bytes += len;
        if (transform(x, f->buf + hdr, &len) < 0) {
            pool_put(p, f->buf);
            f->buf = NULL;
            return RELAY_BAD_RECORD;
        }
        f->len = len;
        break;
    case IO_EOF:
        f->eof = 1;
        if (x->kind == RELAY_TG_DOWN)
            f->len = close_notify(x, f->buf);
        break;
    case IO_AGAIN:
        break;
    case IO_ERROR:
        pool_put(p, f->buf);
        f->buf = NULL;
        return RELAY_SRC_ERROR;
    }
    return relay_flush(f, dst, p);
}

_Static_assert(FAKETLS_HEADER_LEN + FAKETLS_TX_MAX_PAYLOAD <= POOL_BLOCK_SIZE,
               "a full-size record must fit one pool block");
