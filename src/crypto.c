/* crypto: thin wrappers over BearSSL (see crypto.h). */
#include "crypto.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "crypto_sha256ni.h"
#include "crypto_x25519.h"
#include "crypto_x86ni.h"

/* BearSSL leaves its temporaries on the stack: br_sha256_out pads a copy of
 * the buffered input in its own frame, the compression function expands the
 * message words into a local array, and br_hmac_key_init builds key ^ ipad
 * and key ^ opad in a local buffer. Once they have returned, this clears
 * the area their frames used: between 1 and 2 KiB deep in both the musl
 * -O2 and the ASan builds (test_crypto.c checks it), so 4 KiB leaves a
 * margin. memset plus the barrier is the usual explicit_bzero idiom and
 * much faster than byte-wise volatile stores. */
#define STACK_BURN 4096

__attribute__((noinline))
static void burn_stack(void)
{
    unsigned char area[STACK_BURN];

    memset(area, 0, sizeof area);
    __asm__ volatile("" : : "r"(area) : "memory");
}

/* SHA-NI when the CPU has it, else BearSSL's portable code: same bytes. */
static const br_hash_class *sha256_class(void)
{
    const br_hash_class *vt = crypto_sha256ni_get_vtable();

    return vt != NULL ? vt : &br_sha256_vtable;
}

void crypto_sha256(const void *data, size_t len, uint8_t out[CRYPTO_SHA256_LEN])
{
    br_sha256_context ctx;
    const br_hash_class *vt = sha256_class();

    vt->init(&ctx.vtable);
    vt->update(&ctx.vtable, data, len);
    vt->out(&ctx.vtable, out);
    /* A message shorter than a block (obfs2 hashes material || key, 48
     * bytes) stays whole in ctx.buf. */
    crypto_wipe(&ctx, sizeof ctx);
    burn_stack();
}

/* ---- HMAC-SHA256 --------------------------------------------------------- */

void crypto_hmac_init(crypto_hmac *h, const uint8_t *key, size_t key_len)
{
    br_hmac_key_init(&h->key, sha256_class(), key, key_len);
    br_hmac_init(&h->ctx, &h->key, 0);
    burn_stack();
}

void crypto_hmac_key_init(crypto_hmac_key *k, const uint8_t *key, size_t key_len)
{
    br_hmac_key_init(k, sha256_class(), key, key_len);
    burn_stack();
}

void crypto_hmac_init_prepared(crypto_hmac *h, const crypto_hmac_key *k)
{
    br_hmac_init(&h->ctx, k, 0);
}

void crypto_hmac_update(crypto_hmac *h, const void *data, size_t len)
{
    br_hmac_update(&h->ctx, data, len);
}

void crypto_hmac_final(crypto_hmac *h, uint8_t out[CRYPTO_SHA256_LEN])
{
    /* br_hmac_out copies the outer key state into its own frame. */
    br_hmac_out(&h->ctx, out);
    burn_stack();
}

void crypto_hmac_wipe(crypto_hmac *h)
{
    crypto_wipe(h, sizeof *h);
}

void crypto_hmac_sha256(const uint8_t *key, size_t key_len, const void *data,
                        size_t len, uint8_t out[CRYPTO_SHA256_LEN])
{
    crypto_hmac h;

    crypto_hmac_init(&h, key, key_len);
    crypto_hmac_update(&h, data, len);
    crypto_hmac_final(&h, out);
    crypto_hmac_wipe(&h);
}

/* ---- AES-256-CTR ----------------------------------------------------------
 * BearSSL's ctr_run increments only the last 32 bits of the IV, while the
 * protocol (like Go's cipher.NewCTR) carries across all 128 bits. The ctrcbc
 * classes' ctr method does carry across the whole block but takes whole
 * blocks only, so a partial block is served from one saved keystream block. */

/* The hardware implementation for this architecture, or NULL when the CPU
 * lacks it. BearSSL has x86 AES-NI code but none for ARM. */
static const br_block_ctrcbc_class *ctr_hw(void)
{
#if defined(__aarch64__)
    return crypto_armv8_ctrcbc_get_vtable();
#else
    return br_aes_x86ni_ctrcbc_get_vtable();
#endif
}

