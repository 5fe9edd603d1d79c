/* faketls: ClientHello check (known answer, split points, fragmentation,
 * every rejection reason), ServerHello layout and digest, record unwrap. */
#include "unit.h"

#include <stdint.h>
#include <stdlib.h>

#include "crypto.h"
#include "faketls.h"

#define NOW 1700000000
#define TOL 3000

/* Known answer, computed independently with Python's hmac module: key
 * 367a189aee18fa31c190054efd4a8e95, timestamp 1700000000, SNI example.com,
 * a Chrome-like 517-byte hello (GREASE cipher first, padding extension). */
static const char kat_hello_hex[] =
    "1603010200010001fc03031610040638c7af82bd479925bed59bcd2edf416640d5d0a4d6"
    "c2daf71b7c1b5d20202122232425262728292a2b2c2d2e2f303132333435363738393a3b"
    "3c3d3e3f000c3a3a130113021303c02bc02f010001a72a2a000000000010000e00000b65"
    "78616d706c652e636f6d0010000e000c02683208687474702f312e31002b000706dada03"
    "040303003300260024001d0020404142434445464748494a4b4c4d4e4f50515253545556"
    "5758595a5b5c5d5e5f001501440000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000"
    "00000000000000000000000000";
static const char kat_random_hex[] =
    "1610040638c7af82bd479925bed59bcd2edf416640d5d0a4d6c2daf71b7c1b5d";
/* HMAC(key, kat random || ServerHello(sid 20..3f, cipher 1301, pub 80..9f)
 * + CCS + appdata of 100 bytes (i*7 & 0xff)), same independent source. */
static const char kat_server_random_hex[] =
    "2347bfe464e997df93ec65b3b7d1dc20e1260f39e9ff5958f587899ae7fab677";

static tg_secret test_secret(void)
{
    tg_secret s;
    memset(&s, 0, sizeof s);
    unit_unhex("367a189aee18fa31c190054efd4a8e95", s.key, sizeof s.key);
    strcpy(s.host, "example.com");
    s.host_len = strlen(s.host);
    return s;
}

/* ---- a ClientHello builder following tdlib's layout ---- */

typedef struct {
    const char *sni;            /* NULL: no server_name extension */
    const char *sni2;           /* optional second host_name entry */
    const uint16_t *ciphers;
    size_t nciphers;
    uint32_t ts;
    size_t records;             /* how many records to fragment into */
    const uint8_t *key;         /* NULL: the test secret's key */
} hello_opts;

static const uint16_t default_ciphers[] = { 0x5a5a, 0x1301, 0x1302, 0x1303 };

static hello_opts default_opts(void)
{
    hello_opts o = { "example.com", NULL, default_ciphers, 4, NOW, 1, NULL };
    return o;
}

static uint8_t *put16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

/* Writes the single-record hello (random computed) into rec; returns length. */
static size_t build_record(uint8_t *rec, const hello_opts *o)
{
    tg_secret s = test_secret();
    uint8_t *p = rec + 9, *ext_len_at, mac[32];
    size_t i;

    *p++ = 3; *p++ = 3;
    memset(p, 0, 32);
    p += 32;
    *p++ = 32;
    for (i = 0; i < 32; i++)
        *p++ = (uint8_t)(0xa0 + i);
    p = put16(p, o->nciphers * 2);
    for (i = 0; i < o->nciphers; i++)
        p = put16(p, o->ciphers[i]);
    *p++ = 1; *p++ = 0;
    ext_len_at = p;
    p += 2;
    p = put16(p, 0x1a1a); p = put16(p, 0);          /* GREASE extension */
    if (o->sni) {
        const char *names[2] = { o->sni, o->sni2 };
        size_t list = 0;
        for (i = 0; i < 2 && names[i]; i++)
            list += 3 + strlen(names[i]);
        p = put16(p, 0); p = put16(p, list + 2); p = put16(p, list);
        for (i = 0; i < 2 && names[i]; i++) {
            size_t n = strlen(names[i]);
            *p++ = 0;
            p = put16(p, n);
            memcpy(p, names[i], n);
            p += n;
        }
    }
    p = put16(p, 0x0010); p = put16(p, 5); p = put16(p, 3);   /* ALPN h2 */
    *p++ = 2; *p++ = 'h'; *p++ = '2';
    p = put16(p, 0x0015); p = put16(p, 40);                   /* padding */
    memset(p, 0, 40);
    p += 40;
    put16(ext_len_at, (size_t)(p - ext_len_at - 2));

    size_t total = (size_t)(p - rec), l = total - 9;
    rec[0] = 0x16; rec[1] = 3; rec[2] = 1;
    put16(rec + 3, total - 5);
    rec[5] = 1; rec[6] = (uint8_t)(l >> 16);
    put16(rec + 7, l);
    crypto_hmac_sha256(o->key ? o->key : s.key, 16, rec, total, mac);
    mac[28] ^= (uint8_t)o->ts;
    mac[29] ^= (uint8_t)(o->ts >> 8);
    mac[30] ^= (uint8_t)(o->ts >> 16);
    mac[31] ^= (uint8_t)(o->ts >> 24);
    memcpy(rec + 11, mac, 32);
    return total;
}

/* Splits the handshake message of a single record into n records. */
static size_t fragment(const uint8_t *rec, size_t rec_len, size_t n, uint8_t *out)
{
    size_t msg = rec_len - 5, off = 0, w = 0;
    for (size_t i = 0; i < n; i++) {
        size_t piece = msg / n + (i < msg % n ? 1 : 0);
        out[w++] = 0x16; out[w++] = 3; out[w++] = 1;
        put16(out + w, piece);
        w += 2;
        memcpy(out + w, rec + 5 + off, piece);
        w += piece;
        off += piece;
    }
    return w;
}

static size_t build_hello(uint8_t *out, const hello_opts *o)
{
    uint8_t rec[4096];
    size_t len = build_record(rec, o);
    return fragment(rec, len, o->records ? o->records : 1, out);
}

static faketls_result check(const uint8_t *b, size_t len, faketls_hello *h,
                            faketls_reason *r)
{
    tg_secret s = test_secret();
    return faketls_check_client_hello(b, len, &s, NOW, TOL, h, r);
}

#define CHECK_REJECT(buf, len, why) do {                                 \
        faketls_reason r_ = FAKETLS_R_NONE;                              \
        CHECK_EQ_INT(check((buf), (len), NULL, &r_), FAKETLS_REJECT);    \
        CHECK_STR(faketls_reason_name(r_), faketls_reason_name(why));    \
    } while (0)

/* ---- ClientHello ---- */

