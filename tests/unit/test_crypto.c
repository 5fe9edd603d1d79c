/* Known-answer and streaming tests for src/crypto.c. */
#include "unit.h"

#include <stdlib.h>
#if defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_AES
#define HWCAP_AES (1UL << 3)   /* the kernel's arm64 uapi value */
#endif
#endif

#include "crypto.h"
#include "crypto_sha256ni.h"
#include "stack_probe.h"

/* ---- SHA-256 / HMAC ------------------------------------------------------ */

TEST(crypto_sha256_known_answers)
{
    uint8_t want[32], got[32];

    unit_unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", want, 32);
    crypto_sha256("abc", 3, got);
    CHECK_MEM(got, want, 32);

    unit_unhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", want, 32);
    crypto_sha256("", 0, got);
    CHECK_MEM(got, want, 32);
}

/* The SHA-NI class (where the CPU has it) gives BearSSL's portable bytes
 * for every length 0..300 fed in two pieces at every split, and so does
 * HMAC over it. */
TEST(crypto_sha256ni_matches_bearssl)
{
    const br_hash_class *ni = crypto_sha256ni_get_vtable();
    uint8_t msg[300], want[32], got[32];
    int bad = 0, runs = 0;

    if (ni == NULL) {
        CHECK_MSG(1, "no SHA-NI here: nothing to compare");
        return;
    }
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 29 + 3);
    for (size_t len = 0; len <= sizeof msg; len++) {
        br_sha256_context ref;
        br_sha256_init(&ref);
        br_sha256_update(&ref, msg, len);
        br_sha256_out(&ref, want);
        for (size_t cut = 0; cut <= len; cut += (len > 140 ? 7 : 1)) {
            br_sha256_context c;
            ni->init(&c.vtable);
            ni->update(&c.vtable, msg, cut);
            ni->update(&c.vtable, msg + cut, len - cut);
            ni->out(&c.vtable, got);
            bad += memcmp(got, want, 32) != 0;
            runs++;
        }
    }
    CHECK_MSG(bad == 0, "%d of %d SHA-NI digests differ", bad, runs);
    br_hmac_key_context kr, kn;
    br_hmac_context hr, hn;
    br_hmac_key_init(&kr, &br_sha256_vtable, msg, 100);
    br_hmac_key_init(&kn, ni, msg, 100);
    br_hmac_init(&hr, &kr, 0);
    br_hmac_init(&hn, &kn, 0);
    br_hmac_update(&hr, msg, 250);
    br_hmac_update(&hn, msg, 250);
    br_hmac_out(&hr, want);
    br_hmac_out(&hn, got);
    CHECK_MEM(got, want, 32);
}

TEST(crypto_hmac_rfc4231)
{
    uint8_t key[20], want[32], got[32];

    /* Case 1 */
    memset(key, 0x0b, sizeof key);
    unit_unhex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", want, 32);
    crypto_hmac_sha256(key, 20, "Hi There", 8, got);
    CHECK_MEM(got, want, 32);

    /* Case 2, also fed byte by byte through the streaming API. */
    const char *data = "what do ya want for nothing?";
    unit_unhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", want, 32);
    crypto_hmac_sha256((const uint8_t *)"Jefe", 4, data, strlen(data), got);
    CHECK_MEM(got, want, 32);

    crypto_hmac h;
    crypto_hmac_init(&h, (const uint8_t *)"Jefe", 4);
    for (size_t i = 0; i < strlen(data); i++)
        crypto_hmac_update(&h, data + i, 1);
    crypto_hmac_final(&h, got);
    crypto_hmac_wipe(&h);
    CHECK_MEM(got, want, 32);
}

/* ---- AES-256-CTR --------------------------------------------------------- */

/* Sets up c with a given implementation, bypassing the run-time pick, so
 * both implementations can be compared on the same machine. */
static void ctr_init_with(crypto_ctr *c, const br_block_ctrcbc_class *vt,
                          const uint8_t key[32], const uint8_t iv[16])
{
    crypto_ctr_init(c, key, iv);
    c->vtable = vt;   /* round keys are expanded per call by c->vtable */
}

/* The hardware implementation when the CPU has it (and, on aarch64,
 * TGFRONT_AES is not "soft"), else NULL. */
