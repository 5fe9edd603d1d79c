/* crypto_x86ni: two AES-256-CTR key streams applied in one pass with x86
 * AES-NI (crypto.c calls it only when BearSSL's x86ni code was picked, so
 * the CPU has the instructions). Built for x86_64 only; empty elsewhere. */
#ifndef TGF_CRYPTO_X86NI_H
#define TGF_CRYPTO_X86NI_H

#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__)
/* For nblocks whole 16-byte blocks: dst = src ^ E_a(ctr_a++) ^ E_b(ctr_b++).
 * rk_a and rk_b are the 15 AES-256 round keys in BearSSL's x86ni layout
 * (br_aes_x86ni_ctrcbc_keys.skey.skni); the counters are 128-bit
 * big-endian, carry across all 128 bits and are updated. dst may equal src
 * or lie before it (a forward move); each group of blocks is loaded before
 * it is stored. Four blocks of each stream are in flight at once. */
void crypto_x86ni_ctr2(const uint8_t *rk_a, uint8_t ctr_a[16], const uint8_t *rk_b,
                       uint8_t ctr_b[16], uint8_t *dst, const uint8_t *src, size_t nblocks);
#endif

#endif