TEST(faketls_kat_hello)
{
    uint8_t buf[600], rnd[32];
    size_t len = unit_unhex(kat_hello_hex, buf, sizeof buf);
    faketls_hello h;
    faketls_reason r;
    CHECK_EQ_INT(len, 517);
    unit_unhex(kat_random_hex, rnd, sizeof rnd);
    CHECK_EQ_INT(check(buf, len, &h, &r), FAKETLS_OK);
    CHECK_EQ_INT(r, FAKETLS_R_NONE);
    CHECK_MEM(h.client_random, rnd, 32);
    CHECK_EQ_INT(h.timestamp, NOW);
    CHECK_EQ_INT(h.cipher_suite, 0x1301);
    CHECK_EQ_INT(h.session_id_len, 32);
    CHECK_EQ_INT(h.session_id[0], 0x20);
    CHECK_EQ_INT(h.session_id[31], 0x3f);
    CHECK_EQ_INT(h.consumed, 517);

    /* Pipelined bytes after the hello are not part of it. */
    memcpy(buf + len, "\x14\x03\x03\x00\x01\x01\x17", 7);
    CHECK_EQ_INT(check(buf, len + 7, &h, &r), FAKETLS_OK);
    CHECK_EQ_INT(h.consumed, 517);

    /* out and reason may be NULL. */
    tg_secret s = test_secret();
    CHECK_EQ_INT(faketls_check_client_hello(buf, len, &s, NOW, TOL, NULL, NULL),
                 FAKETLS_OK);
}

TEST(faketls_kat_hello_every_split)
{
    uint8_t buf[600];
    size_t len = unit_unhex(kat_hello_hex, buf, sizeof buf);
    for (size_t i = 0; i < len; i++) {
        faketls_reason r = FAKETLS_R_COUNT;
        if (!CHECK_MSG(check(buf, i, NULL, &r) == FAKETLS_NEED_MORE,
                       "prefix %zu not NEED_MORE (%s)", i, faketls_reason_name(r)))
            break;
    }
    CHECK_EQ_INT(check(buf, len, NULL, NULL), FAKETLS_OK);
}

TEST(faketls_built_hello_ok)
{
    uint8_t buf[4096];
    hello_opts o = default_opts();
    faketls_hello h;
    size_t len = build_hello(buf, &o);
    CHECK_EQ_INT(check(buf, len, &h, NULL), FAKETLS_OK);
    CHECK_EQ_INT(h.cipher_suite, 0x1301);
    CHECK_EQ_INT(h.consumed, len);
    CHECK_EQ_INT(h.session_id[5], 0xa5);
}

TEST(faketls_fragmented)
{
    static const size_t counts[] = { 2, 3, 7, 11 };
    uint8_t buf[4096];
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        hello_opts o = default_opts();
        faketls_hello h;
        o.records = counts[c];
        size_t len = build_hello(buf, &o);
        CHECK_EQ_INT(check(buf, len, &h, NULL), FAKETLS_OK);
        CHECK_EQ_INT(h.consumed, len);
        /* Every prefix waits for more. */
        for (size_t i = 0; i < len; i++)
            if (!CHECK_MSG(check(buf, i, NULL, NULL) == FAKETLS_NEED_MORE,
                           "%zu records: prefix %zu not NEED_MORE", counts[c], i))
                break;
    }
}

TEST(faketls_fragmented_tiny_records)
{
    /* 1-byte records: the handshake header itself spans 4 records. */
    uint8_t rec[4096], buf[8192];
    hello_opts o = default_opts();
    size_t rl = build_record(rec, &o), w = 0;
    for (size_t i = 0; i < 10; i++) {
        memcpy(buf + w, "\x16\x03\x01\x00\x01", 5);
        buf[w + 5] = rec[5 + i];
        w += 6;
    }
    size_t rest = rl - 15;
    buf[w++] = 0x16; buf[w++] = 3; buf[w++] = 1;
    put16(buf + w, rest);
    w += 2;
    memcpy(buf + w, rec + 15, rest);
    w += rest;
    CHECK_EQ_INT(check(buf, w, NULL, NULL), FAKETLS_OK);
}

TEST(faketls_twelve_records_rejected)
{
    uint8_t buf[4096];
    hello_opts o = default_opts();
    o.records = 12;
    size_t len = build_hello(buf, &o);
    CHECK_REJECT(buf, len, FAKETLS_R_TOO_MANY_RECORDS);
    /* Decided at the eleventh header, not the twelfth. */
    size_t eleventh = 0;
    for (int i = 0; i < 10; i++)
        eleventh += 5 + (size_t)(buf[eleventh + 3] << 8 | buf[eleventh + 4]);
    CHECK_EQ_INT(check(buf, eleventh + 4, NULL, NULL), FAKETLS_NEED_MORE);
    CHECK_REJECT(buf, eleventh + 5, FAKETLS_R_TOO_MANY_RECORDS);
}

TEST(faketls_bad_digest)
{
    uint8_t buf[4096], other[16];
    hello_opts o = default_opts();
    size_t len = build_hello(buf, &o);
    buf[len - 1] ^= 1;   /* a padding byte: structure intact */
    CHECK_REJECT(buf, len, FAKETLS_R_BAD_DIGEST);
    buf[len - 1] ^= 1;
    buf[20] ^= 0x80;     /* inside the random */
    CHECK_REJECT(buf, len, FAKETLS_R_BAD_DIGEST);

    memset(other, 0x42, sizeof other);
    o.key = other;
    len = build_hello(buf, &o);
    CHECK_REJECT(buf, len, FAKETLS_R_BAD_DIGEST);
}

TEST(faketls_time_skew)
{
    static const struct { int64_t delta; int ok; } cases[] = {
        { 0, 1 }, { 3, 1 }, { -3, 1 }, { 4, 0 }, { -4, 0 },
        { 100000, 0 }, { -100000, 0 },
    };
    uint8_t buf[4096];
    tg_secret s = test_secret();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hello_opts o = default_opts();
        faketls_reason r;
        o.ts = (uint32_t)(NOW + cases[i].delta);
        size_t len = build_hello(buf, &o);
        faketls_result res = check(buf, len, NULL, &r);
        CHECK_EQ_INT(res, cases[i].ok ? FAKETLS_OK : FAKETLS_REJECT);
        if (!cases[i].ok)
            CHECK_EQ_INT(r, FAKETLS_R_TIME_SKEW);
    }
    /* Tolerance is in milliseconds: 2999 ms does not cover 3 s. */
    hello_opts o = default_opts();
    o.ts = NOW - 3;
    size_t len = build_hello(buf, &o);
    CHECK_EQ_INT(faketls_check_client_hello(buf, len, &s, NOW, 2999, NULL, NULL),
                 FAKETLS_REJECT);
    CHECK_EQ_INT(faketls_check_client_hello(buf, len, &s, NOW, 0, NULL, NULL),
                 FAKETLS_REJECT);
    o.ts = NOW;
    len = build_hello(buf, &o);
    CHECK_EQ_INT(faketls_check_client_hello(buf, len, &s, NOW, 0, NULL, NULL),
                 FAKETLS_OK);
    /* Extreme clocks do not overflow. */
    CHECK_EQ_INT(faketls_check_client_hello(buf, len, &s, INT64_MAX, TOL, NULL, NULL),
                 FAKETLS_REJECT);
    CHECK_EQ_INT(faketls_check_client_hello(buf, len, &s, INT64_MIN, TOL, NULL, NULL),
                 FAKETLS_REJECT);
}

