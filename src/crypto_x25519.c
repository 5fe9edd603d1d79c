/* crypto_x25519: the ServerHello's key share, cheaply (see crypto_x25519.h).
 *
 * Why this is safe to use for the key share. The private half of the key
 * share is never used (FakeTLS sends no real TLS after the ServerHello), so
 * all that matters is that the public key is what a real server would send:
 * X25519(k, 9) for a fresh uniformly random clamped scalar k. This code
 * computes exactly that function, not an approximation: Curve25519's base
 * point u = 9 is the image of Ed25519's base point B (y = 4/5) under the
 * birational map u = (1 + y) / (1 - y), the map is a group isomorphism
 * between the prime-order subgroups, so u(k * B) = X25519(k, 9) for every
 * clamped k (k * B is never the identity: k < 2^255 is a multiple of 8 and
 * not of 8 * l). The scalar is still the caller's full-size random value,
 * so the distribution of public keys is unchanged and nobody can tell them
 * from a ladder's; the unit tests compare both byte for byte.
 *
 * What makes it cheaper: k * B for a fixed B is a sum of precomputed
 * multiples (ref10's radix-16 comb: 64 mixed additions, 4 doublings and
 * one inversion) instead of 255 ladder steps, and field elements use five
 * 51-bit limbs with 64 x 64 -> 128-bit products instead of BearSSL's
 * portable 31-bit code.
 *
 * Field arithmetic follows curve25519-donna-c64; point formulas are ref10's
 * (extended twisted Edwards coordinates, a = -1; the addition law is
 * complete on this curve, so no input needs a special case). */
#include "crypto_x25519.h"

#include <pthread.h>
#include <string.h>

#include "crypto.h"

typedef uint64_t fe[5];
typedef unsigned __int128 u128;

#define MASK51 ((UINT64_C(1) << 51) - 1)

/* 2d, d = -121665/121666 mod p, and Ed25519's base point (x, 4/5). */
static const fe D2 = { 0x69b9426b2f159ULL, 0x35050762add7aULL, 0x3cf44c0038052ULL,
                       0x6738cc7407977ULL, 0x2406d9dc56dffULL };
static const fe BASE_X = { 0x62d608f25d51aULL, 0x412a4b4f6592aULL, 0x75b7171a4b31dULL,
                           0x1ff60527118feULL, 0x216936d3cd6e5ULL };
static const fe BASE_Y = { 0x6666666666658ULL, 0x4ccccccccccccULL, 0x1999999999999ULL,
                           0x3333333333333ULL, 0x6666666666666ULL };

/* ---- field: integers mod p = 2^255 - 19, five 51-bit limbs ----
 * Carried values have limbs below 2^51 + 2^13; fe_add leaves them below
 * 2^53, which fe_mul accepts. */

static void fe_copy(fe h, const fe f) { memcpy(h, f, sizeof(fe)); }

static void fe_0(fe h) { memset(h, 0, sizeof(fe)); }

static void fe_1(fe h)
{
    fe_0(h);
    h[0] = 1;
}

static void fe_carry(fe h)
{
    uint64_t c;
    c = h[0] >> 51; h[0] &= MASK51; h[1] += c;
    c = h[1] >> 51; h[1] &= MASK51; h[2] += c;
    c = h[2] >> 51; h[2] &= MASK51; h[3] += c;
    c = h[3] >> 51; h[3] &= MASK51; h[4] += c;
    c = h[4] >> 51; h[4] &= MASK51; h[0] += 19 * c;
}

static void fe_add(fe h, const fe f, const fe g)
{
    for (int i = 0; i < 5; i++)
        h[i] = f[i] + g[i];
}

/* f - g + 4p, carried: g's limbs may be up to 2^53. */
static void fe_sub(fe h, const fe f, const fe g)
{
    h[0] = f[0] + 0x1fffffffffffb4ULL - g[0];
    for (int i = 1; i < 5; i++)
        h[i] = f[i] + 0x1ffffffffffffcULL - g[i];
    fe_carry(h);
}

static void fe_neg(fe h, const fe f)
{
    fe z;
    fe_0(z);
    fe_sub(h, z, f);
}

