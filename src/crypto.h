/* crypto: thin wrappers over BearSSL. No allocation; callers own contexts.
 * Anything holding key material is zeroed with crypto_wipe when done;
 * crypto_hmac_wipe and crypto_ctr_wipe are the same call with the size
 * taken from the context's type. */
#ifndef TGF_CRYPTO_H
#define TGF_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include <bearssl.h>

#if defined(__aarch64__)
#include "crypto_armv8.h"
#endif

#define CRYPTO_SHA256_LEN 32

void crypto_sha256(const void *data, size_t len, uint8_t out[CRYPTO_SHA256_LEN]);

/* Streaming HMAC-SHA256. */
typedef struct {
    br_hmac_key_context key;
    br_hmac_context ctx;
} crypto_hmac;

void crypto_hmac_init(crypto_hmac *h, const uint8_t *key, size_t key_len);
void crypto_hmac_update(crypto_hmac *h, const void *data, size_t len);
void crypto_hmac_final(crypto_hmac *h, uint8_t out[CRYPTO_SHA256_LEN]);
/* crypto_wipe(h, sizeof *h). */
void crypto_hmac_wipe(crypto_hmac *h);
void crypto_hmac_sha256(const uint8_t *key, size_t key_len, const void *data,
                        size_t len, uint8_t out[CRYPTO_SHA256_LEN]);

/* A key's HMAC-SHA256 inner and outer states, computed once: a key used
 * again and again (a secret, against every hello) then saves the two
 * compressions of its padded blocks on each use. Key material: wipe it. */
typedef br_hmac_key_context crypto_hmac_key;
void crypto_hmac_key_init(crypto_hmac_key *k, const uint8_t *key, size_t key_len);
/* crypto_hmac_init with a prepared key. */
void crypto_hmac_init_prepared(crypto_hmac *h, const crypto_hmac_key *k);

/* Streaming AES-256-CTR with a full 128-bit big-endian counter (the IV is the
 * initial counter). Any sequence of crypto_ctr_apply calls over split input
 * gives the same bytes as one call over the whole input.
 * The context keeps the key, not its round keys: each call that needs
 * keystream expands them on its stack and wipes them before returning. A
 * relayed connection holds four of these, idle for most of its life: 80
 * bytes each instead of 304, for about 100 cycles per call with AES-NI (a
 * relay call moves up to 64 KiB). */
typedef struct {
    const br_block_ctrcbc_class *vtable;   /* implementation picked at init */
    uint8_t key[32];
    uint8_t counter[16];    /* next counter block to encrypt */
    uint8_t stream[16];     /* keystream of the partially used block */
    uint8_t stream_used;    /* bytes of stream[] consumed; 16 = none left */
} crypto_ctr;

void crypto_ctr_init(crypto_ctr *c, const uint8_t key[32], const uint8_t iv[16]);
/* XORs len bytes of keystream into buf in place. */
void crypto_ctr_apply(crypto_ctr *c, uint8_t *buf, size_t len);
/* Both key streams of a relay direction in one pass over the data:
 * dst[0..len) = src[0..len) ^ a's next len keystream bytes ^ b's, the same
 * bytes and end states as memmove(dst, src, len) followed by
 * crypto_ctr_apply(a, dst, len) and crypto_ctr_apply(b, dst, len). dst may
 * equal src or lie before it (a forward move, as when record headers are
 * stripped in place), never after it. With hardware AES and both streams at
 * the same offset within a block (the relay's case) it runs both counters
 * through the AES unit together; otherwise it is exactly that sequence. */
void crypto_ctr_apply2(crypto_ctr *a, crypto_ctr *b, uint8_t *dst, const uint8_t *src,
                       size_t len);
/* Advances the stream by n bytes without producing them: the same state
 * as crypto_ctr_apply over n bytes of scratch. */
void crypto_ctr_skip(crypto_ctr *c, uint64_t n);
/* crypto_wipe(c, sizeof *c). */
void crypto_ctr_wipe(crypto_ctr *c);
/* Which AES implementation crypto_ctr_init picks at run time: "x86ni" or
 * "ct64" on amd64, "armv8" or "ct64" on aarch64 (see crypto_armv8.h). */
const char *crypto_aes_impl(void);

/* X25519: pub = scalar * basepoint (scalar clamped as RFC 7748 says). */
void crypto_x25519_public(const uint8_t scalar[32], uint8_t pub[32]);

/* Fills buf from the kernel's RNG (getrandom). Returns 0, or -1 on failure. */
int crypto_random(void *buf, size_t len);

/* Returns 1 when equal, 0 otherwise; time depends only on len. */
int crypto_equal(const void *a, const void *b, size_t len);

/* Zeroes memory in a way the compiler cannot drop: the one wipe. */
void crypto_wipe(void *p, size_t len);

#endif