TEST(faketls_sni)
{
    uint8_t buf[4096];
    static const char *const wrong[] = { "example.org", "example.co",
                                         "example.comm", "EXAMPLE.COM", "" };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        hello_opts o = default_opts();
        o.sni = wrong[i];
        size_t len = build_hello(buf, &o);
        CHECK_REJECT(buf, len, FAKETLS_R_SNI_MISMATCH);
    }
    hello_opts o = default_opts();
    o.sni = NULL;
    size_t len = build_hello(buf, &o);
    CHECK_REJECT(buf, len, FAKETLS_R_NO_SNI);
}

TEST(faketls_sni_mismatch_decided_early)
{
    /* Once the server_name extension is in, a wrong name is rejected
     * without waiting for the rest of the hello. */
    uint8_t buf[4096];
    hello_opts o = default_opts();
    o.sni = "other.example";
    size_t len = build_hello(buf, &o);
    size_t sni_end = 0;
    for (size_t i = 0; i + 13 <= len; i++)
        if (memcmp(buf + i, "other.example", 13) == 0)
            sni_end = i + 13;
    CHECK(sni_end > 0 && sni_end < len);
    CHECK_EQ_INT(check(buf, sni_end - 1, NULL, NULL), FAKETLS_NEED_MORE);
    CHECK_REJECT(buf, sni_end, FAKETLS_R_SNI_MISMATCH);
}

TEST(faketls_sni_several_names)
{
    uint8_t buf[4096];
    hello_opts o = default_opts();
    o.sni = "bad.example";
    o.sni2 = "example.com";
    size_t len = build_hello(buf, &o);
    CHECK_EQ_INT(check(buf, len, NULL, NULL), FAKETLS_OK);
    o.sni = "example.com";
    o.sni2 = "x";
    len = build_hello(buf, &o);
    CHECK_EQ_INT(check(buf, len, NULL, NULL), FAKETLS_OK);
    o.sni = "a";
    o.sni2 = "b";
    len = build_hello(buf, &o);
    CHECK_REJECT(buf, len, FAKETLS_R_SNI_MISMATCH);

    /* An entry of another name type is skipped: only it -> no SNI. */
    uint8_t rec[4096];
    o = default_opts();
    len = build_record(rec, &o);
    size_t at = 0;
    for (size_t i = 0; i + 11 <= len; i++)
        if (memcmp(rec + i, "example.com", 11) == 0)
            at = i;
    CHECK_EQ_INT(rec[at - 3], 0);
    rec[at - 3] = 1;
    CHECK_REJECT(rec, len, FAKETLS_R_NO_SNI);
}

TEST(faketls_cipher_choice)
{
    uint8_t buf[4096];
    faketls_hello h;
    static const uint16_t grease_first[] = { 0x0a0a, 0x1a1a, 0xfafa, 0x1302, 0x1301 };
    static const uint16_t all_grease[] = { 0x0a0a, 0x2a2a, 0xdada };
    static const uint16_t near_grease[] = { 0x0a0b, 0x1301 };
    hello_opts o = default_opts();
    o.ciphers = grease_first;
    o.nciphers = 5;
    size_t len = build_hello(buf, &o);
    CHECK_EQ_INT(check(buf, len, &h, NULL), FAKETLS_OK);
    CHECK_EQ_INT(h.cipher_suite, 0x1302);

    o.ciphers = near_grease;
    o.nciphers = 2;
    len = build_hello(buf, &o);
    CHECK_EQ_INT(check(buf, len, &h, NULL), FAKETLS_OK);
    CHECK_EQ_INT(h.cipher_suite, 0x0a0b);

    o.ciphers = all_grease;
    o.nciphers = 3;
    len = build_hello(buf, &o);
    CHECK_REJECT(buf, len, FAKETLS_R_NO_CIPHER);

    o.nciphers = 0;
    len = build_hello(buf, &o);
    CHECK_REJECT(buf, len, FAKETLS_R_NO_CIPHER);
}

TEST(faketls_reject_first_bytes)
{
    CHECK_REJECT((const uint8_t *)"\x17", 1, FAKETLS_R_NOT_HANDSHAKE);
    CHECK_REJECT((const uint8_t *)"GET / HTTP/1.1\r\n", 1, FAKETLS_R_NOT_HANDSHAKE);
    CHECK_REJECT((const uint8_t *)"\x00", 1, FAKETLS_R_NOT_HANDSHAKE);
    CHECK_EQ_INT(check((const uint8_t *)"\x16", 1, NULL, NULL), FAKETLS_NEED_MORE);
    CHECK_EQ_INT(check((const uint8_t *)"", 0, NULL, NULL), FAKETLS_NEED_MORE);
    CHECK_REJECT((const uint8_t *)"\x16\x02", 2, FAKETLS_R_BAD_VERSION);
    CHECK_REJECT((const uint8_t *)"\x16\x03\x03", 3, FAKETLS_R_BAD_VERSION);
    CHECK_EQ_INT(check((const uint8_t *)"\x16\x03\x01\x40", 4, NULL, NULL),
                 FAKETLS_NEED_MORE);
    CHECK_REJECT((const uint8_t *)"\x16\x03\x01\x00\x00", 5, FAKETLS_R_BAD_RECORD_LEN);
    CHECK_REJECT((const uint8_t *)"\x16\x03\x01\x40\x01", 5, FAKETLS_R_BAD_RECORD_LEN);
    CHECK_REJECT((const uint8_t *)"\x16\x03\x01\xff\xff", 5, FAKETLS_R_BAD_RECORD_LEN);
    CHECK_EQ_INT(check((const uint8_t *)"\x16\x03\x01\x40\x00", 5, NULL, NULL),
                 FAKETLS_NEED_MORE);
    /* Handshake type and length. */
    CHECK_REJECT((const uint8_t *)"\x16\x03\x01\x02\x00\x02", 6,
                 FAKETLS_R_NOT_CLIENT_HELLO);
    CHECK_EQ_INT(check((const uint8_t *)"\x16\x03\x01\x02\x00\x01\x00\x3f", 8,
                       NULL, NULL), FAKETLS_NEED_MORE);
    CHECK_REJECT((const uint8_t *)"\x16\x03\x01\x02\x00\x01\x00\x3f\xfd", 9,
                 FAKETLS_R_TOO_LONG);
    CHECK_REJECT((const uint8_t *)"\x16\x03\x01\x02\x00\x01\x01\x00\x00", 9,
                 FAKETLS_R_TOO_LONG);
    /* A second record with a bad header. */
    CHECK_REJECT((const uint8_t *)"\x16\x03\x01\x00\x01\x01\x17", 7,
                 FAKETLS_R_NOT_HANDSHAKE);
    /* A record longer than the handshake it carries. */
    CHECK_REJECT((const uint8_t *)"\x16\x03\x01\x01\x00\x01\x00\x00\x40", 9,
                 FAKETLS_R_MALFORMED);
}