static void fe_mul(fe h, const fe f, const fe g)
{
    uint64_t f0 = f[0], f1 = f[1], f2 = f[2], f3 = f[3], f4 = f[4];
    uint64_t g0 = g[0], g1 = g[1], g2 = g[2], g3 = g[3], g4 = g[4];
    uint64_t g1_19 = 19 * g1, g2_19 = 19 * g2, g3_19 = 19 * g3, g4_19 = 19 * g4;
    u128 t0 = (u128)f0 * g0 + (u128)f1 * g4_19 + (u128)f2 * g3_19 + (u128)f3 * g2_19 +
              (u128)f4 * g1_19;
    u128 t1 = (u128)f0 * g1 + (u128)f1 * g0 + (u128)f2 * g4_19 + (u128)f3 * g3_19 +
              (u128)f4 * g2_19;
    u128 t2 = (u128)f0 * g2 + (u128)f1 * g1 + (u128)f2 * g0 + (u128)f3 * g4_19 +
              (u128)f4 * g3_19;
    u128 t3 = (u128)f0 * g3 + (u128)f1 * g2 + (u128)f2 * g1 + (u128)f3 * g0 +
              (u128)f4 * g4_19;
    u128 t4 = (u128)f0 * g4 + (u128)f1 * g3 + (u128)f2 * g2 + (u128)f3 * g1 +
              (u128)f4 * g0;
    uint64_t r0, r1, r2, r3, r4, c;
    r0 = (uint64_t)t0 & MASK51; t1 += (uint64_t)(t0 >> 51);
    r1 = (uint64_t)t1 & MASK51; t2 += (uint64_t)(t1 >> 51);
    r2 = (uint64_t)t2 & MASK51; t3 += (uint64_t)(t2 >> 51);
    r3 = (uint64_t)t3 & MASK51; t4 += (uint64_t)(t3 >> 51);
    r4 = (uint64_t)t4 & MASK51; c = (uint64_t)(t4 >> 51);
    r0 += 19 * c;
    c = r0 >> 51; r0 &= MASK51; r1 += c;
    h[0] = r0; h[1] = r1; h[2] = r2; h[3] = r3; h[4] = r4;
}

static void fe_sq(fe h, const fe f) { fe_mul(h, f, f); }

static void fe_sqn(fe h, const fe f, int n)
{
    fe_sq(h, f);
    while (--n > 0)
        fe_sq(h, h);
}

/* z^(p - 2) = 1/z (0 for z = 0), the usual addition chain. */
static void fe_invert(fe out, const fe z)
{
    fe z2, z9, z11, a, b, c, t;
    fe_sq(z2, z);
    fe_sqn(t, z2, 2);
    fe_mul(z9, t, z);
    fe_mul(z11, z9, z2);
    fe_sq(t, z11);
    fe_mul(a, t, z9);           /* 2^5 - 1 */
    fe_sqn(t, a, 5);
    fe_mul(a, t, a);            /* 2^10 - 1 */
    fe_sqn(t, a, 10);
    fe_mul(b, t, a);            /* 2^20 - 1 */
    fe_sqn(t, b, 20);
    fe_mul(t, t, b);            /* 2^40 - 1 */
    fe_sqn(t, t, 10);
    fe_mul(b, t, a);            /* 2^50 - 1 */
    fe_sqn(t, b, 50);
    fe_mul(c, t, b);            /* 2^100 - 1 */
    fe_sqn(t, c, 100);
    fe_mul(t, t, c);            /* 2^200 - 1 */
    fe_sqn(t, t, 50);
    fe_mul(t, t, b);            /* 2^250 - 1 */
    fe_sqn(t, t, 5);
    fe_mul(out, t, z11);        /* 2^255 - 21 */
}

