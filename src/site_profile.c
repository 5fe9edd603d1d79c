/* site_profile: the site's TLS answer, parsed and learned (header says how). */
#include "site_profile.h"
#include "promtext.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define REC_HANDSHAKE 0x16
#define REC_CCS 0x14
#define REC_APPDATA 0x17
#define HS_SERVER_HELLO 0x02
/* TLS 1.3 ciphertext records are at most 2^14 + 256 bytes (RFC 8446 5.2). */
#define REC_CIPHERTEXT_MAX (16384 + 256)

/* An encrypted CertificateVerify is 4 (header) + 2 (scheme) + 2 (length)
 * + signature + 1 (content type) + 16 (AEAD tag) bytes. An ECDSA
 * signature is a DER SEQUENCE of two INTEGERs, each one byte longer when
 * its top bit is set (half the time): P-256 70..72 bytes, P-384 102..104,
 * P-521 137..139 (rarely shorter). */
#define CV_OVERHEAD 25
static const struct { uint16_t lo, hi; } ecdsa_sig[] = { { 68, 72 }, { 100, 104 }, { 135, 139 } };

/* What the default answer assumes (an estimate, used until the site has
 * answered): Caddy with a Let's Encrypt ECDSA P-256 leaf (about 1,040
 * bytes) under an E-series intermediate (about 1,050): EncryptedExtensions
 * with h2 (32 + 5), Certificate (2,125 + 5), CertificateVerify (95..97 +
 * 5), Finished (53 + 5) and the NewSessionTicket Go sends at once (139 + 5;
 * measured from the image's Caddy). */
#define DEFAULT_FLIGHT_MIN 2469

static const uint8_t hrr_random[32] = {
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
};

static const char *const shape_names[SITE_SHAPES] = { "x25519", "x25519mlkem768" };

const char *site_shape_name(site_shape s)
{
    return (unsigned)s < SITE_SHAPES ? shape_names[s] : "unknown";
}

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

#define REJECT(msg) do { if (why) *why = (msg); return SITE_FLIGHT_REJECT; } while (0)

/* The ServerHello body b[0..n) (after the handshake header). */
static site_flight_result parse_server_hello(const uint8_t *b, size_t n, faketls_sh_shape *sh,
                                             const char **why)
{
    size_t off = 0;
    int have_version = 0, have_share = 0;
    memset(sh, 0, sizeof *sh);
    if (n < 2 + 32 + 1)
        REJECT("ServerHello too short");
    if (b[0] != 0x03 || b[1] != 0x03)
        REJECT("ServerHello legacy version is not 03 03");
    if (!memcmp(b + 2, hrr_random, sizeof hrr_random))
        REJECT("HelloRetryRequest (the site wants another key share)");
    off = 2 + 32;
    size_t sid = b[off++];
    if (sid > 32 || n - off < sid + 2 + 1 + 2)
        REJECT("ServerHello malformed");
    off += sid;
    sh->cipher = be16(b + off);
    off += 2;
    if (b[off++] != 0)
        REJECT("ServerHello compression not null");
    size_t ext_len = be16(b + off);
    off += 2;
    if (ext_len != n - off)
        REJECT("ServerHello extension block length");
    while (off < n) {
        if (n - off < 4)
            REJECT("ServerHello extension header");
        uint16_t type = be16(b + off);
        size_t len = be16(b + off + 2);
        off += 4;
        if (len > n - off)
            REJECT("ServerHello extension length");
        if (sh->ext_count == FAKETLS_SH_MAX_EXTS)
            REJECT("too many ServerHello extensions");
        if (type == FAKETLS_EXT_SUPPORTED_VERSIONS) {
            if (len != 2 || b[off] != 0x03 || b[off + 1] != 0x04 || have_version)
                REJECT("not TLS 1.3");
            have_version = 1;
        } else if (type == FAKETLS_EXT_KEY_SHARE) {
            if (len < 4 || have_share || be16(b + off + 2) != len - 4)
                REJECT("key_share malformed");
            sh->group = be16(b + off);
            sh->share_len = (uint16_t)(len - 4);
            if (!(sh->group == FAKETLS_GROUP_X25519 && sh->share_len == 32) &&
                !(sh->group == FAKETLS_GROUP_X25519MLKEM768 &&
                  sh->share_len == FAKETLS_MLKEM_SERVER_SHARE))
                REJECT("key-share group we cannot imitate");
            have_share = 1;
        } else {
            REJECT("ServerHello extension we cannot imitate");
        }
        sh->exts[sh->ext_count++] = type;
        off += len;
    }
    if (!have_version)
        REJECT("not TLS 1.3");
    if (!have_share)
        REJECT("ServerHello without key_share");
    if (sh->cipher < 0x1301 || sh->cipher > 0x1305)
        REJECT("not a TLS 1.3 cipher suite");
    return SITE_FLIGHT_OK;
}