/* Patches a 16-bit length at off of a built record and expects MALFORMED. */
static void expect_malformed_u16(const uint8_t *rec, size_t len, size_t off, int delta)
{
    uint8_t copy[4096];
    memcpy(copy, rec, len);
    size_t v = (size_t)(copy[off] << 8 | copy[off + 1]);
    put16(copy + off, (size_t)((int)v + delta));
    faketls_reason r = FAKETLS_R_NONE;
    CHECK_EQ_INT(check(copy, len, NULL, &r), FAKETLS_REJECT);
    CHECK_MSG(r == FAKETLS_R_MALFORMED, "length at %zu %+d: %s, want malformed", off,
              delta, faketls_reason_name(r));
}

TEST(faketls_malformed_lengths)
{
    uint8_t rec[4096];
    hello_opts o = default_opts();
    size_t len = build_record(rec, &o);
    /* Offsets in the built record: sid length at 43, ciphers at 76. */
    size_t cs = 76, comp = cs + 2 + 8, ext = comp + 2, sni_ext = ext + 2 + 4;
    CHECK_EQ_INT(rec[43], 32);
    CHECK_EQ_INT(rec[cs + 1], 8);
    CHECK_EQ_INT(rec[sni_ext + 1], 0);   /* server_name type */

    expect_malformed_u16(rec, len, cs, 1);        /* odd cipher list */
    expect_malformed_u16(rec, len, cs, 1000);     /* beyond the hello */
    expect_malformed_u16(rec, len, ext, 1);       /* extensions overrun */
    expect_malformed_u16(rec, len, ext, -1);      /* trailing byte */
    expect_malformed_u16(rec, len, ext, 0x7000);
    expect_malformed_u16(rec, len, sni_ext + 2, 1);     /* SNI ext length */
    expect_malformed_u16(rec, len, sni_ext + 2, 0x4000);
    expect_malformed_u16(rec, len, sni_ext + 4, 1);     /* name list length */
    expect_malformed_u16(rec, len, sni_ext + 4, -1);
    expect_malformed_u16(rec, len, sni_ext + 7, 1);     /* host name length */
    expect_malformed_u16(rec, len, sni_ext + 7, 0x100);

    uint8_t copy[4096];
    memcpy(copy, rec, len);
    copy[43] = 33;   /* session id longer than TLS allows */
    CHECK_REJECT(copy, len, FAKETLS_R_MALFORMED);
    memcpy(copy, rec, len);
    copy[43] = 0xff;
    CHECK_REJECT(copy, len, FAKETLS_R_MALFORMED);

    /* Handshake length shorter than the fields: cut at every length. */
    for (size_t l = 0; l + 9 < len; l++) {
        memcpy(copy, rec, len);
        put16(copy + 3, l + 4);
        copy[6] = 0;
        put16(copy + 7, l);
        faketls_reason r = FAKETLS_R_NONE;
        if (!CHECK_MSG(check(copy, l + 9, NULL, &r) == FAKETLS_REJECT,
                       "hello cut to %zu bytes not rejected", l))
            break;
    }
}

/* ---- one-byte mutations ----
 * The fields of the hello build_record() makes from default_opts(), by
 * offset in that single record (checked below against the bytes), and what
 * a change of one byte in each must do. The HMAC covers the whole handshake
 * message, so a change the parser does not read is BAD_DIGEST; a change it
 * reads is caught before the digest, with that field's reason. */
typedef enum {
    M_DIGEST,     /* not read by the parser: REJECT bad_digest */
    M_TIME,       /* random bytes 28..31 carry the timestamp: OK within TOL, else time_skew */
    M_HS_TYPE,    /* handshake type: not_client_hello */
    M_SNI_GONE,   /* server_name extension type, name type: no_sni */
    M_SNI_NAME,   /* host name: sni_mismatch */
    M_EXT_TYPE,   /* another extension's type: bad_digest, unless it became server_name */
    M_LENGTH      /* a length the parser reads: never OK, rejected before the digest */
} mut_class;

static const struct { size_t from, to; mut_class cls; } hello_fields[] = {
    {   5,   6, M_HS_TYPE },  /* handshake type */
    {   6,   9, M_LENGTH },   /* handshake length */
    {   9,  11, M_DIGEST },   /* legacy_version */
    {  11,  39, M_DIGEST },   /* random, the part compared with the HMAC */
    {  39,  43, M_TIME },     /* random, the part XORed with the timestamp */
    {  43,  44, M_LENGTH },   /* session id length */
    {  44,  76, M_DIGEST },   /* session id */
    {  76,  78, M_LENGTH },   /* cipher suites length */
    {  78,  86, M_DIGEST },   /* cipher suites (no single byte makes all GREASE) */
    {  86,  87, M_LENGTH },   /* compression methods length */
    {  87,  88, M_DIGEST },   /* compression method */
    {  88,  90, M_LENGTH },   /* extensions length */
    {  90,  92, M_EXT_TYPE }, /* GREASE extension type */
    {  92,  94, M_LENGTH },   /* GREASE extension length */
    {  94,  96, M_SNI_GONE }, /* server_name type */
    {  96, 100, M_LENGTH },   /* server_name length, name list length */
    { 100, 101, M_SNI_GONE }, /* name type host_name */
    { 101, 103, M_LENGTH },   /* host name length */
    { 103, 114, M_SNI_NAME }, /* "example.com" */
    { 114, 116, M_EXT_TYPE }, /* ALPN type */
    { 116, 118, M_LENGTH },   /* ALPN length */
    { 118, 123, M_DIGEST },   /* ALPN body (the parser skips it) */
    { 123, 125, M_EXT_TYPE }, /* padding type */
    { 125, 127, M_LENGTH },   /* padding length */
    { 127, 167, M_DIGEST },   /* padding */
};
#define HELLO_FIELDS (sizeof hello_fields / sizeof hello_fields[0])
#define HELLO_FIELDS_END 167