static const br_block_ctrcbc_class *ctr_hw_impl(void)
{
#if defined(__aarch64__)
    return crypto_armv8_ctrcbc_get_vtable();
#else
    return br_aes_x86ni_ctrcbc_get_vtable();
#endif
}

/* The implementations to test: ct64 always, the hardware one when there. */
static size_t ctr_impls(const br_block_ctrcbc_class *out[2])
{
    size_t n = 0;
    out[n++] = &br_aes_ct64_ctrcbc_vtable;
    if (ctr_hw_impl() != NULL)
        out[n++] = ctr_hw_impl();
    return n;
}

/* Reference CTR: each counter block encrypted on its own with a different
 * AES implementation (aes_ct, one-block CBC with a zero IV = raw AES), and a
 * 128-bit big-endian increment written here. */
static void ctr_reference(const uint8_t key[32], const uint8_t iv[16],
                          uint8_t *buf, size_t len)
{
    br_aes_ct_cbcenc_keys aes;
    uint8_t counter[16], block[16], zero_iv[16];

    br_aes_ct_cbcenc_init(&aes, key, 32);
    memcpy(counter, iv, 16);
    for (size_t off = 0; off < len; off += 16) {
        memcpy(block, counter, 16);
        memset(zero_iv, 0, 16);
        br_aes_ct_cbcenc_run(&aes, zero_iv, block, 16);
        for (size_t i = 0; i < 16 && off + i < len; i++)
            buf[off + i] ^= block[i];
        for (int i = 15; i >= 0; i--)
            if (++counter[i] != 0)
                break;
    }
}

TEST(crypto_ctr_sp800_38a_f55)
{
    uint8_t key[32], iv[16], pt[64], want[64], buf[64];
    const br_block_ctrcbc_class *impl[2];

    unit_unhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", key, 32);
    unit_unhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", iv, 16);
    unit_unhex("6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51"
               "30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710",
               pt, 64);
    unit_unhex("601ec313775789a5b7a7f504bbf3d228 f443e3ca4d62b59aca84e990cacaf5c5"
               "2b0930daa23de94ce87017ba2d84988d dfc9c58db67aada613c2dd08457941a6",
               want, 64);

    /* The run-time pick. */
    crypto_ctr c;
    memcpy(buf, pt, 64);
    crypto_ctr_init(&c, key, iv);
    crypto_ctr_apply(&c, buf, 64);
    crypto_ctr_wipe(&c);
    CHECK_MEM(buf, want, 64);

    /* Each implementation, and the reference itself. */
    size_t n = ctr_impls(impl);
    for (size_t k = 0; k < n; k++) {
        memcpy(buf, pt, 64);
        ctr_init_with(&c, impl[k], key, iv);
        crypto_ctr_apply(&c, buf, 64);
        CHECK_MEM(buf, want, 64);
    }
    memcpy(buf, pt, 64);
    ctr_reference(key, iv, buf, 64);
    CHECK_MEM(buf, want, 64);

    const char *impl_name = crypto_aes_impl();
#if defined(__aarch64__)
    CHECK(strcmp(impl_name, ctr_hw_impl() != NULL ? "armv8" : "ct64") == 0);
#else
    CHECK(strcmp(impl_name, "x86ni") == 0 || strcmp(impl_name, "ct64") == 0);
#endif
}

/* The run-time pick is the one the caller expects: tests/arm64/run.sh runs
 * the unit tests once with AES and once forced to the fallback, and sets
 * TGF_EXPECT_AES so a pick that did not change fails here. Without the
 * variable this only reports the pick. */
TEST(crypto_aes_impl_is_expected)
{
    const char *want = getenv("TGF_EXPECT_AES");
    const char *got = crypto_aes_impl();

    fprintf(stderr, "     crypto_aes_impl: %s\n", got);
    CHECK(strcmp(got, "ct64") == 0 || ctr_hw_impl() != NULL);
    if (want != NULL)
        CHECK_STR(got, want);
}

#if defined(__aarch64__)
/* FIPS-197 appendix C.3: one AES-256 block through the ARMv8 key schedule
 * and rounds, plus the counter it leaves (incremented once, with a carry
 * out of the low byte). */
