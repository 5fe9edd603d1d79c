/* obfs2: client frame accept (known answer and built here), the four cipher
 * directions interoperating, the DC frame, the noise rules. */
#include "unit.h"

#include <stdint.h>
#include <stdlib.h>

#include "crypto.h"
#include "obfs2.h"

static const char *const okey_hex = "367a189aee18fa31c190054efd4a8e95";

/* Known answer from Python (hashlib + cryptography's AES-CTR): frame
 * bytes (i*13+5), tag dd*4, dc -3, sent as 0..55 clear + 56..63 encrypted
 * with SHA-256(frame[8..40] || key), IV frame[40..56]. */
static const char *const kat_frame_hex =
    "05121f2c394653606d7a8794a1aebbc8d5e2effc091623303d4a5764717e8b98"
    "a5b2bfccd9e6f3000d1a2734414e5b6875828f9ca9b6c3d072de11a1f329a241";
/* tx of "hello proxy to client" at offset 0 (proxy -> client). */
static const char *const kat_tx_hex = "fa96fd26d153f1f7873084c5c471526d3d30bc296f";
/* The client's "client data" at stream offset 64 (client -> proxy). */
static const char *const kat_rx_hex = "ee197db9a5ba5360097dfd";

TEST(obfs2_kat_accept)
{
    uint8_t frame[64], key[16], tx[32], rx[16];
    obfs2_ciphers c;
    int16_t dc = 0;
    unit_unhex(okey_hex, key, sizeof key);
    CHECK_EQ_INT(unit_unhex(kat_frame_hex, frame, sizeof frame), 64);
    CHECK_EQ_INT(obfs2_accept_client(frame, key, &c, &dc), OBFS2_OK);
    CHECK_EQ_INT(dc, -3);

    uint8_t msg[] = "hello proxy to client";
    size_t n = unit_unhex(kat_tx_hex, tx, sizeof tx);
    crypto_ctr_apply(&c.tx, msg, n);
    CHECK_MEM(msg, tx, n);

    n = unit_unhex(kat_rx_hex, rx, sizeof rx);
    crypto_ctr_apply(&c.rx, rx, n);
    CHECK_MEM(rx, "client data", n);
    obfs2_wipe(&c);
}

/* The client's side, written from the protocol description: returns the
 * frame as sent and the client's two ciphers (send, receive). */
static void client_frame(const uint8_t key16[16], const uint8_t tag[4], int16_t dc,
                         uint8_t wire[64], crypto_ctr *send, crypto_ctr *recv)
{
    uint8_t f[64], in[48], k[32], rev[48], enc[64];
    for (int i = 0; i < 64; i++)
        f[i] = (uint8_t)rand();
    memcpy(f + 56, tag, 4);
    f[60] = (uint8_t)(uint16_t)dc;
    f[61] = (uint8_t)((uint16_t)dc >> 8);

    memcpy(in, f + 8, 32);
    memcpy(in + 32, key16, 16);
    crypto_sha256(in, 48, k);
    crypto_ctr_init(send, k, f + 40);
    for (int i = 0; i < 48; i++)
        rev[i] = f[55 - i];
    memcpy(in, rev, 32);
    crypto_sha256(in, 48, k);
    crypto_ctr_init(recv, k, rev + 32);

    memcpy(enc, f, 64);
    crypto_ctr_apply(send, enc, 64);
    memcpy(wire, f, 56);
    memcpy(wire + 56, enc + 56, 8);
}