/* Index into hello_fields of the field holding record offset rec_off. */
static size_t field_at(size_t rec_off)
{
    size_t f = 0;
    while (f < HELLO_FIELDS - 1 && rec_off >= hello_fields[f].to)
        f++;
    return f;
}

/* What one mutation did, for the test's tally. */
enum { OUT_REJECT_AS_WANTED, OUT_TIME_ACCEPTED, OUT_STRUCTURAL, OUT_FRAMING, OUT_COUNT };

/* The reason a mutated hello must be rejected with; sets *structural
 * instead for changes the parser must catch before the digest, whatever
 * the reason (a length, an extension type turned into server_name). */
static faketls_reason wanted_reason(const uint8_t *rec, size_t rec_off, uint8_t val,
                                    int *structural)
{
    size_t f = field_at(rec_off), at = hello_fields[f].from, type;
    *structural = 0;
    switch (hello_fields[f].cls) {
    case M_TIME:       return FAKETLS_R_TIME_SKEW;
    case M_HS_TYPE:    return FAKETLS_R_NOT_CLIENT_HELLO;
    case M_SNI_GONE:   return FAKETLS_R_NO_SNI;
    case M_SNI_NAME:   return FAKETLS_R_SNI_MISMATCH;
    case M_LENGTH:
        *structural = 1;
        return FAKETLS_R_NONE;
    case M_EXT_TYPE:
        type = (size_t)(at == rec_off ? val : rec[at]) << 8 |
               (at + 1 == rec_off ? val : rec[at + 1]);
        if (type == 0x0000) {   /* now a server_name extension: parsed */
            *structural = 1;
            return FAKETLS_R_NONE;
        }
        return FAKETLS_R_BAD_DIGEST;
    case M_DIGEST:
    default:
        return FAKETLS_R_BAD_DIGEST;
    }
}

/* Checks one mutated hello: stream[at] was orig and is val now; it is
 * record header byte hdr_byte (0..4), or, with hdr_byte -1, byte rec_off of
 * the single record rec. Returns an OUT_* tally index. */
static int check_mutation(const uint8_t *stream, size_t len, size_t at, int hdr_byte,
                          const uint8_t *rec, size_t rec_off, uint8_t orig, uint8_t val)
{
    faketls_hello h;
    faketls_reason r = FAKETLS_R_NONE;
    faketls_result res = check(stream, len, &h, &r);
    const char *rn = faketls_reason_name(r);
    int structural;

    /* No prefix of a mutated hello proves the secret either. */
    for (size_t cut = len > 40 ? len - 40 : 0; cut < len; cut += 13)
        CHECK_MSG(check(stream, cut, NULL, NULL) != FAKETLS_OK,
                  "byte %zu = %02x: prefix %zu accepted", at, val, cut);

    if (hdr_byte >= 0 && hdr_byte <= 2) {
        faketls_reason want = hdr_byte == 0 ? FAKETLS_R_NOT_HANDSHAKE : FAKETLS_R_BAD_VERSION;
        CHECK_MSG(res == FAKETLS_REJECT && r == want, "header byte %zu = %02x: %s, want %s",
                  at, val, rn, faketls_reason_name(want));
        return OUT_FRAMING;
    }
    if (hdr_byte > 2) {   /* a record length: the reassembly breaks */
        CHECK_MSG(res != FAKETLS_OK && r != FAKETLS_R_BAD_DIGEST && r != FAKETLS_R_TIME_SKEW,
                  "record length byte %zu = %02x: result %d (%s), want a framing reject",
                  at, val, (int)res, rn);
        return OUT_FRAMING;
    }

    faketls_reason want = wanted_reason(rec, rec_off, val, &structural);
    if (structural) {
        /* NEED_MORE is fair: a longer length waits for bytes never sent. */
        CHECK_MSG(res != FAKETLS_OK && r != FAKETLS_R_BAD_DIGEST && r != FAKETLS_R_TIME_SKEW,
                  "byte %zu (record offset %zu) = %02x: result %d (%s), want a reject "
                  "before the digest", at, rec_off, val, (int)res, rn);
        return OUT_STRUCTURAL;
    }
    if (want == FAKETLS_R_TIME_SKEW) {
        /* random[28..31] XOR the MAC's last 4 bytes is the little-endian
         * timestamp: the new byte moves it by a known amount. */
        unsigned shift = (unsigned)(rec_off - hello_fields[field_at(rec_off)].from) * 8;
        uint32_t ts = (uint32_t)NOW ^ ((uint32_t)(orig ^ val) << shift);
        int64_t skew_ms = ((int64_t)ts - NOW) * 1000;
        if (skew_ms >= -(int64_t)TOL && skew_ms <= (int64_t)TOL) {
            CHECK_MSG(res == FAKETLS_OK && h.timestamp == ts && h.consumed == len,
                      "timestamp byte %zu = %02x (skew %lld ms): %s, want OK", at, val,
                      (long long)skew_ms, rn);
            return OUT_TIME_ACCEPTED;
        }
    }
    CHECK_MSG(res == FAKETLS_REJECT && r == want,
              "byte %zu (record offset %zu) = %02x: %s, want %s", at, rec_off, val, rn,
              faketls_reason_name(want));
    return OUT_REJECT_AS_WANTED;
}