site_flight_result site_flight_parse(const uint8_t *buf, size_t len, site_flight *out,
                                     const char **why)
{
    memset(out, 0, sizeof *out);
    if (len >= 1 && buf[0] != REC_HANDSHAKE)
        REJECT(buf[0] == 0x15 ? "the site answered with an alert" : "not a TLS handshake record");
    if (len < 5)
        return SITE_FLIGHT_NEED_MORE;
    if (buf[1] != 0x03 || buf[2] != 0x03)
        REJECT("ServerHello record version is not 03 03");
    size_t rec = be16(buf + 3);
    if (rec < 4 || rec > 16384)
        REJECT("ServerHello record length");
    if (len < 9)
        return SITE_FLIGHT_NEED_MORE;
    if (buf[5] != HS_SERVER_HELLO)
        REJECT("first handshake message is not a ServerHello");
    size_t hs = (size_t)buf[6] << 16 | (size_t)buf[7] << 8 | buf[8];
    if (hs + 4 != rec)
        REJECT("ServerHello does not fill its record");
    if (len < 5 + rec)
        return SITE_FLIGHT_NEED_MORE;
    site_flight_result r = parse_server_hello(buf + 9, hs, &out->sh, why);
    if (r != SITE_FLIGHT_OK)
        return r;
    size_t off = 5 + rec;
    static const uint8_t ccs[6] = { REC_CCS, 0x03, 0x03, 0x00, 0x01, 0x01 };
    size_t have = len - off < sizeof ccs ? len - off : sizeof ccs;
    if (memcmp(buf + off, ccs, have) != 0)
        REJECT("no ChangeCipherSpec after the ServerHello");
    if (have < sizeof ccs)
        return SITE_FLIGHT_NEED_MORE;
    off += sizeof ccs;
    while (len - off >= 5) {
        if (buf[off] != REC_APPDATA || buf[off + 1] != 0x03 || buf[off + 2] != 0x03)
            REJECT("a record after the CCS is not application data");
        size_t n = be16(buf + off + 3);
        if (n == 0 || n > REC_CIPHERTEXT_MAX)
            REJECT("encrypted record length");
        if (len - off - 5 < n)
            break;
        if (out->records == SITE_FLIGHT_MAX_RECORDS)
            REJECT("more encrypted records than a first flight has");
        out->rec_len[out->records++] = (uint16_t)n;
        out->flight_bytes += (uint32_t)(5 + n);
        off += 5 + n;
    }
    if (why)
        *why = NULL;
    return out->records ? SITE_FLIGHT_OK : SITE_FLIGHT_NEED_MORE;
}

/* The flight's size with its ECDSA signature at the shortest common
 * length; *coins = 2 when the signature was recognised. */
