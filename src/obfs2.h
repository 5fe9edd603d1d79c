/* obfs2: the obfuscated2 init frames (pure; no I/O, no allocation).
 *
 * Client side (inside FakeTLS): the client's 64-byte frame gives the two
 * AES-256-CTR streams between client and proxy, keys mixed with the secret's
 * key. DC side: we build our own frame toward the Telegram DC (no secret),
 * sending bytes 0..55 in plaintext as tdlib and Telegram's MTProxy do.
 *
 * Frame layout: [0..8) noise, [8..40) key, [40..56) IV, [56..60) tag,
 * [60..62) DC id (signed LE16), [62..64) noise. */
#ifndef TGF_OBFS2_H
#define TGF_OBFS2_H

#include <stdint.h>

#include "crypto.h"

#define OBFS2_FRAME_LEN 64

/* rx decrypts what the peer sends us; tx encrypts what we send the peer.
 * Both hold key schedules: wipe with obfs2_wipe(). */
typedef struct {
    crypto_ctr rx;
    crypto_ctr tx;
} obfs2_ciphers;

typedef enum { OBFS2_OK, OBFS2_BAD_TAG } obfs2_result;

/* Accepts the client's init frame (as received: 0..55 clear, 56..63
 * encrypted). rx key = SHA-256(frame[8..40] || key16), IV frame[40..56];
 * tx from frame[8..56] reversed: key = SHA-256(rev[0..32] || key16), IV
 * rev[32..48]. The frame is decrypted with rx (which then stands at stream
 * offset 64, ready for the client's next byte; tx stands at 0).
 * OBFS2_OK: *out set, *dc = the DC id as sent (may be negative or 0; the
 * caller maps it). OBFS2_BAD_TAG: the tag is not dd dd dd dd; *out is
 * wiped and *dc untouched. frame is not modified. */
obfs2_result obfs2_accept_client(const uint8_t frame[OBFS2_FRAME_LEN],
                                 const uint8_t key16[16], obfs2_ciphers *out,
                                 int16_t *dc);

/* 1 if 64 random bytes may start a frame toward a DC: byte 0 is not 0xef,
 * the first 4 bytes are not "HEAD", "POST", "GET ", "OPTI", 16 03 01 02,
 * dd dd dd dd or ee ee ee ee, and bytes 4..7 are not all zero. Otherwise the
 * caller draws new noise. */
int obfs2_noise_ok(const uint8_t noise[OBFS2_FRAME_LEN]);

/* Turns noise accepted by obfs2_noise_ok() into the frame to send to the DC:
 * sets the tag dd dd dd dd and dc (LE16), derives tx (key frame[8..40], IV
 * frame[40..56]) and rx (from frame[8..56] reversed) with no hashing, and
 * replaces bytes 56..63 by their encryption. Bytes 0..55 stay plaintext.
 * tx then stands at stream offset 64, rx at 0. Send all 64 bytes. */
void obfs2_build_dc_frame(uint8_t frame[OBFS2_FRAME_LEN], int16_t dc,
                          obfs2_ciphers *out);

/* Fast mode, step 1: the key and IV of the stream we encrypt toward the
 * client with (out->tx of obfs2_accept_client for this frame), recomputed
 * from the client's frame as received. Both are secret: wipe them. */
void obfs2_client_tx_material(const uint8_t frame[OBFS2_FRAME_LEN], const uint8_t key16[16],
                              uint8_t key[32], uint8_t iv[16]);

/* Fast mode, step 2: puts key and iv into noise accepted by obfs2_noise_ok
 * (bytes 8..56 = reverse(key || iv); bytes 0..7 unchanged, so the noise
 * stays acceptable) before obfs2_build_dc_frame. The DC's stream toward us
 * (out->rx) then equals the one with that key and IV, from the same
 * offset 0: a DC -> client byte needs no AES at all. Those bytes go to the
 * DC in clear, as the frame's material always does. */
void obfs2_mirror_material(uint8_t frame[OBFS2_FRAME_LEN], const uint8_t key[32],
                           const uint8_t iv[16]);

/* Wipes both cipher states. */
void obfs2_wipe(obfs2_ciphers *c);

#endif