TEST(faketls_every_mutation_rejected_with_its_reason)
{
    /* Every byte of a valid three-record hello set to a few values. Each
     * result is checked: the field's own reason (bad_digest for bytes only
     * the HMAC covers), OK only for a timestamp still within TOL. Under
     * ASan this also shows no mutation reads out of bounds. */
    static const uint8_t vals[] = { 0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff };
    uint8_t rec[4096], stream[4096], copy[4096];
    int tally[OUT_COUNT] = { 0 };
    hello_opts o = default_opts();
    size_t rec_len = build_record(rec, &o);
    size_t len = fragment(rec, rec_len, 3, stream);

    /* The field table matches the builder's layout. */
    CHECK_EQ_INT(rec_len, HELLO_FIELDS_END);
    CHECK_EQ_INT(hello_fields[HELLO_FIELDS - 1].to, rec_len);
    for (size_t f = 1; f < HELLO_FIELDS; f++)
        CHECK_EQ_INT(hello_fields[f].from, hello_fields[f - 1].to);
    CHECK_EQ_INT(rec[5], 1);
    CHECK_EQ_INT(rec[43], 32);
    CHECK_MEM(rec + 76, "\x00\x08\x5a\x5a\x13\x01\x13\x02\x13\x03\x01\x00", 12);
    CHECK_MEM(rec + 90, "\x1a\x1a\x00\x00", 4);
    CHECK_MEM(rec + 94, "\x00\x00\x00\x10\x00\x0e\x00\x00\x0b" "example.com", 20);
    CHECK_MEM(rec + 114, "\x00\x10\x00\x05\x00\x03\x02h2\x00\x15\x00\x28", 13);
    CHECK_EQ_INT(check(stream, len, NULL, NULL), FAKETLS_OK);

    size_t pos = 0, msg_off = 0;   /* walk the three records */
    while (pos + 5 <= len) {
        size_t rlen = (size_t)(stream[pos + 3] << 8 | stream[pos + 4]);
        for (size_t i = pos; i < pos + 5 + rlen && i < len; i++) {
            int hdr_byte = i < pos + 5 ? (int)(i - pos) : -1;
            size_t rec_off = hdr_byte < 0 ? 5 + msg_off + (i - pos - 5) : 0;
            /* The fixed values, then flips of bit 0 and bit 2: in the
             * timestamp's low byte those move it by 1 s (within TOL) and
             * by 4 s (beyond). */
            for (size_t k = 0; k < sizeof vals + 2; k++) {
                uint8_t v = k < sizeof vals ? vals[k]
                                            : (uint8_t)(stream[i] ^ (k == sizeof vals ? 1 : 4));
                if (v == stream[i] || (k >= sizeof vals && memchr(vals, v, sizeof vals)))
                    continue;
                memcpy(copy, stream, len);
                copy[i] = v;
                tally[check_mutation(copy, len, i, hdr_byte, rec, rec_off, stream[i], v)]++;
            }
        }
        msg_off += rlen;
        pos += 5 + rlen;
    }
    CHECK_EQ_INT(pos, len);
    CHECK_EQ_INT(msg_off, rec_len - 5);
    /* Every kind of outcome happened, so no branch above is dead. */
    for (int t = 0; t < OUT_COUNT; t++)
        CHECK_MSG(tally[t] > 0, "no mutation had outcome %d", t);
    CHECK_EQ_INT(check(stream, len, NULL, NULL), FAKETLS_OK);
}

TEST(faketls_random_garbage)
{
    uint8_t buf[2048];
    srand(7);
    for (int iter = 0; iter < 2000; iter++) {
        size_t len = (size_t)(rand() % (int)sizeof buf);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rand();
        if (len > 0 && iter % 2 == 0) {
            buf[0] = 0x16; if (len > 1) buf[1] = 3;
            if (len > 2) buf[2] = 1;
            if (len > 3) buf[3] = 0;
            if (len > 5) buf[5] = 1;
        }
        CHECK(check(buf, len, NULL, NULL) != FAKETLS_OK);
    }
}

TEST(faketls_reason_names)
{
    CHECK_STR(faketls_reason_name(FAKETLS_R_NONE), "none");
    CHECK_STR(faketls_reason_name(FAKETLS_R_NOT_HANDSHAKE), "not_handshake");
    CHECK_STR(faketls_reason_name(FAKETLS_R_BAD_DIGEST), "bad_digest");
    CHECK_STR(faketls_reason_name(FAKETLS_R_TIME_SKEW), "time_skew");
    CHECK_STR(faketls_reason_name(FAKETLS_R_COUNT), "unknown");
    for (int i = 0; i < FAKETLS_R_COUNT; i++) {
        const char *n = faketls_reason_name((faketls_reason)i);
        CHECK(strcmp(n, "unknown") != 0);
        for (const char *c = n; *c; c++)
            CHECK((*c >= 'a' && *c <= 'z') || *c == '_');
    }
}

/* ---- ServerHello ---- */

static faketls_hello kat_client(void)
{
    faketls_hello h;
    memset(&h, 0, sizeof h);
    unit_unhex(kat_random_hex, h.client_random, 32);
    for (int i = 0; i < 32; i++)
        h.session_id[i] = (uint8_t)(0x20 + i);
    h.session_id_len = 32;
    h.cipher_suite = 0x1301;
    return h;
}

TEST(faketls_server_hello_kat)
{
    uint8_t out[512], pub[32], app[100], want[32];
    tg_secret s = test_secret();
    faketls_hello h = kat_client();
    for (int i = 0; i < 32; i++)
        pub[i] = (uint8_t)(0x80 + i);
    for (int i = 0; i < 100; i++)
        app[i] = (uint8_t)(i * 7);
    unit_unhex(kat_server_random_hex, want, sizeof want);

    CHECK_EQ_INT(faketls_server_hello_len(32, 100), 238);
    CHECK_EQ_INT(faketls_server_hello_len(0, 1), 107);
    size_t n = faketls_build_server_hello(out, sizeof out, &h, &s, pub, app, 100);
    CHECK_EQ_INT(n, 238);
    CHECK_MEM(out, "\x16\x03\x03\x00\x7a\x02\x00\x00\x76\x03\x03", 11);
    CHECK_MEM(out + 11, want, 32);
    CHECK_EQ_INT(out[43], 32);
    CHECK_MEM(out + 44, h.session_id, 32);
    CHECK_MEM(out + 76, "\x13\x01\x00\x00\x2e\x00\x2b\x00\x02\x03\x04"
                        "\x00\x33\x00\x24\x00\x1d\x00\x20", 19);
    CHECK_MEM(out + 95, pub, 32);
    CHECK_MEM(out + 127, "\x14\x03\x03\x00\x01\x01", 6);
    CHECK_MEM(out + 133, "\x17\x03\x03\x00\x64", 5);
    CHECK_MEM(out + 138, app, 100);
}

