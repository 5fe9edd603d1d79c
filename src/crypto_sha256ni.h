/* crypto_sha256ni: SHA-256 with the x86 SHA extensions, as a BearSSL hash
 * class over br_sha256_context, so BearSSL's HMAC runs on it unchanged.
 * Handshakes hash the ClientHello and the whole ServerHello flight (several
 * KiB) under HMAC; BearSSL's portable code was the largest user-space cost
 * of a handshake after X25519. */
#ifndef TGF_CRYPTO_SHA256NI_H
#define TGF_CRYPTO_SHA256NI_H

#include <bearssl.h>

/* The class when built for x86_64 and the CPU has SHA-NI (checked once),
 * else NULL: the caller then uses br_sha256_vtable. Same outputs, same
 * context type and descriptor as br_sha256_vtable. */
const br_hash_class *crypto_sha256ni_get_vtable(void);

#endif