TEST(crypto_armv8_fips197_c3)
{
    uint8_t key[32], block[16], want[16];
    crypto_armv8_ctrcbc_keys k;

    /* The CPU, not the pick: with TGFRONT_AES=soft the code is still here
     * and still checked. */
    if ((getauxval(AT_HWCAP) & HWCAP_AES) == 0) {
        fprintf(stderr, "     no ARMv8 AES on this CPU: only the fallback is used\n");
        CHECK_STR(crypto_aes_impl(), "ct64");
        return;
    }
    unit_unhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", key, 32);
    unit_unhex("8ea2b7ca516745bfeafc49904b496089", want, 16);
    /* CTR over a zero block with counter = plaintext is one raw AES. */
    uint8_t ctr[16];
    unit_unhex("00112233445566778899aabbccddeeff", ctr, 16);
    memset(block, 0, sizeof block);
    crypto_armv8_ctrcbc_init(&k, key, 32);
    CHECK(k.vtable == &crypto_armv8_ctrcbc_vtable);
    k.vtable->ctr(&k.vtable, ctr, block, sizeof block);
    CHECK_MEM(block, want, 16);
    unit_unhex("00112233445566778899aabbccddef00", want, 16);
    CHECK_MEM(ctr, want, 16);
    crypto_wipe(&k, sizeof k);
}
#endif

#define MSG_LEN 100

/* IVs whose low words are about to carry: across 2^32 only, across 2^32 and
 * 2^64 at once, across 2^128 (wraps to zero), and a carry that lands in the
 * middle of a 4-block batch of the parallel implementations. */
static const char *const wrap_ivs[] = {
    "000102030405060708090a0bffffffff",
    "0001020304050607ffffffffffffffff",
    "ffffffffffffffffffffffffffffffff",
    "a0a1a2a3a4a5a6a7fffffffffffffffd",
    "000102030405060708090a0b0c0d0e0f",
};

static void fill_message(uint8_t *m, size_t len)
{
    for (size_t i = 0; i < len; i++)
        m[i] = (uint8_t)(i * 7 + 3);
}

/* Applies ctr over msg in pieces ending at cut1 and cut2 (cuts may be equal
 * to make empty pieces). */
static void ctr_three_pieces(crypto_ctr *c, uint8_t *msg, size_t len,
                             size_t cut1, size_t cut2)
{
    crypto_ctr_apply(c, msg, cut1);
    crypto_ctr_apply(c, msg + cut1, cut2 - cut1);
    crypto_ctr_apply(c, msg + cut2, len - cut2);
}

TEST(crypto_ctr_counter_wraps_and_splits)
{
    uint8_t key[32], iv[16], ref[MSG_LEN], buf[MSG_LEN];
    const br_block_ctrcbc_class *impl[2];
    size_t n = ctr_impls(impl);
    crypto_ctr c;

    unit_unhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", key, 32);
    for (size_t v = 0; v < sizeof wrap_ivs / sizeof wrap_ivs[0]; v++) {
        CHECK_EQ_INT(unit_unhex(wrap_ivs[v], iv, 16), 16);
        fill_message(ref, MSG_LEN);
        ctr_reference(key, iv, ref, MSG_LEN);

        for (size_t k = 0; k < n; k++) {
            int bad = 0;

            /* One shot. */
            fill_message(buf, MSG_LEN);
            ctr_init_with(&c, impl[k], key, iv);
            crypto_ctr_apply(&c, buf, MSG_LEN);
            CHECK_MEM(buf, ref, MSG_LEN);

            /* Equal pieces of every size 1..MSG_LEN. */
            for (size_t piece = 1; piece <= MSG_LEN; piece++) {
                fill_message(buf, MSG_LEN);
                ctr_init_with(&c, impl[k], key, iv);
                for (size_t off = 0; off < MSG_LEN; off += piece)
                    crypto_ctr_apply(&c, buf + off,
                                     MSG_LEN - off < piece ? MSG_LEN - off : piece);
                bad += memcmp(buf, ref, MSG_LEN) != 0;
            }

            /* Every two- and three-piece split (cut1 <= cut2). */
            for (size_t cut1 = 0; cut1 <= MSG_LEN; cut1++) {
                for (size_t cut2 = cut1; cut2 <= MSG_LEN; cut2++) {
                    fill_message(buf, MSG_LEN);
                    ctr_init_with(&c, impl[k], key, iv);
                    ctr_three_pieces(&c, buf, MSG_LEN, cut1, cut2);
                    bad += memcmp(buf, ref, MSG_LEN) != 0;
                }
            }
            CHECK_MSG(bad == 0, "iv %s impl %zu: %d split runs differ",
                      wrap_ivs[v], k, bad);
            crypto_ctr_wipe(&c);
        }
    }
}

