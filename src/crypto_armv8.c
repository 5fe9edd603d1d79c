/* crypto_armv8: AES-256-CTR with the ARMv8 Cryptography Extensions (AESE,
 * AESMC via arm_neon.h), for aarch64 only: the Makefile compiles this file
 * with -march=armv8-a+crypto in PROFILE=arm64 and in no other profile.
 * BearSSL 0.6 has no ARM AES code, and its constant-time ct64 code is
 * several times slower per byte; crypto.c falls back to it when
 * crypto_armv8_ctrcbc_get_vtable() says the CPU lacks the instructions.
 *
 * Hardware AES runs in constant time (no tables), and so does the key
 * schedule here: SubWord is done with AESE too. */
#include "crypto_armv8.h"

#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#include <arm_neon.h>

/* From the kernel's uapi asm/hwcap.h for arm64; musl's headers may lack it. */
#ifndef HWCAP_AES
#define HWCAP_AES (1UL << 3)
#endif

#define ROUNDS 14   /* AES-256 */

/* S-box applied to each byte of a word. AESE with a zero round key is
 * ShiftRows(SubBytes(x)); with the word in all four columns every row is
 * constant, so ShiftRows changes nothing and lane 0 is SubWord(w). */
static uint32_t sub_word(uint32_t w)
{
    uint8x16_t x = vreinterpretq_u8_u32(vdupq_n_u32(w));

    x = vaeseq_u8(x, vdupq_n_u8(0));
    return vgetq_lane_u32(vreinterpretq_u32_u8(x), 0);
}

/* FIPS-197 section 5.2 for Nk = 8. Words are little-endian loads of the key
 * bytes (aarch64 Linux is little-endian), so RotWord is a rotate right by 8
 * and Rcon lands in the low byte. */
static void key_expand(uint8_t rk[ROUNDS + 1][16], const uint8_t key[32])
{
    uint32_t w[4 * (ROUNDS + 1)];
    uint32_t rcon = 1;

    memcpy(w, key, 32);
    for (size_t i = 8; i < sizeof w / sizeof w[0]; i++) {
        uint32_t t = w[i - 1];

        if (i % 8 == 0) {
            t = sub_word((t >> 8) | (t << 24)) ^ rcon;
            rcon <<= 1;   /* 7 uses for AES-256: never past 0x40 */
        } else if (i % 8 == 4) {
            t = sub_word(t);
        }
        w[i] = w[i - 8] ^ t;
    }
    memcpy(rk, w, sizeof w);
    /* The expanded key is as secret as the key. */
    __asm__ volatile("" : : "r"(w) : "memory");
    memset(w, 0, sizeof w);
    __asm__ volatile("" : : "r"(w) : "memory");
}

void crypto_armv8_ctrcbc_init(crypto_armv8_ctrcbc_keys *k, const uint8_t *key,
                              size_t key_len)
{
    if (key_len != 32) {
        memset(k, 0, sizeof *k);
        return;
    }
    k->vtable = &crypto_armv8_ctrcbc_vtable;
    key_expand(k->rk, key);
}

static void vt_init(const br_block_ctrcbc_class **ctx, const void *key,
                    size_t key_len)
{
    crypto_armv8_ctrcbc_init((crypto_armv8_ctrcbc_keys *)ctx, key, key_len);
}

/* Round keys are loaded from the caller's context at each use rather than
 * copied into a local array: such a copy lived in vt_ctr's stack frame and
 * stayed there, expanded key and all, after it returned. The compiler hoists
 * the loads into registers where it can. */
#define RK(k, r) vld1q_u8((k)->rk[r])

/* One block: 13 rounds of AESE+AESMC, then the last without MixColumns. */
static inline uint8x16_t encrypt_block(const crypto_armv8_ctrcbc_keys *k, uint8x16_t x)
{
    for (int r = 0; r < ROUNDS - 1; r++)
        x = vaesmcq_u8(vaeseq_u8(x, RK(k, r)));
    x = vaeseq_u8(x, RK(k, ROUNDS - 1));
    return veorq_u8(x, RK(k, ROUNDS));
}

/* Counter block for the 128-bit big-endian value hi:lo. */
static inline uint8x16_t counter_block(uint64_t hi, uint64_t lo)
{
    return vreinterpretq_u8_u64(vcombine_u64(vcreate_u64(__builtin_bswap64(hi)),
                                             vcreate_u64(__builtin_bswap64(lo))));
}

/* hi:lo += 1, carrying across all 128 bits (wraps to zero at 2^128). */
static inline void counter_next(uint64_t *hi, uint64_t *lo)
{
    *lo += 1;
    *hi += (*lo == 0);
}

