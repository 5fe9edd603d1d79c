/* relay: the byte mover. It moves one direction of an established
 * connection from a source descriptor to a destination descriptor through
 * one pool block (a full block, or a batch block once a read has filled a
 * full one), optionally transformed, and reports what happened. It
 * never closes anything and knows nothing of connections or servers: the
 * owner (conn.c) maps each status to what the connection does next. */
#ifndef TGF_RELAY_H
#define TGF_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "faketls.h"
#include "pool.h"

/* One read(2), normalised once. */
typedef enum {
    IO_DATA,   /* *got > 0 bytes */
    IO_AGAIN,  /* nothing now (EAGAIN) */
    IO_EOF,    /* the peer sent FIN */
    IO_ERROR   /* reset or other failure; errno kept */
} io_result;

io_result relay_read(int fd, uint8_t *buf, size_t cap, size_t *got);

/* Bytes waiting to be written to one side: buf[off..len). The block is held
 * only while bytes are pending. */
typedef struct {
    uint8_t *buf;
    size_t off, len;
    unsigned eof : 1;        /* the source sent FIN */
    unsigned shut : 1;       /* the FIN was passed on to the destination */
    unsigned close_on_eof : 1; /* the caller closes dst instead of shutting it */
    unsigned bulk : 1;       /* the last read filled its block: batch next */
    uint64_t read_bytes;     /* taken from the source */
    uint64_t bytes;          /* written to the destination */
    uint64_t *traffic;       /* metrics counter for written bytes, or NULL */
} relay_flow;

typedef enum {
    RELAY_OK,          /* moved what it could; FIN passed on if due */
    RELAY_SRC_ERROR,   /* the source reset or failed */
    RELAY_DST_ERROR,   /* the destination reset or failed */
    RELAY_NO_MEMORY,   /* no block free: nothing was read; retry later */
    RELAY_BAD_RECORD   /* the client's TLS record framing is broken */
} relay_status;

typedef enum {
    RELAY_COPY,        /* fronted: bytes unchanged */
    RELAY_TG_UP,       /* client records -> payload, two key streams */
    RELAY_TG_DOWN      /* two key streams -> records sized like Go's */
} relay_kind;

/* What happens to the bytes on the way. For the Telegram kinds the first
 * key stream decrypts what arrived and the second encrypts what leaves;
 * both NULL, or same_streams set: the bytes pass through unchanged inside
 * the framing (fast mode, where the two streams are equal and cancel). */
typedef struct {
    relay_kind kind;
    faketls_rx *rx;                  /* TG_UP: the client's record reader */
    crypto_ctr *first, *second;
    uint32_t *tx_records;            /* TG_DOWN: records sent so far */
    uint64_t *tx_bytes;              /* TG_DOWN: their bytes (size ramp) */
    unsigned same_streams : 1;       /* TG_DOWN fast mode: first and second
                                        are one stream at one offset, so
                                        they cancel: neither is applied
                                        (second is brought up to date for
                                        the close_notify) */
    faketls_reason why;              /* TG_UP: set on RELAY_BAD_RECORD */
} relay_xform;

/* Writes f's pending bytes to dst; releases the block when empty and passes
 * a FIN on (shutdown) once the source has ended. RELAY_OK or DST_ERROR. */
relay_status relay_flush(relay_flow *f, int dst, pool *p);

/* One read from src into f (only when f is empty and the source has not
 * ended), transformed by x, then flushed to dst at once; again, up to a few
 * times, while each read fills its block and each write completes (a bulk
 * transfer skips the event loop between them). Reading resumes only once
 * the block is written, so a slow destination stops the source. A read
 * never waits for more bytes than are there: small writes go on at once.
 * TG_DOWN reads with one readv into the payload slots of several records
 * laid end to end, so framing copies nothing and one write sends them;
 * TG_UP strips the client's record headers while applying the key streams
 * (one pass, no memmove) and sends the payload with one write. */
relay_status relay_pump(relay_flow *f, int src, int dst, relay_xform *x, pool *p);

/* The encrypted close_notify a Go TLS server sends before its FIN: one
 * application-data record of RELAY_CLOSE_NOTIFY_LEN bytes written to rec.
 * With x->second, its payload is encrypted with the client's stream at the
 * offset the client has reached (x->tx_bytes and x->tx_records in fast
 * mode), and the stream advances; without it, the payload is random.
 * TG_DOWN writes one at the DC's FIN; conn.c one when it ends a session
 * itself. Returns RELAY_CLOSE_NOTIFY_LEN, or 0 when the RNG failed. */
#define RELAY_CLOSE_NOTIFY_LEN (FAKETLS_HEADER_LEN + 19)
size_t relay_close_notify(relay_xform *x, uint8_t *rec);

/* The record size ramp toward the client (exported for tests). */
size_t relay_record_payload_cap(uint32_t records, uint64_t bytes);

#endif