/* ---- two key streams in one pass ------------------------------------------
 * crypto_ctr_apply2 against the reference (each stream on its own through
 * aes_ct) for every implementation pair, every start offset of each stream
 * within a block (equal offsets take the hardware two-stream path, unequal
 * ones the fallback), every two-piece split, and dst trailing src by 0, 1,
 * 5 (a record header) and 16 bytes. Lengths reach past eight blocks so the
 * four-per-stream loop, its tail and the counter carry all run. */
#define APPLY2_LEN 300
static const size_t apply2_shifts[] = { 0, 1, 5, 16 };

/* want = msg ^ ks_a[pre_a..pre_a+len) ^ ks_b[pre_b..pre_b+len). */
static void apply2_reference(const uint8_t ka[32], const uint8_t iva[16], size_t pre_a,
                             const uint8_t kb[32], const uint8_t ivb[16], size_t pre_b,
                             const uint8_t *msg, uint8_t *want, size_t len)
{
    uint8_t sa[APPLY2_LEN + 32] = { 0 }, sb[APPLY2_LEN + 32] = { 0 };

    ctr_reference(ka, iva, sa, pre_a + len);
    ctr_reference(kb, ivb, sb, pre_b + len);
    for (size_t i = 0; i < len; i++)
        want[i] = msg[i] ^ sa[pre_a + i] ^ sb[pre_b + i];
}

TEST(crypto_ctr_apply2_matches_reference_at_every_split)
{
    uint8_t ka[32], kb[32], iva[16], ivb[16], msg[APPLY2_LEN], want[APPLY2_LEN];
    uint8_t area[APPLY2_LEN + 16], skip[32];
    const br_block_ctrcbc_class *impl[2];
    size_t n = ctr_impls(impl);
    crypto_ctr a, b;
    int bad = 0, runs = 0;

    memset(ka, 0x11, sizeof ka);
    memset(kb, 0x22, sizeof kb);
    /* Counters a few blocks before a 64-bit carry. */
    unit_unhex("00000000000000fffffffffffffffffd", iva, 16);
    unit_unhex("0102030405060708fffffffffffffffa", ivb, 16);
    fill_message(msg, sizeof msg);
    for (size_t k = 0; k < n; k++) {
        for (size_t pre = 0; pre < 18; pre++) {
            /* Equal offsets, and b one byte ahead of a. */
            for (size_t skew = 0; skew < 2; skew++) {
                size_t pre_a = pre, pre_b = pre + skew;
                apply2_reference(ka, iva, pre_a, kb, ivb, pre_b, msg, want, APPLY2_LEN);
                for (size_t si = 0; si < sizeof apply2_shifts / sizeof apply2_shifts[0]; si++) {
                    size_t shift = apply2_shifts[si];
                    for (size_t cut = 0; cut <= APPLY2_LEN; cut++) {
                        ctr_init_with(&a, impl[k], ka, iva);
                        ctr_init_with(&b, impl[k], kb, ivb);
                        crypto_ctr_apply(&a, skip, pre_a);
                        crypto_ctr_apply(&b, skip, pre_b);
                        memcpy(area + shift, msg, APPLY2_LEN);
                        crypto_ctr_apply2(&a, &b, area, area + shift, cut);
                        crypto_ctr_apply2(&a, &b, area + cut, area + shift + cut,
                                          APPLY2_LEN - cut);
                        bad += memcmp(area, want, APPLY2_LEN) != 0;
                        runs++;
                    }
                }
            }
        }
        /* The streams end where one-stream calls leave them. */
        crypto_ctr ra, rb;
        ctr_init_with(&a, impl[k], ka, iva);
        ctr_init_with(&b, impl[k], kb, ivb);
        ctr_init_with(&ra, impl[k], ka, iva);
        ctr_init_with(&rb, impl[k], kb, ivb);
        memcpy(area, msg, APPLY2_LEN);
        crypto_ctr_apply2(&a, &b, area, area, 77);
        crypto_ctr_apply(&ra, area + 100, 77);
        crypto_ctr_apply(&rb, area + 100, 77);
        CHECK_MEM(a.counter, ra.counter, 16);
        CHECK_MEM(b.counter, rb.counter, 16);
        CHECK_EQ_INT(a.stream_used, ra.stream_used);
        CHECK_EQ_INT(b.stream_used, rb.stream_used);
    }
    CHECK_MSG(bad == 0, "%d of %d two-stream runs differ from the reference", bad, runs);
    CHECK(runs > 0);
    crypto_ctr_wipe(&a);
    crypto_ctr_wipe(&b);
}