static void vt_ctr(const br_block_ctrcbc_class *const *ctx, void *ctr,
                   void *data, size_t len)
{
    const crypto_armv8_ctrcbc_keys *k = (const crypto_armv8_ctrcbc_keys *)ctx;
    uint8_t *buf = data, cb[16];
    uint64_t hi, lo;

    memcpy(cb, ctr, 16);
    memcpy(&hi, cb, 8);
    memcpy(&lo, cb + 8, 8);
    hi = __builtin_bswap64(hi);
    lo = __builtin_bswap64(lo);

    /* Four blocks at a time keep the AES unit's pipeline busy. */
    while (len >= 64) {
        uint8x16_t c0, c1, c2, c3;

        c0 = counter_block(hi, lo);
        counter_next(&hi, &lo);
        c1 = counter_block(hi, lo);
        counter_next(&hi, &lo);
        c2 = counter_block(hi, lo);
        counter_next(&hi, &lo);
        c3 = counter_block(hi, lo);
        counter_next(&hi, &lo);
        for (int r = 0; r < ROUNDS - 1; r++) {
            uint8x16_t key = RK(k, r);

            c0 = vaesmcq_u8(vaeseq_u8(c0, key));
            c1 = vaesmcq_u8(vaeseq_u8(c1, key));
            c2 = vaesmcq_u8(vaeseq_u8(c2, key));
            c3 = vaesmcq_u8(vaeseq_u8(c3, key));
        }
        c0 = veorq_u8(vaeseq_u8(c0, RK(k, ROUNDS - 1)), RK(k, ROUNDS));
        c1 = veorq_u8(vaeseq_u8(c1, RK(k, ROUNDS - 1)), RK(k, ROUNDS));
        c2 = veorq_u8(vaeseq_u8(c2, RK(k, ROUNDS - 1)), RK(k, ROUNDS));
        c3 = veorq_u8(vaeseq_u8(c3, RK(k, ROUNDS - 1)), RK(k, ROUNDS));
        vst1q_u8(buf, veorq_u8(vld1q_u8(buf), c0));
        vst1q_u8(buf + 16, veorq_u8(vld1q_u8(buf + 16), c1));
        vst1q_u8(buf + 32, veorq_u8(vld1q_u8(buf + 32), c2));
        vst1q_u8(buf + 48, veorq_u8(vld1q_u8(buf + 48), c3));
        buf += 64;
        len -= 64;
    }
    /* BearSSL's contract: len is a multiple of 16. */
    while (len >= 16) {
        uint8x16_t c = encrypt_block(k, counter_block(hi, lo));

        counter_next(&hi, &lo);
        vst1q_u8(buf, veorq_u8(vld1q_u8(buf), c));
        buf += 16;
        len -= 16;
    }

    hi = __builtin_bswap64(hi);
    lo = __builtin_bswap64(lo);
    memcpy(cb, &hi, 8);
    memcpy(cb + 8, &lo, 8);
    memcpy(ctr, cb, 16);
}

static void load_counter(const uint8_t c[16], uint64_t *hi, uint64_t *lo)
{
    memcpy(hi, c, 8);
    memcpy(lo, c + 8, 8);
    *hi = __builtin_bswap64(*hi);
    *lo = __builtin_bswap64(*lo);
}

static void store_counter(uint8_t c[16], uint64_t hi, uint64_t lo)
{
    hi = __builtin_bswap64(hi);
    lo = __builtin_bswap64(lo);
    memcpy(c, &hi, 8);
    memcpy(c + 8, &lo, 8);
}

void crypto_armv8_ctr2(const crypto_armv8_ctrcbc_keys *a, uint8_t ctr_a[16],
                       const crypto_armv8_ctrcbc_keys *b, uint8_t ctr_b[16], uint8_t *dst,
                       const uint8_t *src, size_t nblocks)
{
    uint64_t ah, al, bh, bl;

    load_counter(ctr_a, &ah, &al);
    load_counter(ctr_b, &bh, &bl);
    /* Four blocks of each stream: eight AESE chains in flight. */
    while (nblocks >= 4) {
        uint8x16_t x[8];

        for (int i = 0; i < 4; i++) {
            x[i] = counter_block(ah, al);
            counter_next(&ah, &al);
            x[4 + i] = counter_block(bh, bl);
            counter_next(&bh, &bl);
        }
        for (int r = 0; r < ROUNDS - 1; r++) {
            uint8x16_t ka = RK(a, r), kb = RK(b, r);

            for (int i = 0; i < 4; i++) {
                x[i] = vaesmcq_u8(vaeseq_u8(x[i], ka));
                x[4 + i] = vaesmcq_u8(vaeseq_u8(x[4 + i], kb));
            }
        }
        for (int i = 0; i < 4; i++) {
            x[i] = veorq_u8(vaeseq_u8(x[i], RK(a, ROUNDS - 1)), RK(a, ROUNDS));
            x[4 + i] = veorq_u8(vaeseq_u8(x[4 + i], RK(b, ROUNDS - 1)), RK(b, ROUNDS));
        }
        /* Load the whole group before storing: dst may trail src. */
        uint8x16_t s[4];
        for (int i = 0; i < 4; i++)
            s[i] = vld1q_u8(src + 16 * i);
        for (int i = 0; i < 4; i++)
            vst1q_u8(dst + 16 * i, veorq_u8(s[i], veorq_u8(x[i], x[4 + i])));
        src += 64;
        dst += 64;
        nblocks -= 4;
    }
    while (nblocks > 0) {
        uint8x16_t ka = encrypt_block(a, counter_block(ah, al));
        uint8x16_t kb = encrypt_block(b, counter_block(bh, bl));

        counter_next(&ah, &al);
        counter_next(&bh, &bl);
        vst1q_u8(dst, veorq_u8(vld1q_u8(src), veorq_u8(ka, kb)));
        src += 16;
        dst += 16;
        nblocks--;
    }
    store_counter(ctr_a, ah, al);
    store_counter(ctr_b, bh, bl);
}

const br_block_ctrcbc_class crypto_armv8_ctrcbc_vtable = {
    .context_size = sizeof(crypto_armv8_ctrcbc_keys),
    .block_size = 16,
    .log_block_size = 4,
    .init = vt_init,
    .ctr = vt_ctr,
};

const br_block_ctrcbc_class *crypto_armv8_ctrcbc_get_vtable(void)
{
    const char *force = getenv("TGFRONT_AES");

    if (force != NULL && strcmp(force, "soft") == 0)
        return NULL;
    if ((getauxval(AT_HWCAP) & HWCAP_AES) == 0)
        return NULL;
    return &crypto_armv8_ctrcbc_vtable;
}
