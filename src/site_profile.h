/* site_profile: what the fronted site's own TLS answer looks like, so the
 * FakeTLS answer can look the same.
 *
 * For each kind of hello Telegram clients send (site_shape: with or without
 * an X25519MLKEM768 key share) the prober (site_probe.h) sends the site a
 * hello of that kind and hands the bytes it got back to site_flight_parse():
 * the ServerHello (cipher, extension order, key-share group and length),
 * the ChangeCipherSpec and the encrypted records after it. A few such
 * flights become a site_answer (site_answer_learn): the shape of our
 * ServerHello and the size distribution of our one application-data
 * record. The site_store holds the current answers; the event loops read
 * it (site_store_pick) while the prober thread writes it.
 *
 * Everything here except the store's lock is pure: no I/O. */
#ifndef TGF_SITE_PROFILE_H
#define TGF_SITE_PROFILE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "faketls.h"

typedef enum {
    SITE_SHAPE_X25519 = 0,   /* key share X25519 only (tdlib before 2025-11) */
    SITE_SHAPE_MLKEM = 1,    /* X25519MLKEM768 + X25519 shares (current tdlib) */
    SITE_SHAPES
} site_shape;

/* "x25519" / "x25519mlkem768": metric labels. */
const char *site_shape_name(site_shape s);

#define SITE_FLIGHT_MAX_RECORDS 16

typedef struct {
    faketls_sh_shape sh;      /* cipher, extension order, group, share length */
    uint8_t records;          /* complete encrypted records after the CCS */
    uint16_t rec_len[SITE_FLIGHT_MAX_RECORDS];
    uint32_t flight_bytes;    /* their wire bytes, record headers included */
} site_flight;

typedef enum { SITE_FLIGHT_NEED_MORE, SITE_FLIGHT_OK, SITE_FLIGHT_REJECT } site_flight_result;

/* Parses what the site sent after our hello, buf[0..len).
 *   OK         a TLS 1.3 ServerHello we can imitate, the CCS and at least
 *              one complete application-data record; *out describes the
 *              complete records so far (more may still come: the caller
 *              decides when the flight is over, e.g. after a quiet gap).
 *   NEED_MORE  a prefix of such a flight.
 *   REJECT     anything else (an alert, a HelloRetryRequest, TLS 1.2, an
 *              extension we cannot write, more than 16 records); *why, if
 *              why is non-NULL, gets a static phrase for the log.
 * Never reads outside buf. */
site_flight_result site_flight_parse(const uint8_t *buf, size_t len, site_flight *out,
                                     const char **why);

/* Our answer for one hello kind: the ServerHello shape, and the wire size
 * of everything after the CCS, which our one application-data record
 * takes: flight_min + (one byte per heads among `coins` fair coins) +
 * uniform[0, spread]. coins models an ECDSA signature's two DER integers
 * (each one byte longer half of the time), spread what the flights seen
 * differed by beyond that. */
typedef struct {
    faketls_sh_shape sh;
    uint32_t flight_min;
    uint8_t coins;
    uint16_t spread;
} site_answer;

/* Learns an answer from n >= 1 flights of one hello kind. Returns 0, or
 * -1 (with *why) when they disagree on the ServerHello or are unusable. */
int site_answer_learn(const site_flight *f, size_t n, site_answer *out, const char **why);

/* 1 when flight f fits answer a (same ServerHello, size inside its range). */
int site_answer_fits(const site_answer *a, const site_flight *f);

/* Length of our application-data record for random word rnd, at most max
 * (what the buffer and TLS allow) and at least 1. */
size_t site_answer_appdata_len(const site_answer *a, uint32_t rnd, size_t max);

/* Before the site has answered: mtg's ServerHello shape with the client's
 * cipher, and a flight sized like a Let's Encrypt ECDSA chain behind Caddy. */
void site_answer_default(site_answer *out, uint16_t cipher);

/* Which kind of hello a client sent. */
site_shape site_shape_of(const faketls_hello *h);

/* ---- the store shared by the event loops and the prober ---- */

typedef struct site_store {
    pthread_mutex_t lock;
    site_answer answer[SITE_SHAPES];
    int learned[SITE_SHAPES];
    int64_t learned_unix;        /* wall clock of the last successful refresh */
    uint64_t refreshes, failures;
} site_store;

int site_store_init(site_store *s);
void site_store_destroy(site_store *s);

/* Replaces the answers (those with learned[i] set); stamps now_unix. */
void site_store_update(site_store *s, const site_answer answer[SITE_SHAPES],
                       const int learned[SITE_SHAPES], int64_t now_unix);
void site_store_failed(site_store *s);

/* The answer for client hello h: the learned one for its kind (with the
 * client's own first cipher if it did not offer the site's choice), else
 * the default. *learned (may be NULL) says which. s may be NULL. */
void site_store_pick(site_store *s, const faketls_hello *h, site_answer *out, int *learned);

/* Prometheus text for the store (one gauge per hello kind plus the age);
 * returns the length written, NUL-terminated within cap. s may be NULL. */
size_t site_store_render(site_store *s, const char *prefix, int64_t now_unix, char *out,
                         size_t cap);

/* One human line per hello kind, for doctor and the log. */
void site_answer_describe(const site_answer *a, char *out, size_t cap);

#endif
