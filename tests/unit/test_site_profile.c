/* site_profile, mlkem_shape, the shaped ServerHello and the probe hello. */
#include <time.h>

#include <stdlib.h>

#include "config_ref.h"
#include "crypto.h"
#include "faketls.h"
#include "mlkem_shape.h"
#include "site_probe.h"
#include "site_profile.h"
#include "unit.h"

static tg_secret test_secret(void)
{
    tg_secret s;
    memset(&s, 0, sizeof s);
    for (int i = 0; i < SECRET_KEY_LEN; i++)
        s.key[i] = (uint8_t)(i + 1);
    memcpy(s.host, "tgfront.test", 12);
    s.host_len = 12;
    return s;
}

/* A Go-like flight: our shaped ServerHello, CCS, then Caddy's records. */
static const uint16_t go_records[5] = { 36, 947, 97, 53, 139 };

static size_t go_flight(uint8_t *out, size_t cap, uint16_t group)
{
    tg_secret s = test_secret();
    faketls_hello h;
    faketls_sh_shape sh;
    uint8_t share[FAKETLS_MLKEM_SERVER_SHARE] = { 0 }, app[1] = { 0 };
    memset(&h, 0, sizeof h);
    h.session_id_len = 32;
    faketls_default_shape(&sh, 0x1301);
    if (group == FAKETLS_GROUP_X25519MLKEM768) {
        sh.group = group;
        sh.share_len = FAKETLS_MLKEM_SERVER_SHARE;
    }
    size_t n = faketls_build_shaped(out, cap, &h, &s, &sh, share, app, 1);
    n -= 6;   /* drop our one-byte record: Caddy's records follow the CCS */
    for (int i = 0; i < 5; i++) {
        out[n] = 0x17;
        out[n + 1] = out[n + 2] = 0x03;
        out[n + 3] = (uint8_t)(go_records[i] >> 8);
        out[n + 4] = (uint8_t)go_records[i];
        memset(out + n + 5, 0xab, go_records[i]);
        n += 5 + go_records[i];
    }
    return n;
}

TEST(site_flight_parse_go_flight_and_every_prefix)
{
    static uint8_t buf[4096];
    size_t n = go_flight(buf, sizeof buf, FAKETLS_GROUP_X25519MLKEM768);
    site_flight f;
    const char *why = NULL;
    CHECK(site_flight_parse(buf, n, &f, &why) == SITE_FLIGHT_OK);
    CHECK_EQ_INT(f.sh.cipher, 0x1301);
    CHECK_EQ_INT(f.sh.group, FAKETLS_GROUP_X25519MLKEM768);
    CHECK_EQ_INT(f.sh.share_len, 1120);
    CHECK_EQ_INT(f.sh.ext_count, 2);
    CHECK_EQ_INT(f.sh.exts[0], 0x002b);
    CHECK_EQ_INT(f.sh.exts[1], 0x0033);
    CHECK_EQ_INT(f.records, 5);
    CHECK_EQ_INT(f.flight_bytes, 36 + 947 + 97 + 53 + 139 + 25);
    int bad = 0;
    for (size_t cut = 0; cut < n; cut++) {
        site_flight g;
        site_flight_result r = site_flight_parse(buf, cut, &g, NULL);
        if (r == SITE_FLIGHT_REJECT || (r == SITE_FLIGHT_OK && g.records >= 5))
            bad++;
    }
    CHECK_MSG(bad == 0, "%d prefixes rejected or complete", bad);
}

TEST(site_flight_parse_rejects)
{
    static uint8_t buf[4096];
    size_t n = go_flight(buf, sizeof buf, FAKETLS_GROUP_X25519);
    site_flight f;
    const char *why = NULL;
    uint8_t alert[7] = { 0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28 };
    CHECK(site_flight_parse(alert, sizeof alert, &f, &why) == SITE_FLIGHT_REJECT && why);
    buf[5 + 4 + 2 + 32 + 1 + 32 + 3 + 2 + 4 + 1] = 0x03;   /* supported_versions 0303 */
    CHECK(site_flight_parse(buf, n, &f, &why) == SITE_FLIGHT_REJECT);
}

TEST(site_answer_learns_ecdsa_coins)
{
    static uint8_t buf[4096];
    size_t n = go_flight(buf, sizeof buf, FAKETLS_GROUP_X25519);
    site_flight f;
    site_answer a;
    const char *why = NULL;
    CHECK(site_flight_parse(buf, n, &f, NULL) == SITE_FLIGHT_OK);
    CHECK(site_answer_learn(&f, 1, &a, &why) == 0);
    /* CertificateVerify 97 = a 72-byte P-256 signature: 2 bytes over 70. */
    CHECK_EQ_INT(a.coins, 2);
    CHECK_EQ_INT(a.spread, 0);
    CHECK_EQ_INT(a.flight_min, f.flight_bytes - 2);
    CHECK(site_answer_fits(&a, &f));
    size_t lo = 99999, hi = 0;
    for (uint32_t r = 0; r < 4; r++) {
        size_t l = site_answer_appdata_len(&a, r, 16384);
        lo = l < lo ? l : lo;
        hi = l > hi ? l : hi;
    }
    CHECK_EQ_INT(lo, a.flight_min - 5);
    CHECK_EQ_INT(hi, a.flight_min - 3);
    CHECK_EQ_INT(site_answer_appdata_len(&a, 0, 100), 100);
}