TEST(obfs2_accept_built_and_interop)
{
    static const int16_t dcs[] = { 1, 2, 5, -2, 0, 203, 10004, -32768 };
    uint8_t key[16], wire[64], orig[64];
    unit_unhex(okey_hex, key, sizeof key);
    srand(11);
    for (size_t k = 0; k < sizeof dcs / sizeof dcs[0]; k++) {
        crypto_ctr csend, crecv;
        obfs2_ciphers p;
        int16_t dc = 99;
        client_frame(key, (const uint8_t *)"\xdd\xdd\xdd\xdd", dcs[k], wire, &csend, &crecv);
        memcpy(orig, wire, 64);
        CHECK_EQ_INT(obfs2_accept_client(wire, key, &p, &dc), OBFS2_OK);
        CHECK_EQ_INT(dc, dcs[k]);
        CHECK_MEM(wire, orig, 64);   /* input untouched */

        /* Both directions, in uneven pieces. */
        uint8_t data[3000], buf[3000];
        for (size_t i = 0; i < sizeof data; i++)
            data[i] = (uint8_t)(i * 3 + k);
        memcpy(buf, data, sizeof buf);
        crypto_ctr_apply(&csend, buf, sizeof buf);
        for (size_t off = 0, step = 1; off < sizeof buf; off += step, step = step * 2 + 1)
            crypto_ctr_apply(&p.rx, buf + off, off + step > sizeof buf ? sizeof buf - off : step);
        CHECK_MEM(buf, data, sizeof data);

        memcpy(buf, data, sizeof buf);
        crypto_ctr_apply(&p.tx, buf, 1000);
        crypto_ctr_apply(&p.tx, buf + 1000, 2000);
        crypto_ctr_apply(&crecv, buf, sizeof buf);
        CHECK_MEM(buf, data, sizeof data);
        obfs2_wipe(&p);
    }
}

TEST(obfs2_wrong_tag_or_key)
{
    static const char *const tags[] = { "\xef\xef\xef\xef", "\xee\xee\xee\xee",
                                        "\xdd\xdd\xdd\xdc", "\x00\x00\x00\x00" };
    uint8_t key[16], other[16], wire[64];
    crypto_ctr s, r;
    obfs2_ciphers p;
    int16_t dc = 77;
    unit_unhex(okey_hex, key, sizeof key);
    for (size_t i = 0; i < 4; i++) {
        client_frame(key, (const uint8_t *)tags[i], 2, wire, &s, &r);
        CHECK_EQ_INT(obfs2_accept_client(wire, key, &p, &dc), OBFS2_BAD_TAG);
        CHECK_EQ_INT(dc, 77);
    }
    memcpy(other, key, 16);
    other[15] ^= 1;
    client_frame(key, (const uint8_t *)"\xdd\xdd\xdd\xdd", 2, wire, &s, &r);
    CHECK_EQ_INT(obfs2_accept_client(wire, other, &p, &dc), OBFS2_BAD_TAG);
    CHECK_EQ_INT(obfs2_accept_client(wire, key, &p, &dc), OBFS2_OK);
    CHECK_EQ_INT(dc, 2);
}

static void draw_noise(uint8_t f[64])
{
    do {
        for (int i = 0; i < 64; i++)
            f[i] = (uint8_t)rand();
    } while (!obfs2_noise_ok(f));
}

TEST(obfs2_dc_frame)
{
    static const int16_t dcs[] = { 1, 2, 4, 203, -5 };
    srand(12);
    for (size_t k = 0; k < sizeof dcs / sizeof dcs[0]; k++) {
        uint8_t noise[64], frame[64], plain[64], rev[48];
        obfs2_ciphers p;
        crypto_ctr dc_recv, dc_send;
        draw_noise(noise);
        memcpy(frame, noise, 64);
        obfs2_build_dc_frame(frame, dcs[k], &p);
        CHECK_MEM(frame, noise, 56);   /* 0..55 go out in plaintext */

        /* The DC's side: decrypt with key frame[8..40], IV frame[40..56]. */
        memcpy(plain, frame, 64);
        crypto_ctr_init(&dc_recv, frame + 8, frame + 40);
        crypto_ctr_apply(&dc_recv, plain, 64);
        CHECK_MEM(plain + 56, "\xdd\xdd\xdd\xdd", 4);
        CHECK_EQ_INT((int16_t)(uint16_t)(plain[60] | plain[61] << 8), dcs[k]);

        /* Proxy -> DC continues at offset 64. */
        uint8_t data[777], buf[777];
        for (size_t i = 0; i < sizeof data; i++)
            data[i] = (uint8_t)(i + k);
        memcpy(buf, data, sizeof buf);
        crypto_ctr_apply(&p.tx, buf, sizeof buf);
        crypto_ctr_apply(&dc_recv, buf, sizeof buf);
        CHECK_MEM(buf, data, sizeof data);

        /* DC -> proxy: reversed material, offset 0. */
        for (int i = 0; i < 48; i++)
            rev[i] = frame[55 - i];
        crypto_ctr_init(&dc_send, rev, rev + 32);
        memcpy(buf, data, sizeof buf);
        crypto_ctr_apply(&dc_send, buf, sizeof buf);
        crypto_ctr_apply(&p.rx, buf, 100);
        crypto_ctr_apply(&p.rx, buf + 100, sizeof buf - 100);
        CHECK_MEM(buf, data, sizeof data);
        obfs2_wipe(&p);
    }
}

