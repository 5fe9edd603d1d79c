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

#include "crypto.h"
#include "log.h"
#include "server.h"

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

static size_t record_payload_cap(const conn *c)
{
    size_t cap = FAKETLS_TX_MAX_PAYLOAD;
    if (c->tx_bytes < GO_BOOST_BYTES && c->tx_records < 1000) {
        size_t ramp = (size_t)GO_SEGMENT_PLAINTEXT * (c->tx_records + 1) + GO_AEAD_EXPANSION;
        if (ramp < cap)
            cap = ramp;
    }
    return cap;
}

/* read(2) with results normalised once: >0 bytes, 0 EOF, -1 would block,
 * -2 error (errno kept). */
ssize_t relay_read(int fd, uint8_t *buf, size_t cap)
{
    for (;;) {
        ssize_t n = read(fd, buf, cap);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return -1;
        return -2;
    }
}

/* Writes a flow's pending bytes to fd. Releases the block when empty and
 * passes a FIN on once the source has ended. Returns 0, or -1 on a write
 * error (the destination reset or vanished). */
static int flush_flow(conn *c, conn_flow *f, int fd, uint64_t *traffic)
{
    while (f->off < f->len) {
        ssize_t n = write(fd, f->buf + f->off, f->len - f->off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        f->off += (size_t)n;
        f->bytes += (uint64_t)n;
        if (traffic)
            *traffic += (uint64_t)n;
        c->last_activity_ms = c->srv->loop.now_ms;
    }
    if (f->buf) {
        pool_put(&c->srv->pool, f->buf);
        f->buf = NULL;
    }
    f->off = f->len = 0;
    if (f->eof && !f->shut) {
        shutdown(fd, SHUT_WR);
        f->shut = 1;
    }
    return 0;
}

static uint64_t *traffic_counter(conn *c, metrics_direction d)
{
    if (c->fronted)
        return &c->srv->metrics.fronting_traffic[d];
    return c->dc_slot ? &c->dc_slot->traffic[d] : NULL;
}

int relay_flush_up(conn *c)
{
    return flush_flow(c, &c->up, c->pw.fd, traffic_counter(c, METRICS_FROM_CLIENT));
}

int relay_flush_down(conn *c)
{
    return flush_flow(c, &c->down, c->cw.fd, traffic_counter(c, METRICS_TO_CLIENT));
}

/* Reads once from the client into the up flow (transforming for Telegram)
 * and writes it on immediately; reading resumes only when it is flushed. */
void relay_from_client(conn *c)
{
    server *s = c->srv;
    if (!(c->up.buf = pool_get(&s->pool))) {
        conn_close(c, CLOSE_NO_MEMORY, 0, 0);
        return;
    }
    ssize_t n = relay_read(c->cw.fd, c->up.buf, POOL_BLOCK_SIZE);
    size_t len = n > 0 ? (size_t)n : 0;
    if (n > 0 && c->state == CS_RELAY) {
        faketls_reason why = FAKETLS_R_NONE;
        if (faketls_rx_unwrap(&c->rx, c->up.buf, len, &len, &why) < 0) {
            log_info("conn", "bad TLS record from client (%s)", faketls_reason_name(why));
            conn_close(c, CLOSE_BAD_RECORD, 0, 1);
            return;
        }
        crypto_ctr_apply(&c->cli.rx, c->up.buf, len);
        crypto_ctr_apply(&c->dc.tx, c->up.buf, len);
    }
    c->up.off = 0;
    c->up.len = len;
    if (n == 0)
        c->up.eof = 1;
    if (n == -2) {
        conn_close(c, CLOSE_CLIENT_RESET, 0, 1);
        return;
    }
    if (n > 0)
        c->last_activity_ms = c->srv->loop.now_ms;
    if (relay_flush_up(c) < 0)
        conn_close(c, CLOSE_PEER_RESET, 1, 0);
}

void relay_from_peer(conn *c)
{
    server *s = c->srv;
    if (!(c->down.buf = pool_get(&s->pool))) {
        conn_close(c, CLOSE_NO_MEMORY, 0, 0);
        return;
    }
    /* Telegram bytes go out as TLS records: leave room for the header. */
    size_t hdr = c->state == CS_RELAY ? 5 : 0;
    size_t cap = c->state == CS_RELAY ? record_payload_cap(c) : POOL_BLOCK_SIZE;
    ssize_t n = relay_read(c->pw.fd, c->down.buf + hdr, cap);
    size_t len = 0;
    if (n > 0) {
        len = (size_t)n;
        if (hdr) {
            crypto_ctr_apply(&c->dc.rx, c->down.buf + hdr, len);
            crypto_ctr_apply(&c->cli.tx, c->down.buf + hdr, len);
            faketls_tx_header(c->down.buf, len);
            c->tx_records++;
            c->tx_bytes += len + hdr;
            len += hdr;
        }
        c->last_activity_ms = c->srv->loop.now_ms;
    }
    c->down.off = 0;
    c->down.len = len;
    if (n == 0)
        c->down.eof = 1;
    if (n == -2) {
        conn_close(c, CLOSE_PEER_RESET, 1, 0);
        return;
    }
    if (relay_flush_down(c) < 0)
        conn_close(c, CLOSE_CLIENT_RESET, 0, 1);
}

_Static_assert(5 + FAKETLS_TX_MAX_PAYLOAD <= POOL_BLOCK_SIZE,
               "a full-size record must fit one pool block");
