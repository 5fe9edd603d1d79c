/* crypto_sha256ni: SHA-256 compression with SHA256RNDS2/MSG1/MSG2 (the
 * usual SHA-NI schedule: four rounds per group, the message schedule kept
 * in four registers), wrapped in BearSSL's buffering and padding so the
 * context is a plain br_sha256_context. The instructions are enabled for
 * these functions only (target attribute); crypto.c calls them only after
 * crypto_sha256ni_get_vtable() found the CPU has them. */
#include "crypto_sha256ni.h"

#if defined(__x86_64__)

#include <string.h>

#include <immintrin.h>

#define TGT __attribute__((target("sha,sse2,ssse3,sse4.1")))

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
};

static const uint32_t IV[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
    0x5be0cd19,
};

/* Compresses nblocks 64-byte blocks into val (A..H, native words). */
TGT static void compress(uint32_t val[8], const uint8_t *data, size_t nblocks)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i s0, s1, tmp, m[4], msg, save0, save1;

    tmp = _mm_loadu_si128((const __m128i *)(const void *)&val[0]);
    s1 = _mm_loadu_si128((const __m128i *)(const void *)&val[4]);
    tmp = _mm_shuffle_epi32(tmp, 0xb1);      /* CDAB */
    s1 = _mm_shuffle_epi32(s1, 0x1b);        /* EFGH */
    s0 = _mm_alignr_epi8(tmp, s1, 8);        /* ABEF */
    s1 = _mm_blend_epi16(s1, tmp, 0xf0);     /* CDGH */

    while (nblocks-- > 0) {
        save0 = s0;
        save1 = s1;
        for (int i = 0; i < 16; i++) {
            if (i < 4)
                m[i] = _mm_shuffle_epi8(
                    _mm_loadu_si128((const __m128i *)(const void *)(data + 16 * i)), bswap);
            msg = _mm_add_epi32(m[i & 3],
                                _mm_loadu_si128((const __m128i *)(const void *)&K[4 * i]));
            s1 = _mm_sha256rnds2_epu32(s1, s0, msg);
            if (i >= 3 && i <= 14) {
                tmp = _mm_alignr_epi8(m[i & 3], m[(i + 3) & 3], 4);
                m[(i + 1) & 3] = _mm_sha256msg2_epu32(_mm_add_epi32(m[(i + 1) & 3], tmp),
                                                      m[i & 3]);
            }
            msg = _mm_shuffle_epi32(msg, 0x0e);
            s0 = _mm_sha256rnds2_epu32(s0, s1, msg);
            if (i >= 1 && i <= 12)
                m[(i + 3) & 3] = _mm_sha256msg1_epu32(m[(i + 3) & 3], m[i & 3]);
        }
        s0 = _mm_add_epi32(s0, save0);
        s1 = _mm_add_epi32(s1, save1);
        data += 64;
    }

    tmp = _mm_shuffle_epi32(s0, 0x1b);       /* FEBA */
    s1 = _mm_shuffle_epi32(s1, 0xb1);        /* DCHG */
    s0 = _mm_blend_epi16(tmp, s1, 0xf0);     /* DCBA */
    s1 = _mm_alignr_epi8(s1, tmp, 8);        /* ABEF */
    _mm_storeu_si128((__m128i *)(void *)&val[0], s0);
    _mm_storeu_si128((__m128i *)(void *)&val[4], s1);
}

static const br_hash_class vtable_ni;

static void ni_init(const br_hash_class **ctx)
{
    br_sha256_context *cc = (br_sha256_context *)(void *)ctx;
    cc->vtable = &vtable_ni;
    memcpy(cc->val, IV, sizeof cc->val);
    cc->count = 0;
}

static void ni_update(const br_hash_class **ctx, const void *data, size_t len)
{
    br_sha256_context *cc = (br_sha256_context *)(void *)ctx;
    const uint8_t *p = data;
    size_t ptr = (size_t)cc->count & 63;
    cc->count += len;
    if (ptr > 0) {
        size_t take = 64 - ptr < len ? 64 - ptr : len;
        memcpy(cc->buf + ptr, p, take);
        p += take;
        len -= take;
        if (ptr + take < 64)
            return;
        compress(cc->val, cc->buf, 1);
    }
    if (len >= 64) {
        compress(cc->val, p, len / 64);
        p += len & ~(size_t)63;
        len &= 63;
    }
    memcpy(cc->buf, p, len);
}

static void ni_out(const br_hash_class *const *ctx, void *dst)
{
    const br_sha256_context *cc = (const br_sha256_context *)(const void *)ctx;
    uint8_t buf[128], *out = dst;
    uint32_t val[8];
    size_t ptr = (size_t)cc->count & 63, n = ptr < 56 ? 64 : 128;
    uint64_t bits = cc->count << 3;

    memcpy(val, cc->val, sizeof val);
    memcpy(buf, cc->buf, ptr);
    memset(buf + ptr, 0, n - ptr);
    buf[ptr] = 0x80;
    for (int i = 0; i < 8; i++)
        buf[n - 1 - i] = (uint8_t)(bits >> (8 * i));
    compress(val, buf, n / 64);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(val[i] >> 24);
        out[4 * i + 1] = (uint8_t)(val[i] >> 16);
        out[4 * i + 2] = (uint8_t)(val[i] >> 8);
        out[4 * i + 3] = (uint8_t)val[i];
    }
    /* The padded copy holds message bytes (HMAC: key ^ pad): the caller's
     * stack burn clears what the compiler may spill, these we clear here. */
    __asm__ volatile("" : : "r"(buf), "r"(val) : "memory");
    memset(buf, 0, sizeof buf);
    memset(val, 0, sizeof val);
    __asm__ volatile("" : : "r"(buf), "r"(val) : "memory");
}

/* state and set_state only move val and count: BearSSL's own serve. */
static const br_hash_class vtable_ni = {
    sizeof(br_sha256_context),
    BR_HASHDESC_ID(br_sha256_ID) | BR_HASHDESC_OUT(32) | BR_HASHDESC_STATE(32) |
        BR_HASHDESC_LBLEN(6) | BR_HASHDESC_MD_PADDING | BR_HASHDESC_MD_PADDING_BE,
    ni_init,
    ni_update,
    ni_out,
    (uint64_t (*)(const br_hash_class *const *, void *))&br_sha256_state,
    (void (*)(const br_hash_class **, const void *, uint64_t))&br_sha256_set_state,
};

const br_hash_class *crypto_sha256ni_get_vtable(void)
{
    static int known;   /* 0 unknown, 1 no, 2 yes; every thread agrees */
    int k = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (k == 0) {
        unsigned a, b, c, d;
        k = 1;
        /* CPUID.(EAX=7,ECX=0):EBX bit 29 = SHA; SSE4.1 (leaf 1 ECX bit 19)
         * for the blend; SSSE3 (bit 9) for the shuffles. */
        __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0), "c"(0));
        if (a >= 7) {
            unsigned b7;
            __asm__("cpuid" : "=a"(a), "=b"(b7), "=c"(c), "=d"(d) : "a"(7), "c"(0));
            __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
            if ((b7 >> 29 & 1) && (c >> 19 & 1) && (c >> 9 & 1))
                k = 2;
        }
        __atomic_store_n(&known, k, __ATOMIC_RELAXED);
    }
    return k == 2 ? &vtable_ni : NULL;
}

#else

const br_hash_class *crypto_sha256ni_get_vtable(void)
{
    return NULL;
}

#endif