static uint32_t normalised_size(const site_flight *f, uint8_t *coins)
{
    *coins = 0;
    if (f->records < 4)
        return f->flight_bytes;
    /* Go sends EncryptedExtensions, Certificate, CertificateVerify,
     * Finished (and, at once, a NewSessionTicket) as one record each: the
     * CertificateVerify is the third. */
    size_t cv = f->rec_len[2];
    if (cv < CV_OVERHEAD)
        return f->flight_bytes;
    size_t sig = cv - CV_OVERHEAD;
    for (size_t i = 0; i < sizeof ecdsa_sig / sizeof ecdsa_sig[0]; i++) {
        if (sig >= ecdsa_sig[i].lo && sig <= ecdsa_sig[i].hi) {
            uint32_t common_min = ecdsa_sig[i].hi - 2;
            *coins = 2;
            return (uint32_t)(f->flight_bytes + common_min - sig);
        }
    }
    return f->flight_bytes;
}

static int same_sh(const faketls_sh_shape *a, const faketls_sh_shape *b)
{
    if (a->cipher != b->cipher || a->group != b->group || a->share_len != b->share_len ||
        a->ext_count != b->ext_count)
        return 0;
    for (size_t i = 0; i < a->ext_count; i++)
        if (a->exts[i] != b->exts[i])
            return 0;
    return 1;
}

int site_answer_learn(const site_flight *f, size_t n, site_answer *out, const char **why)
{
    uint32_t lo = UINT32_MAX, hi = 0;
    memset(out, 0, sizeof *out);
    if (n == 0) {
        *why = "no flight";
        return -1;
    }
    out->sh = f[0].sh;
    out->coins = 2;
    for (size_t i = 0; i < n; i++) {
        uint8_t coins;
        uint32_t size = normalised_size(&f[i], &coins);
        if (!same_sh(&f[i].sh, &out->sh)) {
            *why = "the site's ServerHellos differ between probes";
            return -1;
        }
        if (coins < out->coins)
            out->coins = coins;
        if (size < lo)
            lo = size;
        if (size > hi)
            hi = size;
    }
    if (lo < 2 || hi - lo > 4096) {
        *why = "flight sizes out of range";
        return -1;
    }
    out->flight_min = lo;
    out->spread = (uint16_t)(hi - lo);
    return 0;
}

int site_answer_fits(const site_answer *a, const site_flight *f)
{
    uint8_t coins;
    uint32_t size = normalised_size(f, &coins);
    return same_sh(&a->sh, &f->sh) && size >= a->flight_min && size <= a->flight_min + a->spread;
}

size_t site_answer_appdata_len(const site_answer *a, uint32_t rnd, size_t max)
{
    size_t total = a->flight_min;
    for (unsigned i = 0; i < a->coins; i++)
        total += (rnd >> i) & 1;
    if (a->spread)
        total += (rnd >> 8) % ((uint32_t)a->spread + 1);
    /* One record carries the whole flight: its payload is the flight's
     * wire size minus one record header. */
    size_t len = total > FAKETLS_HEADER_LEN ? total - FAKETLS_HEADER_LEN : 1;
    if (len > max)
        len = max;
    return len ? len : 1;
}

void site_answer_default(site_answer *out, uint16_t cipher)
{
    memset(out, 0, sizeof *out);
    faketls_default_shape(&out->sh, cipher);
    out->flight_min = DEFAULT_FLIGHT_MIN;
    out->coins = 2;
}

site_shape site_shape_of(const faketls_hello *h)
{
    return h->mlkem_share ? SITE_SHAPE_MLKEM : SITE_SHAPE_X25519;
}

/* ---- the store ---- */

int site_store_init(site_store *s)
{
    memset(s, 0, sizeof *s);
    return pthread_mutex_init(&s->lock, NULL) == 0 ? 0 : -1;
}

void site_store_destroy(site_store *s) { pthread_mutex_destroy(&s->lock); }

void site_store_update(site_store *s, const site_answer answer[SITE_SHAPES],
                       const int learned[SITE_SHAPES], int64_t now_unix)
{
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < SITE_SHAPES; i++) {
        if (!learned[i])
            continue;
        s->answer[i] = answer[i];
        s->learned[i] = 1;
    }
    s->learned_unix = now_unix;
    s->refreshes++;
    pthread_mutex_unlock(&s->lock);
}

void site_store_failed(site_store *s)
{
    pthread_mutex_lock(&s->lock);
    s->failures++;
    pthread_mutex_unlock(&s->lock);
}