TEST(mlkem_shape_compress_and_encode)
{
    CHECK_EQ_INT(mlkem_shape_compress(0, 10), 0);
    CHECK_EQ_INT(mlkem_shape_compress(3328, 10), 0);
    CHECK_EQ_INT(mlkem_shape_compress(1665, 4), 8);
    CHECK_EQ_INT(mlkem_shape_compress(832, 1), 0);
    CHECK_EQ_INT(mlkem_shape_compress(833, 1), 1);
    uint16_t c[4] = { 1, 2, 3, 4 };
    uint8_t out[5], want[5] = { 0x01, 0x08, 0x30, 0x00, 0x01 };
    mlkem_shape_encode(c, 4, 10, out);
    CHECK_MEM(out, want, 5);
    uint8_t ek[MLKEM768_EK_LEN];
    CHECK(mlkem_shape_ek(ek) == 0);
    int below_q = 1;
    for (int i = 0; i < 384; i++) {
        unsigned a = ek[3 * i] | (ek[3 * i + 1] & 15) << 8, b = ek[3 * i + 1] >> 4 | ek[3 * i + 2] << 4;
        below_q &= a < 3329 && b < 3329;
    }
    CHECK(below_q);
}

/* The probe's hellos, signed, pass the FakeTLS check and show their kind. */
TEST(site_probe_hello_kinds)
{
    tg_secret s = test_secret();
    for (int k = 0; k < SITE_SHAPES; k++) {
        uint8_t rec[4096], d[32];
        size_t n = site_probe_hello((site_shape)k, "tgfront.test", rec, sizeof rec);
        CHECK(n > 0);
        memset(rec + 11, 0, 32);
        crypto_hmac_sha256(s.key, SECRET_KEY_LEN, rec, n, d);
        uint32_t now = (uint32_t)time(NULL);
        for (int i = 0; i < 4; i++)
            d[28 + i] ^= (uint8_t)(now >> (8 * i));
        memcpy(rec + 11, d, 32);
        faketls_hello h;
        faketls_reason why;
        CHECK(faketls_check_client_hello(rec, n, &s, now, 3000, &h, &why) == FAKETLS_OK);
        CHECK_EQ_INT(h.mlkem_share, k == SITE_SHAPE_MLKEM);
        CHECK_EQ_INT(h.tls13_suites, 7);
        CHECK(site_shape_of(&h) == (site_shape)k);
        if (k == SITE_SHAPE_X25519)
            CHECK_EQ_INT(n, 517);
    }
}

/* The prober thread outlives the configs it was started with (shutdown
 * frees the start-up config before it stops the prober): its target keeps
 * copies, so a freed config cannot reach a probe. */
TEST(site_target_outlives_its_config)
{
    tgf_config *cfg = config_ref_new();
    CHECK(cfg != NULL);
    if (!cfg)
        return;
    strcpy(cfg->secret.host, "tgfront.test");
    cfg->secret.host_len = strlen(cfg->secret.host);
    cfg->fronting_proxy_protocol = 1;
    dc_addr a = { .len = 0 };
    site_target t;
    site_target_init(&t, cfg, &a, 1);
    config_ref_drop(cfg);   /* wiped and freed: ASan would see any later read */
    CHECK_STR(t.host, "tgfront.test");
    CHECK_EQ_INT(t.proxy_protocol, 1);
    CHECK_EQ_INT(t.count, 1);
}

TEST(site_store_pick_default_and_learned)
{
    site_store st;
    site_answer a, got;
    faketls_hello h;
    int learned;
    memset(&h, 0, sizeof h);
    h.cipher_suite = 0x1302;
    h.tls13_suites = 2;   /* 0x1302 only */
    h.mlkem_share = 1;
    CHECK(site_store_init(&st) == 0);
    site_store_pick(&st, &h, &got, &learned);
    CHECK(!learned && got.sh.group == FAKETLS_GROUP_X25519 && got.sh.cipher == 0x1302);
    site_answer_default(&a, 0x1301);
    a.sh.group = FAKETLS_GROUP_X25519MLKEM768;
    a.sh.share_len = 1120;
    site_answer all[SITE_SHAPES] = { a, a };
    int which[SITE_SHAPES] = { 0, 1 };
    site_store_update(&st, all, which, 1000);
    site_store_pick(&st, &h, &got, &learned);
    /* The site's 0x1301 was not offered: the client's own choice. */
    CHECK(learned && got.sh.group == FAKETLS_GROUP_X25519MLKEM768 && got.sh.cipher == 0x1302);
    char text[2048];
    site_store_render(&st, "mtg", 1010, text, sizeof text);
    CHECK(strstr(text, "mtg_site_profile_age_seconds 10\n") != NULL);
    CHECK(strstr(text, "hello=\"x25519mlkem768\",source=\"site\"") != NULL);
    site_store_destroy(&st);
}