/* The unique representative below p, little-endian. */
static void fe_tobytes(uint8_t s[32], const fe f)
{
    fe t;
    fe_copy(t, f);
    fe_carry(t);
    fe_carry(t);
    /* t < 2^255 now; adding 19 and carrying tells whether t >= p. */
    t[0] += 19;
    fe_carry(t);
    t[0] += (UINT64_C(1) << 51) - 19;
    for (int i = 1; i < 5; i++)
        t[i] += (UINT64_C(1) << 51) - 1;
    /* t is now (value + 2^255) mod 2^256 offset: drop the top carry. */
    uint64_t c;
    c = t[0] >> 51; t[0] &= MASK51; t[1] += c;
    c = t[1] >> 51; t[1] &= MASK51; t[2] += c;
    c = t[2] >> 51; t[2] &= MASK51; t[3] += c;
    c = t[3] >> 51; t[3] &= MASK51; t[4] += c;
    t[4] &= MASK51;
    uint64_t w[4] = { t[0] | t[1] << 51, t[1] >> 13 | t[2] << 38, t[2] >> 26 | t[3] << 25,
                      t[3] >> 39 | t[4] << 12 };
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 8; j++)
            s[8 * i + j] = (uint8_t)(w[i] >> (8 * j));
    crypto_wipe(t, sizeof t);
    crypto_wipe(w, sizeof w);
}

/* h = b ? g : h, without a branch. */
static void fe_cmov(fe h, const fe g, uint64_t b)
{
    uint64_t m = (uint64_t)0 - b;
    for (int i = 0; i < 5; i++)
        h[i] ^= m & (h[i] ^ g[i]);
}

/* ---- points (ref10's representations) ---- */

typedef struct { fe X, Y, Z, T; } ge_p3;        /* x = X/Z, y = Y/Z, xy = T/Z */
typedef struct { fe X, Y, Z, T; } ge_p1p1;      /* x = X/Z, y = Y/T */
typedef struct { fe ypx, ymx, xy2d; } ge_pre;   /* affine y+x, y-x, 2dxy */

static void p1p1_to_p3(ge_p3 *r, const ge_p1p1 *p)
{
    fe_mul(r->X, p->X, p->T);
    fe_mul(r->Y, p->Y, p->Z);
    fe_mul(r->Z, p->Z, p->T);
    fe_mul(r->T, p->X, p->Y);
}

/* r = p + q. */
static void ge_madd(ge_p1p1 *r, const ge_p3 *p, const ge_pre *q)
{
    fe t0;
    fe_add(r->X, p->Y, p->X);
    fe_sub(r->Y, p->Y, p->X);
    fe_mul(r->Z, r->X, q->ypx);
    fe_mul(r->Y, r->Y, q->ymx);
    fe_mul(r->T, q->xy2d, p->T);
    fe_add(t0, p->Z, p->Z);
    fe_sub(r->X, r->Z, r->Y);
    fe_add(r->Y, r->Z, r->Y);
    fe_add(r->Z, t0, r->T);
    fe_sub(r->T, t0, r->T);
}

/* r = 2p. */
static void ge_dbl(ge_p1p1 *r, const ge_p3 *p)
{
    fe t0;
    fe_sq(r->X, p->X);
    fe_sq(r->Z, p->Y);
    fe_sq(r->T, p->Z);
    fe_add(r->T, r->T, r->T);
    fe_add(r->Y, p->X, p->Y);
    fe_sq(t0, r->Y);
    fe_add(r->Y, r->Z, r->X);
    fe_sub(r->Z, r->Z, r->X);
    fe_sub(r->X, t0, r->Y);
    fe_sub(r->T, r->T, r->Z);
}

static void ge_p3_0(ge_p3 *h)
{
    fe_0(h->X);
    fe_1(h->Y);
    fe_1(h->Z);
    fe_0(h->T);
}

static void ge_pre_0(ge_pre *h)
{
    fe_1(h->ypx);
    fe_1(h->ymx);
    fe_0(h->xy2d);
}

static void ge_to_pre(ge_pre *r, const ge_p3 *p)
{
    fe zi, x, y;
    fe_invert(zi, p->Z);
    fe_mul(x, p->X, zi);
    fe_mul(y, p->Y, zi);
    fe_add(r->ypx, y, x);
    fe_carry(r->ypx);
    fe_sub(r->ymx, y, x);
    fe_mul(r->xy2d, x, y);
    fe_mul(r->xy2d, r->xy2d, D2);
}

