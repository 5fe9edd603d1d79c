/* crypto_armv8: AES-256-CTR with the ARMv8 Cryptography Extensions, as a
 * BearSSL ctrcbc class so crypto.c drives it like the x86ni and ct64 ones.
 * Built only for aarch64 (Makefile PROFILE=arm64). */
#ifndef TGF_CRYPTO_ARMV8_H
#define TGF_CRYPTO_ARMV8_H

#include <stdint.h>

#include <bearssl.h>

/* Caller-owned key context; the vtable pointer comes first as BearSSL's
 * contexts do. rk holds the 15 AES-256 round keys in byte order. */
typedef struct {
    const br_block_ctrcbc_class *vtable;
    uint8_t rk[15][16] __attribute__((aligned(16)));
} crypto_armv8_ctrcbc_keys;

/* Only context_size, block_size, log_block_size, init and ctr are set;
 * encrypt, decrypt and mac (CCM/EAX) are NULL: crypto.c uses CTR alone.
 * ctr carries across all 128 bits of the big-endian counter and updates it,
 * as BearSSL's ctrcbc ctr methods do. Only 32-byte keys are accepted (init
 * leaves a zero vtable otherwise). */
extern const br_block_ctrcbc_class crypto_armv8_ctrcbc_vtable;

/* &crypto_armv8_ctrcbc_vtable when the CPU has the AES instructions
 * (AT_HWCAP & HWCAP_AES) and the environment variable TGFRONT_AES is not
 * "soft"; NULL otherwise. TGFRONT_AES=soft forces BearSSL's constant-time
 * code: qemu-user has no CPU model without AES, so that is how the
 * fallback is tested on an emulated ARMv8 CPU. Both are read at each call
 * (cheap next to a key schedule), so no shared state. */
const br_block_ctrcbc_class *crypto_armv8_ctrcbc_get_vtable(void);

void crypto_armv8_ctrcbc_init(crypto_armv8_ctrcbc_keys *k, const uint8_t *key,
                              size_t key_len);

/* Two key streams in one pass, as crypto_x86ni_ctr2 on amd64: for nblocks
 * whole blocks dst = src ^ E_a(ctr_a++) ^ E_b(ctr_b++); counters 128-bit
 * big-endian, updated; dst may equal src or lie before it. Only call it
 * when crypto_armv8_ctrcbc_get_vtable() returned the vtable. */
void crypto_armv8_ctr2(const crypto_armv8_ctrcbc_keys *a, uint8_t ctr_a[16],
                       const crypto_armv8_ctrcbc_keys *b, uint8_t ctr_b[16], uint8_t *dst,
                       const uint8_t *src, size_t nblocks);

#endif
