/* replay: stable Bloom filter sized as mtg's (BoomFilters'
 * NewDefaultStableBloomFilter): m one-bit cells, k = ceil(log2(1/fp)) / 2
 * hashes, and p cells cleared per insert so that the share of set cells
 * settles where the false-positive rate is at most fp, whatever the traffic
 * (p rounded up, see derive_params).
 *
 * The hash is SipHash-2-4 with a random per-filter key, so a client cannot
 * choose keys that collide on purpose (mtg uses unkeyed xxhash). */
#include "replay.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"

struct replay_filter {
    /* One mutex around test-and-set: two workers racing with the same
     * replayed hello must not both see "new". The critical section is k + p
     * bit operations (about 20 by default), so contention is negligible. */
    pthread_mutex_t lock;
    uint64_t m;              /* cells (bits) */
    unsigned k, p;
    uint64_t sip_k0, sip_k1; /* hash key */
    uint64_t rng;            /* xorshift64 state for the clear start */
    uint64_t bits[];         /* m bits, rounded up to whole words */
};

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                   \
    do {                                                           \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);  \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                     \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                     \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);  \
    } while (0)

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* SipHash-2-4 (Aumasson & Bernstein), 64-bit output. */
static uint64_t siphash24(uint64_t k0, uint64_t k1, const uint8_t *in, size_t len)
{
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL;
    uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
    uint64_t v3 = k1 ^ 0x7465646279746573ULL;
    size_t full = len & ~(size_t)7;

    for (size_t i = 0; i < full; i += 8) {
        uint64_t mi = load_le64(in + i);
        v3 ^= mi;
        SIPROUND;
        SIPROUND;
        v0 ^= mi;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)in[full + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* Exposed to the unit test only (no header): checks the SipHash vectors. */
uint64_t replay_siphash24_for_test(const uint8_t key[16], const uint8_t *in, size_t len);
uint64_t replay_siphash24_for_test(const uint8_t key[16], const uint8_t *in, size_t len)
{
    return siphash24(load_le64(key), load_le64(key + 8), in, len);
}

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* ceil(log2(x)) for x >= 1, by doubling: avoids a libm dependency and is
 * exact at powers of two, where it matters. */
static unsigned ceil_log2(double x)
{
    unsigned n = 0;
    double v = 1.0;
    while (v < x && n < 2048) {
        v *= 2.0;
        n++;
    }
    return n;
}

static double pow_uint(double b, uint64_t e)
{
    double r = 1.0;
    while (e) {
        if (e & 1)
            r *= b;
        b *= b;
        e >>= 1;
    }
    return r;
}

/* x^(1/k) for 0 < x < 1 by bisection (r^k is increasing on [0, 1]). */
static double kth_root(double x, uint64_t k)
{
    double lo = 0.0, hi = 1.0;
    for (int i = 0; i < 200; i++) {
        double mid = (lo + hi) / 2.0;
        if (pow_uint(mid, k) < x)
            lo = mid;
        else
            hi = mid;
    }
    return (lo + hi) / 2.0;
}

/* mtg's formulas for m and k (integer division). p is rounded up where mtg
 * truncates: the formula gives the p at which the stable state's
 * false-positive rate equals fp exactly, so a smaller p overshoots the
 * configured bound (measured: 1.27x) and a larger one stays within it. */
static void derive_params(uint64_t m, double fp, unsigned *k_out, unsigned *p_out)
{
    uint64_t k = ceil_log2(1.0 / fp) / 2;
    if (k > m)
        k = m;
    if (k == 0)
        k = 1;

    double sub = 1.0 - kth_root(fp, k);
    double denom = (1.0 / sub - 1.0) * (1.0 / (double)k - 1.0 / (double)m);
    double pd = 1.0 / denom;
    uint64_t p = 1;
    if (pd >= 1.0)                   /* false for NaN; inf is caught next */
        p = pd >= (double)m ? m : (uint64_t)pd + ((double)(uint64_t)pd < pd);
    if (p > 0xffffffffu)             /* only with fp near 1 on a huge filter */
        p = 0xffffffffu;

    *k_out = (unsigned)k;
    *p_out = (unsigned)p;
}

uint64_t replay_memory_inserts(const replay_filter *f)
{
    /* -ln(0.95) = 0.051293...; ln(1 - x) ~ -x for x = p/m, which is tiny. */
    return (uint64_t)(0.051293 * (double)f->m / ((double)f->k * (double)f->p));
}

replay_filter *replay_create(uint64_t max_size_bytes, double error_rate)
{
    /* !(x > 0 && x < 1) also rejects NaN */
    if (max_size_bytes == 0 || !(error_rate > 0.0 && error_rate < 1.0))
        return NULL;
    /* Keep words * 8 + header well inside size_t. */
    if (max_size_bytes > (uint64_t)(SIZE_MAX / 2))
        return NULL;

    uint64_t m = max_size_bytes * 8;
    size_t words = (size_t)((m + 63) / 64);
    replay_filter *f = calloc(1, sizeof *f + words * sizeof(uint64_t));
    if (!f)
        return NULL;

    uint64_t seed[3];
    if (crypto_random(seed, sizeof seed) != 0) {
        free(f);
        return NULL;
    }
    f->sip_k0 = seed[0];
    f->sip_k1 = seed[1];
    f->rng = seed[2] ? seed[2] : 0x9e3779b97f4a7c15ULL;   /* xorshift needs non-zero */
    crypto_wipe(seed, sizeof seed);

    f->m = m;
    derive_params(m, error_rate, &f->k, &f->p);
    if (pthread_mutex_init(&f->lock, NULL) != 0) {
        free(f);
        return NULL;
    }
    return f;
}

static int get_bit(const replay_filter *f, uint64_t i)
{
    return (int)((f->bits[i / 64] >> (i % 64)) & 1);
}

static void set_bit(replay_filter *f, uint64_t i)
{
    f->bits[i / 64] |= (uint64_t)1 << (i % 64);
}

static void clear_bit(replay_filter *f, uint64_t i)
{
    f->bits[i / 64] &= ~((uint64_t)1 << (i % 64));
}

int replay_check_and_insert(replay_filter *f, const uint8_t *key, size_t len)
{
    uint64_t h = siphash24(f->sip_k0, f->sip_k1, key, len);
    uint64_t lo = h & 0xffffffffu, hi = h >> 32;
    int member = 1;

    pthread_mutex_lock(&f->lock);
    for (unsigned i = 0; i < f->k; i++)
        if (!get_bit(f, (lo + hi * i) % f->m))
            member = 0;
    /* Fade old entries: clear p consecutive cells from a random start. */
    uint64_t start = xorshift64(&f->rng) % f->m;
    for (unsigned i = 0; i < f->p; i++)
        clear_bit(f, (start + i) % f->m);
    for (unsigned i = 0; i < f->k; i++)
        set_bit(f, (lo + hi * i) % f->m);
    pthread_mutex_unlock(&f->lock);
    return member;
}

void replay_destroy(replay_filter *f)
{
    if (!f)
        return;
    pthread_mutex_destroy(&f->lock);
    crypto_wipe(&f->sip_k0, sizeof f->sip_k0);
    crypto_wipe(&f->sip_k1, sizeof f->sip_k1);
    free(f);
}

void replay_params(const replay_filter *f, uint64_t *cells, unsigned *k, unsigned *p)
{
    if (cells) *cells = f->m;
    if (k) *k = f->k;
    if (p) *p = f->p;
}
