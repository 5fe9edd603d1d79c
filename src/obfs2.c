/* obfs2: obfuscated2 init frames, client side and DC side. */
#include "obfs2.h"

#include <string.h>

#define KEY_OFF 8
#define KEY_LEN 32
#define IV_OFF 40
#define IV_LEN 16
#define MAT_LEN (KEY_LEN + IV_LEN)   /* bytes 8..56, reversed for one way */
#define TAG_OFF 56
#define DC_OFF 60

/* Bytes 8..56 reversed: key and IV of the opposite direction. */
static void reverse_material(const uint8_t frame[OBFS2_FRAME_LEN], uint8_t rev[MAT_LEN])
{
    for (size_t i = 0; i < MAT_LEN; i++)
        rev[i] = frame[KEY_OFF + MAT_LEN - 1 - i];
}

/* AES key = SHA-256(material || key16), as between client and proxy. */
static void mixed_key(const uint8_t material[KEY_LEN], const uint8_t key16[16],
                      uint8_t out[KEY_LEN])
{
    uint8_t in[KEY_LEN + 16];
    memcpy(in, material, KEY_LEN);
    memcpy(in + KEY_LEN, key16, 16);
    crypto_sha256(in, sizeof in, out);
    crypto_wipe(in, sizeof in);
}

obfs2_result obfs2_accept_client(const uint8_t frame[OBFS2_FRAME_LEN],
                                 const uint8_t key16[16], obfs2_ciphers *out,
                                 int16_t *dc)
{
    uint8_t key[KEY_LEN], rev[MAT_LEN], plain[OBFS2_FRAME_LEN];
    obfs2_result res = OBFS2_OK;

    mixed_key(frame + KEY_OFF, key16, key);
    crypto_ctr_init(&out->rx, key, frame + IV_OFF);
    reverse_material(frame, rev);
    mixed_key(rev, key16, key);
    crypto_ctr_init(&out->tx, key, rev + KEY_LEN);

    /* Decrypt all 64 bytes so rx stands where the client's stream goes on. */
    memcpy(plain, frame, sizeof plain);
    crypto_ctr_apply(&out->rx, plain, sizeof plain);
    if (plain[TAG_OFF] != 0xdd || plain[TAG_OFF + 1] != 0xdd ||
        plain[TAG_OFF + 2] != 0xdd || plain[TAG_OFF + 3] != 0xdd) {
        obfs2_wipe(out);
        res = OBFS2_BAD_TAG;
    } else {
        *dc = (int16_t)(uint16_t)(plain[DC_OFF] | plain[DC_OFF + 1] << 8);
    }
    crypto_wipe(key, sizeof key);
    crypto_wipe(rev, sizeof rev);
    crypto_wipe(plain, sizeof plain);
    return res;
}

int obfs2_noise_ok(const uint8_t noise[OBFS2_FRAME_LEN])
{
    /* First words that would make the frame look like another protocol to
     * the DC's front end (HTTP, TLS, the other obfuscated2 tags). */
    static const uint32_t forbidden[] = {
        0x44414548u,   /* "HEAD" */
        0x54534f50u,   /* "POST" */
        0x20544547u,   /* "GET " */
        0x4954504fu,   /* "OPTI" */
        0x02010316u,   /* 16 03 01 02 */
        0xddddddddu,
        0xeeeeeeeeu,
    };
    uint32_t first = (uint32_t)noise[0] | (uint32_t)noise[1] << 8 |
                     (uint32_t)noise[2] << 16 | (uint32_t)noise[3] << 24;
    if (noise[0] == 0xef)   /* abridged transport marker */
        return 0;
    for (size_t i = 0; i < sizeof forbidden / sizeof forbidden[0]; i++)
        if (first == forbidden[i])
            return 0;
    if ((noise[4] | noise[5] | noise[6] | noise[7]) == 0)
        return 0;
    return 1;
}

void obfs2_build_dc_frame(uint8_t frame[OBFS2_FRAME_LEN], int16_t dc,
                          obfs2_ciphers *out)
{
    uint8_t rev[MAT_LEN], enc[OBFS2_FRAME_LEN];
    uint16_t udc = (uint16_t)dc;

    frame[TAG_OFF] = frame[TAG_OFF + 1] = frame[TAG_OFF + 2] = frame[TAG_OFF + 3] = 0xdd;
    frame[DC_OFF] = (uint8_t)udc;
    frame[DC_OFF + 1] = (uint8_t)(udc >> 8);

    crypto_ctr_init(&out->tx, frame + KEY_OFF, frame + IV_OFF);
    reverse_material(frame, rev);
    crypto_ctr_init(&out->rx, rev, rev + KEY_LEN);

    /* Encrypt the whole frame to advance tx to 64, but send 0..55 in clear
     * as Telegram's own clients do; the DC decrypts only what it needs. */
    memcpy(enc, frame, sizeof enc);
    crypto_ctr_apply(&out->tx, enc, sizeof enc);
    memcpy(frame + TAG_OFF, enc + TAG_OFF, OBFS2_FRAME_LEN - TAG_OFF);
    crypto_wipe(rev, sizeof rev);
    crypto_wipe(enc, sizeof enc);
}

void obfs2_client_tx_material(const uint8_t frame[OBFS2_FRAME_LEN], const uint8_t key16[16],
                              uint8_t key[32], uint8_t iv[16])
{
    uint8_t rev[MAT_LEN];

    reverse_material(frame, rev);
    mixed_key(rev, key16, key);
    memcpy(iv, rev + KEY_LEN, IV_LEN);
    crypto_wipe(rev, sizeof rev);
}

void obfs2_mirror_material(uint8_t frame[OBFS2_FRAME_LEN], const uint8_t key[32],
                           const uint8_t iv[16])
{
    /* build_dc_frame derives rx from bytes 8..56 reversed. */
    for (size_t i = 0; i < KEY_LEN; i++)
        frame[KEY_OFF + MAT_LEN - 1 - i] = key[i];
    for (size_t i = 0; i < IV_LEN; i++)
        frame[KEY_OFF + MAT_LEN - 1 - KEY_LEN - i] = iv[i];
}

void obfs2_wipe(obfs2_ciphers *c)
{
    crypto_ctr_wipe(&c->rx);
    crypto_ctr_wipe(&c->tx);
}