/* The hardware two-stream pass agrees with BearSSL's constant-time ct64
 * (the fallback) on large buffers too: one 64 KiB relay block. */
TEST(crypto_ctr_apply2_hw_matches_ct64_on_a_block)
{
    static uint8_t x[65536 + 5], y[65536 + 5];
    const br_block_ctrcbc_class *impl[2];
    uint8_t ka[32], kb[32], iv[16];
    crypto_ctr a, b, ca, cb;

    if (ctr_impls(impl) < 2) {
        CHECK_MSG(1, "no hardware AES here: nothing to compare");
        return;
    }
    memset(ka, 0x5a, sizeof ka);
    memset(kb, 0xa5, sizeof kb);
    unit_unhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", iv, 16);
    fill_message(x, sizeof x);
    memcpy(y, x, sizeof y);
    ctr_init_with(&a, impl[1], ka, iv);
    ctr_init_with(&b, impl[1], kb, iv);
    ctr_init_with(&ca, impl[0], ka, iv);
    ctr_init_with(&cb, impl[0], kb, iv);
    crypto_ctr_apply2(&a, &b, x, x + 5, 65536);
    crypto_ctr_apply2(&ca, &cb, y, y + 5, 65536);
    CHECK_MEM(x, y, 65536);
    crypto_ctr_wipe(&a);
    crypto_ctr_wipe(&b);
    crypto_ctr_wipe(&ca);
    crypto_ctr_wipe(&cb);
}

/* crypto_ctr_skip leaves the stream where applying over scratch would,
 * from every offset within a block, across a 64-bit carry. */
TEST(crypto_ctr_skip_equals_apply)
{
    static const uint64_t skips[] = { 0, 1, 15, 16, 17, 31, 32, 100, 4096, 65541, 1000003 };
    static uint8_t scratch[1000003 + 32];
    uint8_t key[32], iv[16], a[40], b[40];
    int bad = 0;

    memset(key, 0x77, sizeof key);
    unit_unhex("0000000000000001fffffffffffffff0", iv, 16);
    for (size_t pre = 0; pre < 17; pre++) {
        for (size_t i = 0; i < sizeof skips / sizeof skips[0]; i++) {
            crypto_ctr x, y;
            crypto_ctr_init(&x, key, iv);
            crypto_ctr_init(&y, key, iv);
            crypto_ctr_apply(&x, scratch, pre);
            crypto_ctr_apply(&y, scratch, pre);
            crypto_ctr_skip(&x, skips[i]);
            crypto_ctr_apply(&y, scratch, (size_t)skips[i]);
            memset(a, 0, sizeof a);
            memset(b, 0, sizeof b);
            crypto_ctr_apply(&x, a, sizeof a);
            crypto_ctr_apply(&y, b, sizeof b);
            bad += memcmp(a, b, sizeof a) != 0;
        }
    }
    CHECK_MSG(bad == 0, "%d skips differ from applying", bad);
}

/* Decrypting is the same operation: a round trip restores the input. */
TEST(crypto_ctr_round_trip)
{
    uint8_t key[32], iv[16], buf[1000], orig[1000];
    crypto_ctr enc, dec;

    memset(key, 0x42, sizeof key);
    unit_unhex("0001020304050607fffffffffffffff0", iv, 16);
    fill_message(orig, sizeof orig);
    memcpy(buf, orig, sizeof buf);
    crypto_ctr_init(&enc, key, iv);
    crypto_ctr_init(&dec, key, iv);
    crypto_ctr_apply(&enc, buf, 333);
    crypto_ctr_apply(&enc, buf + 333, sizeof buf - 333);
    CHECK(memcmp(buf, orig, sizeof buf) != 0);
    crypto_ctr_apply(&dec, buf, 17);
    crypto_ctr_apply(&dec, buf + 17, sizeof buf - 17);
    CHECK_MEM(buf, orig, sizeof buf);
    crypto_ctr_wipe(&enc);
    crypto_ctr_wipe(&dec);
}

