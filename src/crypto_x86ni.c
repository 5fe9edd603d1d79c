/* crypto_x86ni: both key streams of a relay direction in one pass (see
 * crypto_x86ni.h). BearSSL's x86ni ctr keeps four blocks of one stream in
 * flight and the relay then walks the data twice; here four blocks of each
 * stream (eight AESENC chains) share one loop and the data is loaded and
 * stored once. Hardware AES runs in constant time. The AES instructions are
 * enabled per function (target attribute), as BearSSL does, so nothing
 * else in the binary can contain them. */
#include "crypto_x86ni.h"

#if defined(__x86_64__)

#include <string.h>

#include <immintrin.h>

#define TGT __attribute__((target("aes,sse2,ssse3,sse4.1")))
#define ROUNDS 14

/* Counter block of the 128-bit big-endian value hi:lo. */
TGT static inline __m128i counter_block(uint64_t hi, uint64_t lo)
{
    return _mm_set_epi64x((long long)__builtin_bswap64(lo), (long long)__builtin_bswap64(hi));
}

static inline void counter_next(uint64_t *hi, uint64_t *lo)
{
    *lo += 1;
    *hi += (*lo == 0);
}

static void counter_load(const uint8_t c[16], uint64_t *hi, uint64_t *lo)
{
    memcpy(hi, c, 8);
    memcpy(lo, c + 8, 8);
    *hi = __builtin_bswap64(*hi);
    *lo = __builtin_bswap64(*lo);
}

static void counter_store(uint8_t c[16], uint64_t hi, uint64_t lo)
{
    hi = __builtin_bswap64(hi);
    lo = __builtin_bswap64(lo);
    memcpy(c, &hi, 8);
    memcpy(c + 8, &lo, 8);
}

/* Round keys are read from the caller's context at each use (no local copy
 * of the expanded key left in this frame); they stay in L1. */
#define RK(rk, r) _mm_loadu_si128((const __m128i *)(const void *)((rk) + 16 * (r)))

TGT static inline __m128i encrypt1(const uint8_t *rk, __m128i x)
{
    x = _mm_xor_si128(x, RK(rk, 0));
    for (int r = 1; r < ROUNDS; r++)
        x = _mm_aesenc_si128(x, RK(rk, r));
    return _mm_aesenclast_si128(x, RK(rk, ROUNDS));
}

TGT void crypto_x86ni_ctr2(const uint8_t *rk_a, uint8_t ctr_a[16], const uint8_t *rk_b,
                           uint8_t ctr_b[16], uint8_t *dst, const uint8_t *src, size_t nblocks)
{
    uint64_t ah, al, bh, bl;

    counter_load(ctr_a, &ah, &al);
    counter_load(ctr_b, &bh, &bl);
    while (nblocks >= 4) {
        __m128i a0, a1, a2, a3, b0, b1, b2, b3, k;

        a0 = counter_block(ah, al);
        counter_next(&ah, &al);
        a1 = counter_block(ah, al);
        counter_next(&ah, &al);
        a2 = counter_block(ah, al);
        counter_next(&ah, &al);
        a3 = counter_block(ah, al);
        counter_next(&ah, &al);
        b0 = counter_block(bh, bl);
        counter_next(&bh, &bl);
        b1 = counter_block(bh, bl);
        counter_next(&bh, &bl);
        b2 = counter_block(bh, bl);
        counter_next(&bh, &bl);
        b3 = counter_block(bh, bl);
        counter_next(&bh, &bl);
        k = RK(rk_a, 0);
        a0 = _mm_xor_si128(a0, k);
        a1 = _mm_xor_si128(a1, k);
        a2 = _mm_xor_si128(a2, k);
        a3 = _mm_xor_si128(a3, k);
        k = RK(rk_b, 0);
        b0 = _mm_xor_si128(b0, k);
        b1 = _mm_xor_si128(b1, k);
        b2 = _mm_xor_si128(b2, k);
        b3 = _mm_xor_si128(b3, k);
        for (int r = 1; r < ROUNDS; r++) {
            k = RK(rk_a, r);
            a0 = _mm_aesenc_si128(a0, k);
            a1 = _mm_aesenc_si128(a1, k);
            a2 = _mm_aesenc_si128(a2, k);
            a3 = _mm_aesenc_si128(a3, k);
            k = RK(rk_b, r);
            b0 = _mm_aesenc_si128(b0, k);
            b1 = _mm_aesenc_si128(b1, k);
            b2 = _mm_aesenc_si128(b2, k);
            b3 = _mm_aesenc_si128(b3, k);
        }
        k = RK(rk_a, ROUNDS);
        a0 = _mm_aesenclast_si128(a0, k);
        a1 = _mm_aesenclast_si128(a1, k);
        a2 = _mm_aesenclast_si128(a2, k);
        a3 = _mm_aesenclast_si128(a3, k);
        k = RK(rk_b, ROUNDS);
        b0 = _mm_aesenclast_si128(b0, k);
        b1 = _mm_aesenclast_si128(b1, k);
        b2 = _mm_aesenclast_si128(b2, k);
        b3 = _mm_aesenclast_si128(b3, k);
        /* All four source blocks are loaded before any store: dst may trail
         * src by less than a block group. */
        __m128i s0 = _mm_loadu_si128((const __m128i *)(const void *)(src));
        __m128i s1 = _mm_loadu_si128((const __m128i *)(const void *)(src + 16));
        __m128i s2 = _mm_loadu_si128((const __m128i *)(const void *)(src + 32));
        __m128i s3 = _mm_loadu_si128((const __m128i *)(const void *)(src + 48));
        _mm_storeu_si128((__m128i *)(void *)(dst), _mm_xor_si128(s0, _mm_xor_si128(a0, b0)));
        _mm_storeu_si128((__m128i *)(void *)(dst + 16), _mm_xor_si128(s1, _mm_xor_si128(a1, b1)));
        _mm_storeu_si128((__m128i *)(void *)(dst + 32), _mm_xor_si128(s2, _mm_xor_si128(a2, b2)));
        _mm_storeu_si128((__m128i *)(void *)(dst + 48), _mm_xor_si128(s3, _mm_xor_si128(a3, b3)));
        src += 64;
        dst += 64;
        nblocks -= 4;
    }
    while (nblocks > 0) {
        __m128i a = encrypt1(rk_a, counter_block(ah, al));
        __m128i b = encrypt1(rk_b, counter_block(bh, bl));
        counter_next(&ah, &al);
        counter_next(&bh, &bl);
        __m128i s = _mm_loadu_si128((const __m128i *)(const void *)src);
        _mm_storeu_si128((__m128i *)(void *)dst, _mm_xor_si128(s, _mm_xor_si128(a, b)));
        src += 16;
        dst += 16;
        nblocks--;
    }
    counter_store(ctr_a, ah, al);
    counter_store(ctr_b, bh, bl);
}

#else
/* ISO C wants at least one declaration in a translation unit. */
typedef int crypto_x86ni_unused;
#endif
