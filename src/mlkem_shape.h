/* mlkem_shape: byte strings shaped like ML-KEM-768 values (FIPS 203), with
 * the distribution real ones have, without doing ML-KEM. Two uses: the
 * encapsulation key in the site probe's hello (the site checks that every
 * coefficient is below q and would refuse random bytes), and the
 * ciphertext half of our X25519MLKEM768 answer (a real ciphertext's
 * coefficients are Compress_d of values indistinguishable from uniform mod
 * q, which is not uniform over d bits: 3329 / 1024 buckets get 3 or 4
 * values each, a bias that plain random bytes would lack). */
#ifndef TGF_MLKEM_SHAPE_H
#define TGF_MLKEM_SHAPE_H

#include <stddef.h>
#include <stdint.h>

#define MLKEM768_EK_LEN 1184    /* ByteEncode12(768 coefficients) || rho(32) */
#define MLKEM768_CT_LEN 1088    /* ByteEncode10(768) || ByteEncode4(256) */

/* Fills out with an encapsulation key: 768 coefficients uniform in [0, q),
 * then 32 random bytes. Returns 0, or -1 if the system RNG failed. */
int mlkem_shape_ek(uint8_t out[MLKEM768_EK_LEN]);

/* Fills out with a ciphertext: Compress_10 of 768 uniform values mod q,
 * then Compress_4 of 256. Returns 0, or -1 if the system RNG failed. */
int mlkem_shape_ct(uint8_t out[MLKEM768_CT_LEN]);

/* The pure parts, exported for tests: Compress_d(x) for x < 3329, and
 * ByteEncode_d of n coefficients (n * d a multiple of 8) into out. */
uint16_t mlkem_shape_compress(uint16_t x, unsigned d);
void mlkem_shape_encode(const uint16_t *coef, size_t n, unsigned d, uint8_t *out);

#endif
