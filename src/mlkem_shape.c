/* mlkem_shape: ML-KEM-768-shaped byte strings (see the header for why). */
#include "mlkem_shape.h"

#include <string.h>

#include "crypto.h"

#define MLKEM_Q 3329
#define MLKEM_N 256
#define MLKEM_K 3

uint16_t mlkem_shape_compress(uint16_t x, unsigned d)
{
    /* round(2^d / q * x) mod 2^d, in integers (FIPS 203 4.7). */
    uint32_t v = (((uint32_t)x << d) + MLKEM_Q / 2) / MLKEM_Q;
    return (uint16_t)(v & ((1u << d) - 1));
}

void mlkem_shape_encode(const uint16_t *coef, size_t n, unsigned d, uint8_t *out)
{
    /* Little-endian bit order: bit j of coefficient i is bit i*d + j. */
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc |= (uint32_t)coef[i] << bits;
        bits += d;
        while (bits >= 8) {
            *out++ = (uint8_t)acc;
            acc >>= 8;
            bits -= 8;
        }
    }
}

/* n values uniform in [0, q) by rejection from 12-bit draws. */
static int uniform_mod_q(uint16_t *out, size_t n)
{
    uint8_t rnd[512];
    size_t have = 0, used = 0;
    for (size_t i = 0; i < n;) {
        if (used + 2 > have) {
            if (crypto_random(rnd, sizeof rnd) < 0)
                return -1;
            have = sizeof rnd;
            used = 0;
        }
        uint16_t v = (uint16_t)((rnd[used] | rnd[used + 1] << 8) & 0x0fff);
        used += 2;
        if (v < MLKEM_Q)
            out[i++] = v;
    }
    crypto_wipe(rnd, sizeof rnd);
    return 0;
}

int mlkem_shape_ek(uint8_t out[MLKEM768_EK_LEN])
{
    uint16_t t[MLKEM_K * MLKEM_N];
    if (uniform_mod_q(t, sizeof t / sizeof t[0]) < 0)
        return -1;
    mlkem_shape_encode(t, MLKEM_K * MLKEM_N, 12, out);
    return crypto_random(out + MLKEM_K * MLKEM_N * 12 / 8, 32);
}

int mlkem_shape_ct(uint8_t out[MLKEM768_CT_LEN])
{
    uint16_t u[MLKEM_K * MLKEM_N], v[MLKEM_N];
    if (uniform_mod_q(u, sizeof u / sizeof u[0]) < 0 || uniform_mod_q(v, MLKEM_N) < 0)
        return -1;
    for (size_t i = 0; i < MLKEM_K * MLKEM_N; i++)
        u[i] = mlkem_shape_compress(u[i], 10);
    for (size_t i = 0; i < MLKEM_N; i++)
        v[i] = mlkem_shape_compress(v[i], 4);
    mlkem_shape_encode(u, MLKEM_K * MLKEM_N, 10, out);
    mlkem_shape_encode(v, MLKEM_N, 4, out + MLKEM_K * MLKEM_N * 10 / 8);
    return 0;
}