TEST(obfs2_noise_rules)
{
    static const char *const bad_heads[] = { "HEAD", "POST", "GET ", "OPTI",
                                             "\x16\x03\x01\x02", "\xdd\xdd\xdd\xdd",
                                             "\xee\xee\xee\xee", "\xef\x00\x00\x00",
                                             "\xef\xef\xef\xef" };
    uint8_t f[64];
    memset(f, 0x11, sizeof f);
    CHECK_EQ_INT(obfs2_noise_ok(f), 1);
    for (size_t i = 0; i < sizeof bad_heads / sizeof bad_heads[0]; i++) {
        memset(f, 0x11, sizeof f);
        memcpy(f, bad_heads[i], 4);
        CHECK_EQ_INT(obfs2_noise_ok(f), 0);
    }
    memset(f, 0x11, sizeof f);
    memset(f + 4, 0, 4);
    CHECK_EQ_INT(obfs2_noise_ok(f), 0);
    f[7] = 1;
    CHECK_EQ_INT(obfs2_noise_ok(f), 1);
    /* Near misses are fine. */
    memset(f, 0x11, sizeof f);
    memcpy(f, "GET!", 4);
    CHECK_EQ_INT(obfs2_noise_ok(f), 1);
    memcpy(f, "\x16\x03\x01\x03", 4);
    CHECK_EQ_INT(obfs2_noise_ok(f), 1);
    f[0] = 0xee;
    CHECK_EQ_INT(obfs2_noise_ok(f), 1);
}

/* Fast mode: with the client's tx material mirrored into the DC frame, the
 * DC's stream toward us equals ours toward the client byte for byte (so
 * DC -> client needs no AES), the frame is still acceptable noise with the
 * tag and DC set, and the material recomputed equals the accepted tx. */
TEST(obfs2_fast_mode_streams_are_equal)
{
    uint8_t key16[16], wire[64], frame[64], k[32], iv[16];
    unit_unhex(okey_hex, key16, sizeof key16);
    srand(5);
    crypto_ctr csend, crecv;
    obfs2_ciphers cli, dc;
    int16_t num = 0;
    client_frame(key16, (const uint8_t *)"\xdd\xdd\xdd\xdd", 2, wire, &csend, &crecv);
    CHECK_EQ_INT(obfs2_accept_client(wire, key16, &cli, &num), OBFS2_OK);
    obfs2_client_tx_material(wire, key16, k, iv);
    do {
        for (size_t i = 0; i < sizeof frame; i++)
            frame[i] = (uint8_t)rand();
    } while (!obfs2_noise_ok(frame));
    obfs2_mirror_material(frame, k, iv);
    CHECK(obfs2_noise_ok(frame));
    obfs2_build_dc_frame(frame, 2, &dc);
    uint8_t rev[48];
    for (size_t i = 0; i < 48; i++)
        rev[i] = frame[8 + 47 - i];
    CHECK_MEM(rev, k, 32);
    CHECK_MEM(rev + 32, iv, 16);
    uint8_t a[5000], b[5000];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    crypto_ctr_apply(&dc.rx, a, 777);
    crypto_ctr_apply(&dc.rx, a + 777, sizeof a - 777);
    crypto_ctr_apply(&cli.tx, b, sizeof b);
    CHECK_MEM(a, b, sizeof a);
    /* The client decrypts the DC's stream: crecv is the client's rx. */
    crypto_ctr_apply(&crecv, a, sizeof a);
    memset(b, 0, sizeof b);
    CHECK_MEM(a, b, sizeof a);
    obfs2_wipe(&cli);
    obfs2_wipe(&dc);
}