TEST(faketls_server_hello_digest_and_args)
{
    static uint8_t out[20000], app[16384];
    uint8_t pub[32] = { 9 }, mac[32], rnd[32];
    tg_secret s = test_secret();
    faketls_hello h = kat_client();
    static const uint8_t sid_lens[] = { 0, 1, 17, 32 };
    for (size_t k = 0; k < sizeof sid_lens; k++) {
        h.session_id_len = sid_lens[k];
        size_t alen = 2500 + k * 700;
        for (size_t i = 0; i < alen; i++)
            app[i] = (uint8_t)(i ^ k);
        size_t n = faketls_build_server_hello(out, sizeof out, &h, &s, pub, app, alen);
        size_t rec1 = 95 + sid_lens[k];
        CHECK_EQ_INT(n, faketls_server_hello_len(sid_lens[k], alen));
        CHECK_EQ_INT(n, rec1 + 6 + 5 + alen);
        CHECK_EQ_INT(out[3] << 8 | out[4], rec1 - 5);
        CHECK_EQ_INT(out[43], sid_lens[k]);
        CHECK_MEM(out + rec1, "\x14\x03\x03\x00\x01\x01\x17\x03\x03", 9);
        CHECK_EQ_INT(out[rec1 + 9] << 8 | out[rec1 + 10], alen);
        /* Recompute the server random as the client does. */
        memcpy(rnd, out + 11, 32);
        memset(out + 11, 0, 32);
        crypto_hmac hm;
        crypto_hmac_init(&hm, s.key, 16);
        crypto_hmac_update(&hm, h.client_random, 32);
        crypto_hmac_update(&hm, out, n);
        crypto_hmac_final(&hm, mac);
        CHECK_MEM(rnd, mac, 32);
    }
    /* appdata already in place inside out. */
    h.session_id_len = 32;
    size_t alen = 100, total = faketls_server_hello_len(32, alen);
    for (size_t i = 0; i < alen; i++)
        out[total - alen + i] = (uint8_t)(i * 7);
    CHECK_EQ_INT(faketls_build_server_hello(out, sizeof out, &h, &s,
                                            (const uint8_t *)"\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98\x99\x9a\x9b\x9c\x9d\x9e\x9f",
                                            out + total - alen, alen), 238);
    unit_unhex(kat_server_random_hex, mac, sizeof mac);
    CHECK_MEM(out + 11, mac, 32);

    CHECK_EQ_INT(faketls_build_server_hello(out, 237, &h, &s, pub, app, 100), 0);
    CHECK_EQ_INT(faketls_build_server_hello(out, sizeof out, &h, &s, pub, app, 0), 0);
    CHECK_EQ_INT(faketls_build_server_hello(out, sizeof out, &h, &s, pub, app, 16385), 0);
    CHECK(faketls_build_server_hello(out, sizeof out, &h, &s, pub, app, 16384) > 0);
    h.session_id_len = 33;
    CHECK_EQ_INT(faketls_build_server_hello(out, sizeof out, &h, &s, pub, app, 100), 0);
}

/* ---- record layer ---- */

static size_t rx_stream(uint8_t *s, uint8_t *payload, size_t *plen)
{
    size_t w = 0, p = 0;
    memcpy(s + w, "\x14\x03\x03\x00\x01\x01", 6);   /* client CCS */
    w += 6;
    static const size_t sizes[] = { 70, 1, 0, 300, 2878 };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        s[w++] = 0x17; s[w++] = 3; s[w++] = 3;
        put16(s + w, sizes[k]);
        w += 2;
        for (size_t i = 0; i < sizes[k]; i++) {
            s[w] = payload[p++] = (uint8_t)(k * 31 + i);
            w++;
        }
        if (k == 1) {   /* a CCS in between is skipped too (Go ignores it) */
            memcpy(s + w, "\x14\x03\x03\x00\x01\x01", 6);
            w += 6;
        }
    }
    *plen = p;
    return w;
}

TEST(faketls_rx_every_split)
{
    static uint8_t stream[4096], want[4096], buf[4096], got[4096];
    size_t want_len, len = rx_stream(stream, want, &want_len);
    for (size_t cut = 0; cut <= len; cut++) {
        faketls_rx st;
        size_t n1 = 0, n2 = 0;
        faketls_rx_init(&st);
        memcpy(buf, stream, len);
        CHECK_EQ_INT(faketls_rx_unwrap(&st, buf, cut, &n1, NULL), 0);
        memcpy(got, buf, n1);
        CHECK_EQ_INT(faketls_rx_unwrap(&st, buf + cut, len - cut, &n2, NULL), 0);
        memcpy(got + n1, buf + cut, n2);
        if (!CHECK_MSG(n1 + n2 == want_len, "split at %zu: %zu + %zu bytes, want %zu",
                       cut, n1, n2, want_len) ||
            !CHECK_MEM(got, want, want_len))
            break;
        CHECK_EQ_INT(st.hdr_have, 0);
    }
    /* One byte at a time. */
    faketls_rx st;
    size_t total = 0;
    faketls_rx_init(&st);
    memcpy(buf, stream, len);
    for (size_t i = 0; i < len; i++) {
        size_t n = 0;
        uint8_t b = buf[i];
        CHECK_EQ_INT(faketls_rx_unwrap(&st, &b, 1, &n, NULL), 0);
        if (n)
            got[total++] = b;
    }
    CHECK_EQ_INT(total, want_len);
    CHECK_MEM(got, want, want_len);
}

TEST(faketls_rx_bad_version)
{
    uint8_t buf[32];
    faketls_rx st;
    faketls_reason r = FAKETLS_R_NONE;
    size_t n = 99;
    faketls_rx_init(&st);
    memcpy(buf, "\x17\x03\x03\x00\x02hi\x17\x03\x01\x00\x01x", 13);
    CHECK_EQ_INT(faketls_rx_unwrap(&st, buf, 13, &n, &r), -1);
    CHECK_EQ_INT(r, FAKETLS_R_BAD_VERSION);
    CHECK_EQ_INT(n, 2);
    CHECK_MEM(buf, "hi", 2);

    faketls_rx_init(&st);
    memcpy(buf, "\x16\x02\x03\x00\x00", 5);
    CHECK_EQ_INT(faketls_rx_unwrap(&st, buf, 5, &n, NULL), -1);
    /* Split inside the header still catches it. */
    faketls_rx_init(&st);
    memcpy(buf, "\x17\x03", 2);
    CHECK_EQ_INT(faketls_rx_unwrap(&st, buf, 2, &n, NULL), 0);
    CHECK_EQ_INT(n, 0);
    memcpy(buf, "\x01\x00\x01", 3);
    CHECK_EQ_INT(faketls_rx_unwrap(&st, buf, 3, &n, &r), -1);
}