/* ---- X25519 -------------------------------------------------------------- */

TEST(crypto_x25519_rfc7748)
{
    uint8_t scalar[32], want[32], got[32];

    /* RFC 7748 section 6.1: Alice, then Bob. */
    unit_unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", scalar, 32);
    unit_unhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", want, 32);
    crypto_x25519_public(scalar, got);
    CHECK_MEM(got, want, 32);

    unit_unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", scalar, 32);
    unit_unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", want, 32);
    crypto_x25519_public(scalar, got);
    CHECK_MEM(got, want, 32);
}

/* The fixed-base comb gives BearSSL's ladder's bytes for random scalars and
 * for the extremes of the clamped range. */
TEST(crypto_x25519_matches_bearssl_ladder)
{
    uint8_t scalar[32], k[32], want[32], got[32];
    int bad = 0;

    for (int i = 0; i < 300; i++) {
        if (i == 0)
            memset(scalar, 0, sizeof scalar);
        else if (i == 1)
            memset(scalar, 0xff, sizeof scalar);
        else
            CHECK_EQ_INT(crypto_random(scalar, sizeof scalar), 0);
        memcpy(k, scalar, sizeof k);
        k[0] &= 0xf8;
        k[31] = (uint8_t)((k[31] & 0x7f) | 0x40);
        br_ec_c25519_m31.mulgen(want, k, sizeof k, BR_EC_curve25519);
        crypto_x25519_public(scalar, got);
        if (memcmp(got, want, 32) != 0) {
            if (bad++ == 0)
                CHECK_MEM(got, want, 32);
        }
    }
    CHECK_MSG(bad == 0, "%d of 300 public keys differ from the ladder's", bad);
}

/* ---- RNG, compare, wipe -------------------------------------------------- */

TEST(crypto_random_fills)
{
    uint8_t a[32], b[32], big[4096], zero[32];

    memset(zero, 0, sizeof zero);
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    CHECK_EQ_INT(crypto_random(a, sizeof a), 0);
    CHECK_EQ_INT(crypto_random(b, sizeof b), 0);
    CHECK(memcmp(a, b, sizeof a) != 0);
    CHECK(memcmp(a, zero, sizeof a) != 0);
    /* Larger than one guaranteed-complete getrandom read. */
    CHECK_EQ_INT(crypto_random(big, sizeof big), 0);
    CHECK(memcmp(big + sizeof big - 32, zero, 32) != 0);
    CHECK_EQ_INT(crypto_random(a, 0), 0);
}

TEST(crypto_equal_and_wipe)
{
    uint8_t a[48], b[48];

    fill_message(a, sizeof a);
    memcpy(b, a, sizeof b);
    CHECK_EQ_INT(crypto_equal(a, b, sizeof a), 1);
    CHECK_EQ_INT(crypto_equal(a, b, 0), 1);
    for (size_t i = 0; i < sizeof a; i++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            b[i] ^= (uint8_t)(1u << bit);
            CHECK_EQ_INT(crypto_equal(a, b, sizeof a), 0);
            b[i] ^= (uint8_t)(1u << bit);
        }
    }
    b[0] = (uint8_t)(a[0] ^ 0xff);
    CHECK_EQ_INT(crypto_equal(a, b, sizeof a), 0);
    CHECK_EQ_INT(crypto_equal(a + 1, b + 1, sizeof a - 1), 1);

    crypto_wipe(a, sizeof a);
    memset(b, 0, sizeof b);
    CHECK_MEM(a, b, sizeof a);
}

/* ---- no key material left in dead stack frames -------------------------- */

static const uint8_t probe_key[16] = {
    0x9b, 0x31, 0xe4, 0x72, 0x0c, 0xd8, 0x5a, 0xf1,
    0x46, 0xaf, 0x13, 0x87, 0x6e, 0xc2, 0x3d, 0xb9,
};

