/* Fuzzes obfs2: any 64 bytes as a client frame (with the real key, and the
 * tag forced to dd when flag bit 0 is set, so the OK path is reached), then
 * the rest of the input through the ciphers; and the same bytes as DC-frame
 * noise, checking that the DC side decrypts tag and DC id. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "obfs2.h"

static const uint8_t key16[16] = { 0x36, 0x7a, 0x18, 0x9a, 0xee, 0x18, 0xfa, 0x31,
                                   0xc1, 0x90, 0x05, 0x4e, 0xfd, 0x4a, 0x8e, 0x95 };

/* Rewrites bytes 56..63 so they decrypt to dd dd dd dd with the client key. */
static void force_tag(uint8_t f[64])
{
    uint8_t in[48], k[32], ks[64];
    crypto_ctr c;
    memcpy(in, f + 8, 32);
    memcpy(in + 32, key16, 16);
    crypto_sha256(in, sizeof in, k);
    crypto_ctr_init(&c, k, f + 40);
    memset(ks, 0, sizeof ks);
    crypto_ctr_apply(&c, ks, sizeof ks);
    for (int i = 56; i < 60; i++)
        f[i] = (uint8_t)(0xdd ^ ks[i]);
    crypto_ctr_wipe(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t rest[65536];
    uint8_t frame[64], orig[64];
    obfs2_ciphers c;
    int16_t dc = 0x1234;

    if (size < 65 || size - 65 > sizeof rest)
        return 0;
    uint8_t flags = data[0];
    memcpy(frame, data + 1, 64);
    if (flags & 1)
        force_tag(frame);
    memcpy(orig, frame, 64);
    size_t n = size - 65;

    obfs2_result r = obfs2_accept_client(frame, key16, &c, &dc);
    if (memcmp(frame, orig, 64) != 0)
        abort();
    if ((flags & 1) && r != OBFS2_OK)
        abort();
    if (r == OBFS2_OK) {
        memcpy(rest, data + 65, n);
        crypto_ctr_apply(&c.rx, rest, n);
        crypto_ctr_apply(&c.tx, rest, n);
        obfs2_wipe(&c);
    } else if (dc != 0x1234) {
        abort();
    }

    /* The same bytes as DC-frame noise. */
    if (obfs2_noise_ok(orig)) {
        uint8_t f[64], plain[64];
        crypto_ctr dec;
        int16_t want = (int16_t)(uint16_t)(flags << 8 | orig[0]);
        memcpy(f, orig, 64);
        obfs2_build_dc_frame(f, want, &c);
        if (memcmp(f, orig, 56) != 0)
            abort();
        memcpy(plain, f, 64);
        crypto_ctr_init(&dec, f + 8, f + 40);
        crypto_ctr_apply(&dec, plain, 64);
        if (memcmp(plain + 56, "\xdd\xdd\xdd\xdd", 4) != 0 ||
            (int16_t)(uint16_t)(plain[60] | plain[61] << 8) != want)
            abort();
        crypto_ctr_wipe(&dec);
        obfs2_wipe(&c);
    }
    return 0;
}