static int offers(const faketls_hello *h, uint16_t cipher)
{
    return cipher >= 0x1301 && cipher <= 0x1305 && (h->tls13_suites >> (cipher - 0x1301)) & 1;
}

void site_store_pick(site_store *s, const faketls_hello *h, site_answer *out, int *learned)
{
    site_shape k = site_shape_of(h);
    int have = 0;
    if (s) {
        pthread_mutex_lock(&s->lock);
        if (s->learned[k]) {
            *out = s->answer[k];
            have = 1;
        }
        pthread_mutex_unlock(&s->lock);
    }
    if (!have)
        site_answer_default(out, h->cipher_suite);
    else if (!offers(h, out->sh.cipher))
        out->sh.cipher = h->cipher_suite;
    if (learned)
        *learned = have;
}


size_t site_store_render(site_store *s, const char *prefix, int64_t now_unix, char *out,
                         size_t cap)
{
    prom_sink k = { out, cap, 0 };
    site_answer a[SITE_SHAPES];
    int learned[SITE_SHAPES] = { 0, 0 };
    int64_t at = 0;
    if (cap == 0)
        return 0;
    out[0] = '\0';
    if (s) {
        pthread_mutex_lock(&s->lock);
        memcpy(a, s->answer, sizeof a);
        memcpy(learned, s->learned, sizeof learned);
        at = s->learned_unix;
        pthread_mutex_unlock(&s->lock);
    }
    prom_emit(&k, "# HELP %s_site_profile_flight_bytes Smallest encrypted-flight size of the FakeTLS "
             "answer, by client hello kind, with the ServerHello it copies (tgfront).\n"
             "# TYPE %s_site_profile_flight_bytes gauge\n", prefix, prefix);
    for (int i = 0; i < SITE_SHAPES; i++) {
        if (!learned[i])
            site_answer_default(&a[i], 0x1301);
        prom_emit(&k, "%s_site_profile_flight_bytes{hello=\"%s\",source=\"%s\",cipher=\"0x%04x\","
                 "group=\"0x%04x\",share_bytes=\"%u\",spread=\"%u\"} %u\n",
             prefix, site_shape_name((site_shape)i), learned[i] ? "site" : "default",
             a[i].sh.cipher, a[i].sh.group, a[i].sh.share_len,
             (unsigned)(a[i].coins + a[i].spread), (unsigned)a[i].flight_min);
    }
    prom_emit(&k, "# HELP %s_site_profile_age_seconds Seconds since the site's TLS answer was last "
             "learned; -1 before the first time (tgfront).\n"
             "# TYPE %s_site_profile_age_seconds gauge\n", prefix, prefix);
    prom_emit(&k, "%s_site_profile_age_seconds %lld\n", prefix,
         at ? (long long)(now_unix - at) : -1LL);
    return k.len;
}

static const char *cipher_name(uint16_t c)
{
    switch (c) {
    case 0x1301: return "TLS_AES_128_GCM_SHA256";
    case 0x1302: return "TLS_AES_256_GCM_SHA384";
    case 0x1303: return "TLS_CHACHA20_POLY1305_SHA256";
    default: return "a TLS 1.3 suite";
    }
}

void site_answer_describe(const site_answer *a, char *out, size_t cap)
{
    char order[64] = "";
    size_t o = 0;
    for (size_t i = 0; i < a->sh.ext_count && o + 8 < sizeof order; i++)
        o += (size_t)snprintf(order + o, sizeof order - o, "%s%04x", i ? "," : "", a->sh.exts[i]);
    snprintf(out, cap, "%s (0x%04x), group 0x%04x (%s, %u-byte share), extensions %s, "
             "flight %u..%u bytes",
             cipher_name(a->sh.cipher), a->sh.cipher, a->sh.group,
             a->sh.group == FAKETLS_GROUP_X25519MLKEM768 ? "X25519MLKEM768" : "X25519",
             a->sh.share_len, order, (unsigned)a->flight_min,
             (unsigned)(a->flight_min + a->coins + a->spread));
}
