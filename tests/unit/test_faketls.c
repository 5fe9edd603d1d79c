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

TEST(faketls_mutations_never_crash)
{
    /* Every byte of a valid hello set to a few values: must return, and
     * only OK when the mutation cannot matter. Run under ASan to be sure. */
    static const uint8_t vals[] = { 0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff };
    uint8_t rec[4096], copy[4096];
    hello_opts o = default_opts();
    o.records = 3;
    size_t len = build_hello(rec, &o);
    for (size_t i = 0; i < len; i++) {
        for (size_t k = 0; k < sizeof vals; k++) {
            memcpy(copy, rec, len);
            copy[i] = vals[k];
            for (size_t cut = len > 40 ? len - 40 : 0; cut <= len; cut += 13)
                (void)check(copy, cut, NULL, NULL);
            (void)check(copy, len, NULL, NULL);
        }
    }
    CHECK_EQ_INT(check(rec, len, NULL, NULL), FAKETLS_OK);
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
        if (k == 1) {   /* an alert-type record in between is skipped too */
            memcpy(s + w, "\x15\x03\x03\x00\x02\x01\x00", 7);
            w += 7;
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

TEST(faketls_rx_large_record)
{
    /* mtg accepts any uint16 length; so do we. */
    static uint8_t buf[70000];
    faketls_rx st;
    size_t n = 0;
    faketls_rx_init(&st);
    memcpy(buf, "\x17\x03\x03\xff\xff", 5);
    for (size_t i = 0; i < 65535; i++)
        buf[5 + i] = (uint8_t)i;
    CHECK_EQ_INT(faketls_rx_unwrap(&st, buf, 65540, &n, NULL), 0);
    CHECK_EQ_INT(n, 65535);
    CHECK_EQ_INT(buf[65534], (uint8_t)65534);
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