/* Picked once: BearSSL's x86ni check runs CPUID, which a hypervisor may
 * trap, and crypto_ctr_init runs four times per connection. Every thread
 * computes the same answer, so a relaxed atomic is enough. */
static const br_block_ctrcbc_class *ctr_pick(void)
{
    static const br_block_ctrcbc_class *picked;
    const br_block_ctrcbc_class *vt = __atomic_load_n(&picked, __ATOMIC_RELAXED);

    if (vt == NULL) {
        vt = ctr_hw();
        if (vt == NULL)
            vt = &br_aes_ct64_ctrcbc_vtable;
        __atomic_store_n(&picked, vt, __ATOMIC_RELAXED);
    }
    return vt;
}

/* Round keys for one call, in the layout of the context's implementation;
 * every BearSSL ctrcbc context starts with its vtable pointer. */
typedef union {
    const br_block_ctrcbc_class *vtable;
    br_aes_x86ni_ctrcbc_keys ni;
    br_aes_ct64_ctrcbc_keys ct;
#if defined(__aarch64__)
    crypto_armv8_ctrcbc_keys armv8;
#endif
} ctr_sched;

static void sched_expand(const crypto_ctr *c, ctr_sched *s)
{
    c->vtable->init(&s->vtable, c->key, sizeof c->key);
}

/* The round keys are as secret as the key. */
static void sched_wipe(ctr_sched *s)
{
    crypto_wipe(s, sizeof *s);
}

void crypto_ctr_init(crypto_ctr *c, const uint8_t key[32], const uint8_t iv[16])
{
    c->vtable = ctr_pick();
    memcpy(c->key, key, sizeof c->key);
    memcpy(c->counter, iv, sizeof c->counter);
    memset(c->stream, 0, sizeof c->stream);
    c->stream_used = sizeof c->stream;
}

void crypto_ctr_apply(crypto_ctr *c, uint8_t *buf, size_t len)
{
    /* First use up what is left of the saved keystream block. */
    while (len > 0 && c->stream_used < sizeof c->stream) {
        *buf++ ^= c->stream[c->stream_used++];
        len--;
    }
    if (len == 0)
        return;

    ctr_sched k;
    sched_expand(c, &k);
    size_t whole = len & ~(size_t)15;
    if (whole > 0) {
        c->vtable->ctr(&k.vtable, c->counter, buf, whole);
        buf += whole;
        len -= whole;
    }

    if (len > 0) {
        /* CTR of a zero block is the keystream block itself. */
        memset(c->stream, 0, sizeof c->stream);
        c->vtable->ctr(&k.vtable, c->counter, c->stream, sizeof c->stream);
        for (size_t i = 0; i < len; i++)
            buf[i] ^= c->stream[i];
        c->stream_used = (uint8_t)len;
    }
    sched_wipe(&k);
}

void crypto_ctr_skip(crypto_ctr *c, uint64_t n)
{
    while (n > 0 && c->stream_used < sizeof c->stream) {
        c->stream_used++;
        n--;
    }
    if (n == 0)
        return;
    /* counter += n / 16, carrying across all 128 bits (big-endian). */
    uint64_t add = n / 16;
    for (int i = 15; i >= 0 && add > 0; i--) {
        uint64_t v = (uint64_t)c->counter[i] + (add & 0xff);
        c->counter[i] = (uint8_t)v;
        add = (add >> 8) + (v >> 8);
    }
    unsigned rem = (unsigned)(n % 16);
    if (rem > 0) {
        uint8_t scratch[16] = { 0 };
        crypto_ctr_apply(c, scratch, rem);
        crypto_wipe(scratch, sizeof scratch);
    }
}

/* The two-stream pass for this pair, or 0 when they cannot share one. */
static int ctr2_fast(const crypto_ctr *a, const crypto_ctr *b)
{
    if (a->vtable != b->vtable || a->stream_used != b->stream_used)
        return 0;
#if defined(__aarch64__)
    return a->vtable == &crypto_armv8_ctrcbc_vtable;
#elif defined(__x86_64__)
    return a->vtable == &br_aes_x86ni_ctrcbc_vtable;
#else
    return 0;
#endif
}