TEST(faketls_rx_finished_after_the_first_whole_appdata_record)
{
    /* The CCS, then a first application-data record split in three: only
     * its last byte completes the Finished, in TLS terms. */
    static const uint8_t stream[] = "\x14\x03\x03\x00\x01\x01\x17\x03\x03\x00\x03" "abc";
    const size_t len = sizeof stream - 1;
    for (size_t cut = 0; cut <= len; cut++) {
        uint8_t buf[32];
        faketls_rx st;
        size_t n = 0;
        faketls_rx_init(&st);
        memcpy(buf, stream, len);
        CHECK_EQ_INT(faketls_rx_unwrap(&st, buf, cut, &n, NULL), 0);
        if (!CHECK_MSG(st.finished == (cut == len), "cut %zu: finished %d", cut, st.finished))
            break;
        CHECK_EQ_INT(faketls_rx_unwrap(&st, buf + cut, len - cut, &n, NULL), 0);
        CHECK_EQ_INT(st.finished, 1);
    }
    /* CCS records are not a Finished; an empty application-data record
     * is a whole one. */
    uint8_t buf[16];
    faketls_rx st;
    size_t n = 0;
    faketls_rx_init(&st);
    memcpy(buf, "\x14\x03\x03\x00\x01\x01\x14\x03\x03\x00\x01\x01", 12);
    CHECK_EQ_INT(faketls_rx_unwrap(&st, buf, 12, &n, NULL), 0);
    CHECK_EQ_INT(st.finished, 0);
    memcpy(buf, "\x17\x03\x03\x00\x00", 5);
    CHECK_EQ_INT(faketls_rx_unwrap(&st, buf, 5, &n, NULL), 0);
    CHECK_EQ_INT(st.finished, 1);
}

/* A record Go refuses, fed whole and one byte at a time: -1 with why
 * exactly when the byte at fail_at (0-based) has been fed, the payload of
 * the records before it recovered. */
static void check_refused(const char *what, const uint8_t *rec, size_t len, size_t fail_at,
                          faketls_reason why)
{
    static uint8_t buf[20000];
    faketls_rx st;
    faketls_reason r = FAKETLS_R_NONE;
    size_t n = 99;
    faketls_rx_init(&st);
    memcpy(buf, "\x17\x03\x03\x00\x02ok", 7);
    memcpy(buf + 7, rec, len);
    CHECK_MSG(faketls_rx_unwrap(&st, buf, 7 + len, &n, &r) == -1, "%s: not refused", what);
    CHECK_MSG(r == why, "%s: reason %s", what, faketls_reason_name(r));
    CHECK_MSG(n == 2 && memcmp(buf, "ok", 2) == 0, "%s: %zu payload bytes before it", what, n);
    faketls_rx_init(&st);
    for (size_t i = 0; i < len; i++) {
        uint8_t b = rec[i];
        int rc = faketls_rx_unwrap(&st, &b, 1, &n, NULL);
        if (!CHECK_MSG(rc == (i == fail_at ? -1 : 0), "%s: byte %zu: %d", what, i, rc) || rc)
            break;
    }
}

TEST(faketls_rx_refuses_what_go_refuses)
{
    static uint8_t rec[20000];
    /* Too long: at the header, before its body. */
    memcpy(rec, "\x17\x03\x03\x41\x01", 5);   /* 16641 */
    check_refused("17 len 16641", rec, 5, 4, FAKETLS_R_BAD_RECORD_LEN);
    memcpy(rec, "\x14\x03\x03\xff\xff", 5);
    check_refused("14 len 65535", rec, 5, 4, FAKETLS_R_BAD_RECORD_LEN);
    /* Another type: once the whole record is in. */
    memcpy(rec, "\x15\x03\x03\x00\x02\x01\x00", 7);
    check_refused("alert", rec, 7, 6, FAKETLS_R_BAD_TYPE);
    memcpy(rec, "\x16\x03\x03\x00\x00", 5);
    check_refused("empty handshake", rec, 5, 4, FAKETLS_R_BAD_TYPE);
    memcpy(rec, "\x18\x03\x03\x00\x03" "abc", 8);
    check_refused("type 18", rec, 8, 7, FAKETLS_R_BAD_TYPE);
    /* A ChangeCipherSpec other than 01. */
    memcpy(rec, "\x14\x03\x03\x00\x01\x02", 6);
    check_refused("CCS 02", rec, 6, 5, FAKETLS_R_BAD_TYPE);
    memcpy(rec, "\x14\x03\x03\x00\x02\x01\x01", 7);
    check_refused("CCS of 2 bytes", rec, 7, 6, FAKETLS_R_BAD_TYPE);
    memcpy(rec, "\x14\x03\x03\x00\x00", 5);
    check_refused("empty CCS", rec, 5, 4, FAKETLS_R_BAD_TYPE);
}

TEST(faketls_rx_largest_record)
{
    /* 16640 bytes (16384 + 256, Go's TLS 1.3 limit) pass. */
    static uint8_t buf[17000];
    faketls_rx st;
    size_t n = 0;
    faketls_rx_init(&st);
    memcpy(buf, "\x17\x03\x03\x41\x00", 5);
    for (size_t i = 0; i < 16640; i++)
        buf[5 + i] = (uint8_t)i;
    CHECK_EQ_INT(faketls_rx_unwrap(&st, buf, 16645, &n, NULL), 0);
    CHECK_EQ_INT(n, 16640);
    CHECK_EQ_INT(buf[16639], (uint8_t)16639);
    CHECK_EQ_INT(st.finished, 1);
}

TEST(faketls_tx_header)
{
    uint8_t h[5];
    faketls_tx_header(h, FAKETLS_TX_MAX_PAYLOAD);
    CHECK_MEM(h, "\x17\x03\x03\x3f\xfb", 5);
    faketls_tx_header(h, 1);
    CHECK_MEM(h, "\x17\x03\x03\x00\x01", 5);
    CHECK_EQ_INT(FAKETLS_TX_MAX_PAYLOAD + 5, 16384);
    CHECK_EQ_INT(FAKETLS_HELLO_BUF_MAX, 16384 + 55);
}

/* faketls_hello_next_check: checking only at the boundaries it names gives
 * the same verdict as checking after every byte, and each boundary is past
 * the current length. */
TEST(faketls_next_check_boundaries)
{
    static const size_t counts[] = { 1, 3, 11 };
    uint8_t buf[4096];
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        hello_opts o = default_opts();
        o.records = counts[k];
        size_t n = build_hello(buf, &o);
        size_t next = 0, checks = 0;
        faketls_result last = FAKETLS_NEED_MORE;
        for (size_t len = 1; len <= n; len++) {
            if (len < next)
                continue;
            checks++;
            last = check(buf, len, NULL, NULL);
            if (last != FAKETLS_NEED_MORE)
                break;
            next = faketls_hello_next_check(buf, len);
            CHECK(next > len);
        }
        CHECK_EQ_INT(last, FAKETLS_OK);
        CHECK(checks <= 2 * counts[k] + 1);   /* a header and a body per record */
    }
}
