/* crypto_x25519: X25519 of the base point (u = 9) by a fixed-base comb on
 * the birationally equivalent Edwards curve, several times cheaper than a
 * Montgomery ladder. crypto_x25519_public (crypto.h) is its caller. */
#ifndef TGF_CRYPTO_X25519_H
#define TGF_CRYPTO_X25519_H

#include <stdint.h>

/* pub = X25519(k, 9) for a scalar k that is already clamped (RFC 7748:
 * k[0] & 7 == 0, k[31] in 0x40..0x7f). The same 32 bytes as BearSSL's
 * br_ec_c25519_m31.mulgen for that scalar. Constant time: table entries
 * are selected by masks, no branch or index depends on k. The first call
 * builds a 30 KiB table (once per process, thread-safe). */
void crypto_x25519_base(const uint8_t k[32], uint8_t pub[32]);

#endif