static void ctr2_blocks(crypto_ctr *a, const ctr_sched *ka, crypto_ctr *b,
                        const ctr_sched *kb, uint8_t *dst, const uint8_t *src, size_t nblocks)
{
#if defined(__aarch64__)
    crypto_armv8_ctr2(&ka->armv8, a->counter, &kb->armv8, b->counter, dst, src, nblocks);
#elif defined(__x86_64__)
    crypto_x86ni_ctr2(ka->ni.skey.skni, a->counter, kb->ni.skey.skni, b->counter, dst, src,
                      nblocks);
#else
    (void)a, (void)ka, (void)b, (void)kb, (void)dst, (void)src, (void)nblocks;
#endif
}

void crypto_ctr_apply2(crypto_ctr *a, crypto_ctr *b, uint8_t *dst, const uint8_t *src,
                       size_t len)
{
    if (!ctr2_fast(a, b)) {
        /* BearSSL's code (ct64 when the CPU has no AES instructions). */
        if (dst != src)
            memmove(dst, src, len);
        crypto_ctr_apply(a, dst, len);
        crypto_ctr_apply(b, dst, len);
        return;
    }
    /* Both at the same offset in their saved blocks: use those up together. */
    while (len > 0 && a->stream_used < sizeof a->stream) {
        *dst++ = *src++ ^ a->stream[a->stream_used++] ^ b->stream[b->stream_used++];
        len--;
    }
    if (len == 0)
        return;
    ctr_sched ka, kb;
    sched_expand(a, &ka);
    sched_expand(b, &kb);
    size_t nblocks = len / 16;
    if (nblocks > 0) {
        ctr2_blocks(a, &ka, b, &kb, dst, src, nblocks);
        dst += nblocks * 16;
        src += nblocks * 16;
        len -= nblocks * 16;
    }
    if (len > 0) {
        memset(a->stream, 0, sizeof a->stream);
        memset(b->stream, 0, sizeof b->stream);
        a->vtable->ctr(&ka.vtable, a->counter, a->stream, sizeof a->stream);
        b->vtable->ctr(&kb.vtable, b->counter, b->stream, sizeof b->stream);
        for (size_t i = 0; i < len; i++)
            dst[i] = src[i] ^ a->stream[i] ^ b->stream[i];
        a->stream_used = b->stream_used = (uint8_t)len;
    }
    sched_wipe(&ka);
    sched_wipe(&kb);
}

void crypto_ctr_wipe(crypto_ctr *c)
{
    crypto_wipe(c, sizeof *c);
}

const char *crypto_aes_impl(void)
{
#if defined(__aarch64__)
    return ctr_hw() != NULL ? "armv8" : "ct64";
#else
    return ctr_hw() != NULL ? "x86ni" : "ct64";
#endif
}

/* ---- X25519 ------------------------------------------------------------- */

void crypto_x25519_public(const uint8_t scalar[32], uint8_t pub[32])
{
    uint8_t k[32];

    /* Scalars are little-endian and clamped as in RFC 7748. A fixed-base
     * comb (crypto_x25519.c, which says why its output is exactly the
     * ladder's) costs a fraction of BearSSL's generic m31 ladder, which
     * the unit tests keep as the reference. */
    memcpy(k, scalar, sizeof k);
    k[0] &= 0xF8;
    k[31] &= 0x7F;
    k[31] |= 0x40;
    crypto_x25519_base(k, pub);
    crypto_wipe(k, sizeof k);
}

/* ---- RNG, compare, wipe ------------------------------------------------- */

int crypto_random(void *buf, size_t len)
{
    uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        /* Reads over 256 bytes may be cut short by a signal. */
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int crypto_equal(const void *a, const void *b, size_t len)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t diff = 0;

    for (size_t i = 0; i < len; i++)
        diff |= x[i] ^ y[i];
    /* 1 when diff == 0, without a data-dependent branch. */
    return (int)(1 & (((unsigned)diff - 1) >> 8));
}

void crypto_wipe(void *p, size_t len)
{
    volatile uint8_t *v = p;

    while (len > 0) {
        *v++ = 0;
        len--;
    }
}