/* What must not survive, computed before the probes run: key, key ^ 0x36
 * and key ^ 0x5c (HMAC's padded keys), and HMAC's inner and outer key
 * states (SHA-256 state after one block of key ^ ipad / key ^ opad; either
 * is enough to forge MACs). Each as bytes and as host-order 32-bit words,
 * which is how SHA-256 holds message words and state. Static, so the
 * patterns themselves are not on the stack being searched. */
enum { PROBE_FORMS = 3, PROBE_STATES = 2 };
static uint8_t probe_pat[2 * (PROBE_FORMS + PROBE_STATES)][16];

static void probe_patterns(const uint8_t key[16])
{
    static const uint8_t pads[PROBE_FORMS] = { 0x00, 0x36, 0x5c };
    size_t n = 0;
    for (size_t p = 0; p < PROBE_FORMS; p++) {
        for (size_t i = 0; i < 16; i++)
            probe_pat[n][i] = (uint8_t)(key[i] ^ pads[p]);
        probe_swap32(probe_pat[n], probe_pat[n + 1], 16);
        n += 2;
    }
    for (size_t p = 1; p < PROBE_FORMS; p++) {
        uint8_t block[64], state[32];
        br_sha256_context ctx;
        memset(block, pads[p], sizeof block);
        for (size_t i = 0; i < 16; i++)
            block[i] ^= key[i];
        br_sha256_init(&ctx);
        br_sha256_update(&ctx, block, sizeof block);
        br_sha256_state(&ctx, state);        /* big-endian words */
        memcpy(probe_pat[n], state, 16);      /* half a state is plenty */
        probe_swap32(probe_pat[n], probe_pat[n + 1], 16);
        n += 2;
        crypto_wipe(block, sizeof block);
        crypto_wipe(state, sizeof state);
        crypto_wipe(&ctx, sizeof ctx);
    }
    /* Hashing above left its own temporaries below us. */
    probe_scrub();
}

/* Index of the first pattern found in dead stack, or -1. */
static int probe_found(void)
{
    for (size_t i = 0; i < sizeof probe_pat / sizeof probe_pat[0]; i++)
        if (probe_stack_has(probe_pat[i], 16))
            return (int)i;
    return -1;
}

/* obfs2's mixed_key: SHA-256(material(32) || key(16)), one partial block. */
static void probe_sha256(void *arg)
{
    uint8_t in[48], out[32];
    memset(in, 0x11, 32);
    memcpy(in + 32, arg, 16);
    crypto_sha256(in, sizeof in, out);
    crypto_wipe(in, sizeof in);
}

static void probe_hmac_oneshot(void *arg)
{
    uint8_t out[32];
    crypto_hmac_sha256(arg, 16, "hello", 5, out);
}

/* The streaming calls as faketls makes them. */
static void probe_hmac_stream(void *arg)
{
    crypto_hmac h;
    uint8_t out[32];
    crypto_hmac_init(&h, arg, 16);
    crypto_hmac_update(&h, "client random and hello", 23);
    crypto_hmac_final(&h, out);
    crypto_hmac_wipe(&h);
}

static void probe_leaky(void *arg)
{
    volatile uint8_t copy[16];
    for (size_t i = 0; i < sizeof copy; i++)
        copy[i] = (uint8_t)(((const uint8_t *)arg)[i] ^ 0x5c);
}

TEST(crypto_hash_and_hmac_leave_no_key_on_stack)
{
    uint8_t key[16];
    memcpy(key, probe_key, sizeof key);
    probe_patterns(key);

    probe_scrub();
    probe_call(probe_sha256, key);
    CHECK_EQ_INT(probe_found(), -1);
    probe_scrub();
    probe_call(probe_hmac_oneshot, key);
    CHECK_EQ_INT(probe_found(), -1);
    probe_scrub();
    probe_call(probe_hmac_stream, key);
    CHECK_EQ_INT(probe_found(), -1);

    /* Positive control, last so it cannot spoil the checks above. */
    probe_scrub();
    probe_call(probe_leaky, key);
    CHECK(probe_found() >= 0);
    crypto_wipe(key, sizeof key);
    memset(probe_pat, 0, sizeof probe_pat);
}