/* TABLE[i][j] = (j + 1) * 256^i * B. */
static ge_pre TABLE[32][8];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_build(void)
{
    ge_p3 p, q;
    ge_p1p1 t;
    fe_copy(p.X, BASE_X);
    fe_copy(p.Y, BASE_Y);
    fe_1(p.Z);
    fe_mul(p.T, BASE_X, BASE_Y);
    for (int i = 0; i < 32; i++) {
        ge_to_pre(&TABLE[i][0], &p);
        q = p;
        for (int j = 1; j < 8; j++) {
            ge_madd(&t, &q, &TABLE[i][0]);
            p1p1_to_p3(&q, &t);
            ge_to_pre(&TABLE[i][j], &q);
        }
        for (int k = 0; k < 8; k++) {
            ge_dbl(&t, &p);
            p1p1_to_p3(&p, &t);
        }
    }
}

/* 1 when b == c, without a branch (b, c in 0..8). */
static uint64_t equal(unsigned b, unsigned c)
{
    return (uint64_t)(((b ^ c) - 1u) >> 31) & 1u;
}

/* t = b * 256^pos * B for b in -8..8, scanning all eight entries. */
static void select_pre(ge_pre *t, int pos, int8_t b)
{
    unsigned neg = (unsigned)(uint8_t)b >> 7;
    unsigned babs = (unsigned)(b - (int8_t)((-(int)neg) & b) * 2);
    ge_pre_0(t);
    for (unsigned j = 0; j < 8; j++) {
        uint64_t m = equal(babs, j + 1);
        fe_cmov(t->ypx, TABLE[pos][j].ypx, m);
        fe_cmov(t->ymx, TABLE[pos][j].ymx, m);
        fe_cmov(t->xy2d, TABLE[pos][j].xy2d, m);
    }
    /* -P swaps y+x and y-x and negates 2dxy. */
    fe ypx, nxy;
    fe_copy(ypx, t->ypx);
    fe_cmov(t->ypx, t->ymx, neg);
    fe_cmov(t->ymx, ypx, neg);
    fe_neg(nxy, t->xy2d);
    fe_cmov(t->xy2d, nxy, neg);
}

void crypto_x25519_base(const uint8_t k[32], uint8_t pub[32])
{
    int8_t e[64];
    ge_p3 h;
    ge_p1p1 r;
    ge_pre t;
    fe num, den;

    pthread_once(&table_once, table_build);
    /* Signed radix 16: k = sum e[i] 16^i with e[i] in -8..7 (e[63] <= 8). */
    for (int i = 0; i < 32; i++) {
        e[2 * i] = (int8_t)(k[i] & 15);
        e[2 * i + 1] = (int8_t)(k[i] >> 4);
    }
    int8_t carry = 0;
    for (int i = 0; i < 63; i++) {
        e[i] = (int8_t)(e[i] + carry);
        carry = (int8_t)((e[i] + 8) >> 4);
        e[i] = (int8_t)(e[i] - carry * 16);
    }
    e[63] = (int8_t)(e[63] + carry);

    ge_p3_0(&h);
    for (int i = 1; i < 64; i += 2) {
        select_pre(&t, i / 2, e[i]);
        ge_madd(&r, &h, &t);
        p1p1_to_p3(&h, &r);
    }
    for (int i = 0; i < 4; i++) {
        ge_dbl(&r, &h);
        p1p1_to_p3(&h, &r);
    }
    for (int i = 0; i < 64; i += 2) {
        select_pre(&t, i / 2, e[i]);
        ge_madd(&r, &h, &t);
        p1p1_to_p3(&h, &r);
    }
    /* u = (1 + y) / (1 - y) = (Z + Y) / (Z - Y). */
    fe_add(num, h.Z, h.Y);
    fe_carry(num);
    fe_sub(den, h.Z, h.Y);
    fe_invert(den, den);
    fe_mul(num, num, den);
    fe_tobytes(pub, num);

    /* The scalar's digits and the points derived from it. */
    crypto_wipe(e, sizeof e);
    crypto_wipe(&h, sizeof h);
    crypto_wipe(&r, sizeof r);
    crypto_wipe(&t, sizeof t);
    crypto_wipe(num, sizeof num);
    crypto_wipe(den, sizeof den);
}
