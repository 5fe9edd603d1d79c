/* faketls: FakeTLS ClientHello check, ServerHello builder, record framing.
 * Byte layouts follow mtg v2 (see the header and the reference notes). */
#include "faketls.h"

#include <string.h>

#include "crypto.h"

#define REC_HANDSHAKE 0x16
#define REC_CCS 0x14
#define REC_APPDATA 0x17
#define HS_CLIENT_HELLO 0x01
#define HS_SERVER_HELLO 0x02
#define HS_HDR_LEN 4
/* Offsets inside the handshake message (type + uint24 length first). */
#define HS_RANDOM_OFF 6
#define HS_SID_LEN_OFF 38
#define RANDOM_LEN 32
#define SID_MAX 32
/* Offset of the random in a record (5-byte record header first). */
#define REC_RANDOM_OFF (FAKETLS_HEADER_LEN + HS_RANDOM_OFF)
#define EXT_SERVER_NAME 0x0000
#define EXT_KEY_SHARE 0x0033
#define SNI_HOST_NAME 0

static const char *const reason_names[FAKETLS_R_COUNT] = {
    [FAKETLS_R_NONE] = "none",
    [FAKETLS_R_NOT_HANDSHAKE] = "not_handshake",
    [FAKETLS_R_BAD_VERSION] = "bad_version",
    [FAKETLS_R_BAD_RECORD_LEN] = "bad_record_len",
    [FAKETLS_R_TOO_MANY_RECORDS] = "too_many_records",
    [FAKETLS_R_TOO_LONG] = "too_long",
    [FAKETLS_R_NOT_CLIENT_HELLO] = "not_client_hello",
    [FAKETLS_R_MALFORMED] = "malformed",
    [FAKETLS_R_NO_CIPHER] = "no_cipher",
    [FAKETLS_R_NO_SNI] = "no_sni",
    [FAKETLS_R_SNI_MISMATCH] = "sni_mismatch",
    [FAKETLS_R_BAD_DIGEST] = "bad_digest",
    [FAKETLS_R_TIME_SKEW] = "time_skew",
    [FAKETLS_R_BAD_TYPE] = "bad_type",
};

const char *faketls_reason_name(faketls_reason r)
{
    if ((unsigned)r >= FAKETLS_R_COUNT || reason_names[r] == NULL)
        return "unknown";
    return reason_names[r];
}

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static void put_be16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put_be24(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 16);
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)v;
}

/* ---- the handshake message as a view over the record payloads ----
 * The hello may be fragmented; rather than copy it, we keep where each
 * fragment lies in the caller's buffer. */

typedef struct {
    const uint8_t *seg[FAKETLS_HELLO_MAX_RECORDS];
    size_t seg_len[FAKETLS_HELLO_MAX_RECORDS];
    size_t nseg;
    size_t avail;   /* handshake bytes present in the buffer */
    size_t total;   /* 4 + L once the handshake header is known, else 0 */
} hs_view;

/* Copies n bytes at handshake offset off (caller checked availability). */
static void view_copy(const hs_view *v, size_t off, uint8_t *dst, size_t n)
{
    for (size_t i = 0; i < v->nseg && n > 0; i++) {
        if (off >= v->seg_len[i]) {
            off -= v->seg_len[i];
            continue;
        }
        size_t take = v->seg_len[i] - off;
        if (take > n)
            take = n;
        memcpy(dst, v->seg[i] + off, take);
        dst += take;
        n -= take;
        off = 0;
    }
}

static uint8_t view_byte(const hs_view *v, size_t off)
{
    uint8_t b = 0;
    view_copy(v, off, &b, 1);
    return b;
}

/* 1 when the n bytes at off equal data. */
static int view_equal(const hs_view *v, size_t off, const uint8_t *data, size_t n)
{
    for (size_t i = 0; i < v->nseg && n > 0; i++) {
        if (off >= v->seg_len[i]) {
            off -= v->seg_len[i];
            continue;
        }
        size_t take = v->seg_len[i] - off;
        if (take > n)
            take = n;
        if (memcmp(v->seg[i] + off, data, take) != 0)
            return 0;
        data += take;
        n -= take;
        off = 0;
    }
    return n == 0;
}

/* ---- ClientHello body parser ----
 * Runs over a possibly incomplete message: a read past the declared end is
 * MALFORMED, a read past the bytes present only means "need more". So a
 * broken hello is rejected as soon as the broken part has arrived. */

enum { P_OK = 0, P_MORE = 1, P_REJECT = -1 };

typedef struct {
    const hs_view *v;
    size_t off;
    size_t end;             /* bound of the current structure */
    faketls_reason reason;  /* set with P_REJECT */
} parser;

static int p_need(parser *p, size_t n)
{
    if (n > p->end - p->off) {
        p->reason = FAKETLS_R_MALFORMED;
        return P_REJECT;
    }
    if (p->off + n > p->v->avail)
        return P_MORE;
    return P_OK;
}

static int p_u8(parser *p, size_t *val)
{
    int rc = p_need(p, 1);
    if (rc == P_OK)
        *val = view_byte(p->v, p->off++);
    return rc;
}

static int p_u16(parser *p, size_t *val)
{
    uint8_t b[2];
    int rc = p_need(p, 2);
    if (rc == P_OK) {
        view_copy(p->v, p->off, b, 2);
        *val = be16(b);
        p->off += 2;
    }
    return rc;
}

static int p_skip(parser *p, size_t n)
{
    int rc = p_need(p, n);
    if (rc == P_OK)
        p->off += n;
    return rc;
}

#define P_TRY(expr) do { int rc_ = (expr); if (rc_ != P_OK) return rc_; } while (0)

static int p_reject(parser *p, faketls_reason r)
{
    p->reason = r;
    return P_REJECT;
}

static int is_grease(size_t cs) { return (cs & 0x0f0f) == 0x0a0a; }

/* cipher_suites<2..2^16-2>: picks the first non-GREASE suite and notes
 * which TLS 1.3 suites are offered (the site's choice is used if offered). */
static int parse_ciphers(parser *p, uint16_t *chosen, uint8_t *tls13)
{
    size_t len, cs;
    int found = 0;
    P_TRY(p_u16(p, &len));
    if (len % 2 != 0)
        return p_reject(p, FAKETLS_R_MALFORMED);
    P_TRY(p_need(p, len));   /* whole list present before we judge it */
    for (size_t i = 0; i < len; i += 2) {
        P_TRY(p_u16(p, &cs));
        if (cs >= 0x1301 && cs <= 0x1305)
            *tls13 |= (uint8_t)(1u << (cs - 0x1301));
        if (!found && !is_grease(cs)) {
            *chosen = (uint16_t)cs;
            found = 1;
        }
    }
    return found ? P_OK : p_reject(p, FAKETLS_R_NO_CIPHER);
}

/* server_name extension data in [p->off, p->end): ServerNameList. Sets
 * *matched when one host_name entry equals host, *names when any host_name
 * entry exists. */
static int parse_sni(parser *p, const faketls_keyring *s, int *names, int *matched)
{
    size_t list_len, type, name_len;
    P_TRY(p_u16(p, &list_len));
    if (list_len != p->end - p->off)
        return p_reject(p, FAKETLS_R_MALFORMED);
    while (p->off < p->end) {
        P_TRY(p_u8(p, &type));
        P_TRY(p_u16(p, &name_len));
        P_TRY(p_need(p, name_len));
        if (type == SNI_HOST_NAME) {
            *names = 1;
            if (name_len == s->host_len &&
                view_equal(p->v, p->off, (const uint8_t *)s->host, name_len))
                *matched = 1;
        }
        p->off += name_len;
    }
    return P_OK;
}

/* key_share extension data at [off, end), complete in the view: notes an
 * X25519MLKEM768 share. Lenient: a list we cannot read is simply "no
 * hybrid share" (mtg does not look at it, so neither may the verdict). */
static int has_mlkem_share(const hs_view *v, size_t off, size_t end)
{
    uint8_t b[4];
    if (end - off < 2)
        return 0;
    view_copy(v, off, b, 2);
    if ((size_t)be16(b) != end - off - 2)
        return 0;
    for (off += 2; end - off >= 4;) {
        view_copy(v, off, b, 4);
        size_t glen = be16(b + 2);
        if (glen > end - off - 4)
            return 0;
        if (be16(b) == FAKETLS_GROUP_X25519MLKEM768 && glen == FAKETLS_MLKEM_CLIENT_SHARE)
            return 1;
        off += 4 + glen;
    }
    return 0;
}

static int parse_extensions(parser *p, const faketls_keyring *s, faketls_hello *out)
{
    size_t ext_len, type, len;
    int names = 0, matched = 0;
    if (p->off == p->end)   /* no extensions at all: no SNI */
        return p_reject(p, FAKETLS_R_NO_SNI);
    P_TRY(p_u16(p, &ext_len));
    if (ext_len != p->end - p->off)
        return p_reject(p, FAKETLS_R_MALFORMED);
    while (p->off < p->end) {
        P_TRY(p_u16(p, &type));
        P_TRY(p_u16(p, &len));
        if (len > p->end - p->off)
            return p_reject(p, FAKETLS_R_MALFORMED);
        if (type == EXT_KEY_SHARE) {
            P_TRY(p_need(p, len));
            out->mlkem_share = (uint8_t)has_mlkem_share(p->v, p->off, p->off + len);
        }
        if (type != EXT_SERVER_NAME) {
            P_TRY(p_skip(p, len));
            continue;
        }
        parser sub = { p->v, p->off, p->off + len, FAKETLS_R_NONE };
        int rc = parse_sni(&sub, s, &names, &matched);
        if (rc != P_OK) {
            p->reason = sub.reason;
            return rc;
        }
        /* The name list is complete: judge it now, before the rest. */
        if (!names)
            return p_reject(p, FAKETLS_R_NO_SNI);
        if (!matched)
            return p_reject(p, FAKETLS_R_SNI_MISMATCH);
        p->off = sub.off;
    }
    return matched ? P_OK : p_reject(p, FAKETLS_R_NO_SNI);
}

/* Parses the ClientHello body (the handshake header was checked by the
 * framing code). Fills sid and cipher into out. */
static int parse_client_hello(parser *p, const faketls_keyring *s, faketls_hello *out)
{
    size_t sid_len, comp_len;
    p->off = HS_HDR_LEN;
    P_TRY(p_skip(p, 2 + RANDOM_LEN));   /* legacy_version, random */
    P_TRY(p_u8(p, &sid_len));
    if (sid_len > SID_MAX)
        return p_reject(p, FAKETLS_R_MALFORMED);
    P_TRY(p_need(p, sid_len));
    view_copy(p->v, p->off, out->session_id, sid_len);
    out->session_id_len = (uint8_t)sid_len;
    p->off += sid_len;
    out->tls13_suites = 0;
    out->mlkem_share = 0;
    P_TRY(parse_ciphers(p, &out->cipher_suite, &out->tls13_suites));
    P_TRY(p_u8(p, &comp_len));
    P_TRY(p_skip(p, comp_len));
    return parse_extensions(p, s, out);
}

/* ---- record framing of the hello ---- */

/* Walks the record headers in buf, filling v with the payload fragments.
 * Returns P_OK when the handshake message is complete (*consumed = bytes of
 * the records), P_MORE, or P_REJECT with *reason. */
static int frame_records(const uint8_t *buf, size_t len, hs_view *v,
                         size_t *consumed, faketls_reason *reason)
{
    size_t pos = 0, declared = 0;   /* declared: sum of record lengths */
    memset(v, 0, sizeof *v);
    for (size_t rec = 0;; rec++) {
        if (v->total != 0 && declared == v->total) {
            *consumed = pos;
            return P_OK;
        }
        if (rec == FAKETLS_HELLO_MAX_RECORDS) {
            *reason = FAKETLS_R_TOO_MANY_RECORDS;
            return P_REJECT;
        }
        /* Judge each header byte as soon as it is here. */
        if (pos < len && buf[pos] != REC_HANDSHAKE) {
            *reason = FAKETLS_R_NOT_HANDSHAKE;
            return P_REJECT;
        }
        if ((pos + 1 < len && buf[pos + 1] != 0x03) ||
            (pos + 2 < len && buf[pos + 2] != 0x01)) {
            *reason = FAKETLS_R_BAD_VERSION;
            return P_REJECT;
        }
        if (len - pos < FAKETLS_HEADER_LEN)
            return P_MORE;
        size_t rlen = be16(buf + pos + 3);
        if (rlen == 0 || rlen > FAKETLS_RECORD_MAX) {
            *reason = FAKETLS_R_BAD_RECORD_LEN;
            return P_REJECT;
        }
        pos += FAKETLS_HEADER_LEN;
        size_t have = len - pos < rlen ? len - pos : rlen;
        v->seg[v->nseg] = buf + pos;
        v->seg_len[v->nseg++] = have;
        v->avail += have;
        declared += rlen;

        if (v->avail >= 1 && view_byte(v, 0) != HS_CLIENT_HELLO) {
            *reason = FAKETLS_R_NOT_CLIENT_HELLO;
            return P_REJECT;
        }
        if (v->total == 0 && v->avail >= HS_HDR_LEN) {
            uint8_t h[HS_HDR_LEN];
            view_copy(v, 0, h, HS_HDR_LEN);
            size_t l = (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
            if (l + HS_HDR_LEN > FAKETLS_HELLO_MAX) {
                *reason = FAKETLS_R_TOO_LONG;
                return P_REJECT;
            }
            v->total = l + HS_HDR_LEN;
        }
        /* A record running past the hello's end is no client's doing. */
        if (v->total != 0 && declared > v->total) {
            *reason = FAKETLS_R_MALFORMED;
            return P_REJECT;
        }
        /* The last record allowed does not finish the hello: reject now
         * instead of waiting for a twelfth header. */
        if (rec + 1 == FAKETLS_HELLO_MAX_RECORDS && v->total != 0 &&
            declared < v->total) {
            *reason = FAKETLS_R_TOO_MANY_RECORDS;
            return P_REJECT;
        }
        if (have < rlen)
            return P_MORE;
        pos += rlen;
    }
}

/* Feeds data (at handshake offset off) into h, with the random zeroed. */
static void hmac_masked(crypto_hmac *h, const uint8_t *data, size_t n, size_t off)
{
    static const uint8_t zeros[RANDOM_LEN];
    size_t end = off + n;
    size_t zs = off > HS_RANDOM_OFF ? off : HS_RANDOM_OFF;
    size_t ze = end < HS_RANDOM_OFF + RANDOM_LEN ? end : HS_RANDOM_OFF + RANDOM_LEN;
    if (zs >= ze) {   /* the fragment does not touch the random */
        crypto_hmac_update(h, data, n);
        return;
    }
    crypto_hmac_update(h, data, zs - off);
    crypto_hmac_update(h, zeros, ze - zs);
    crypto_hmac_update(h, data + (ze - off), end - ze);
}

/* HMAC-SHA256(key, record header || hello with the random zeroed), over
 * the reassembled single-record form, as the client computed it. */
static void hello_digest(const hs_view *v, const faketls_keyring *ring, size_t k,
                         uint8_t mac[CRYPTO_SHA256_LEN])
{
    uint8_t hdr[FAKETLS_HEADER_LEN] = { REC_HANDSHAKE, 0x03, 0x01, 0, 0 };
    crypto_hmac h;
    size_t off = 0;
    put_be16(hdr + 3, v->total);
    if (ring->prepared != NULL)
        crypto_hmac_init_prepared(&h, &ring->prepared[k]);
    else
        crypto_hmac_init(&h, ring->keys[k], SECRET_KEY_LEN);
    crypto_hmac_update(&h, hdr, sizeof hdr);
    for (size_t i = 0; i < v->nseg; i++) {
        hmac_masked(&h, v->seg[i], v->seg_len[i], off);
        off += v->seg_len[i];
    }
    crypto_hmac_final(&h, mac);
    crypto_hmac_wipe(&h);
}

/* Checks the digest against every key of the ring; on success stores the
 * timestamp, the random and the key's index. Every key is tried, and the
 * match is selected with masks rather than branches, so the time taken
 * says nothing about which key (if any) matched. */
static faketls_reason check_digest(const hs_view *v, const faketls_keyring *ring,
                                   faketls_hello *out)
{
    static const uint8_t zeros[FAKETLS_RANDOM_MAC_LEN];
    uint8_t mac[CRYPTO_SHA256_LEN];
    uint32_t found = 0, index = 0, ts = 0;

    view_copy(v, HS_RANDOM_OFF, out->client_random, RANDOM_LEN);
    for (size_t k = 0; k < ring->count; k++) {
        hello_digest(v, ring, k, mac);
        for (size_t i = 0; i < RANDOM_LEN; i++)
            mac[i] ^= out->client_random[i];
        uint32_t ok = (uint32_t)crypto_equal(mac, zeros, sizeof zeros);
        uint32_t take = 0u - (ok & (found ^ 1u));   /* all ones for the first match */
        uint32_t t = (uint32_t)mac[28] | (uint32_t)mac[29] << 8 |
                     (uint32_t)mac[30] << 16 | (uint32_t)mac[31] << 24;
        index |= (uint32_t)k & take;
        ts |= t & take;
        found |= ok;
    }
    crypto_wipe(mac, sizeof mac);
    out->timestamp = ts;
    out->key_index = index;
    return found ? FAKETLS_R_NONE : FAKETLS_R_BAD_DIGEST;
}

static int time_ok(uint32_t ts, int64_t now, uint32_t tolerance_ms)
{
    /* |now - ts| in unsigned arithmetic (exact for any int64 now), then
     * scaled to ms after a clamp so the product cannot overflow. */
    uint64_t adiff = now >= (int64_t)ts ? (uint64_t)now - ts : (uint64_t)ts - (uint64_t)now;
    if (adiff > UINT32_MAX)
        return 0;
    return adiff * 1000 <= tolerance_ms;
}

faketls_result faketls_check_client_hello(const uint8_t *buf, size_t len,
                                          const tg_secret *secret,
                                          int64_t now_unix,
                                          uint32_t tolerance_ms,
                                          faketls_hello *out,
                                          faketls_reason *reason)
{
    const faketls_keyring ring = { (const uint8_t (*)[SECRET_KEY_LEN])secret->key, 1,
                                   secret->host, secret->host_len, NULL };
    return faketls_check_client_hello_any(buf, len, &ring, now_unix, tolerance_ms, out, reason);
}

faketls_result faketls_check_client_hello_any(const uint8_t *buf, size_t len,
                                              const faketls_keyring *ring,
                                              int64_t now_unix,
                                              uint32_t tolerance_ms,
                                              faketls_hello *out,
                                              faketls_reason *reason)
{
    faketls_reason r = FAKETLS_R_NONE, dummy_r;
    faketls_hello tmp, *h = out ? out : &tmp;
    hs_view v;
    parser p;
    size_t consumed = 0;
    int framing, rc;

    if (reason == NULL)
        reason = &dummy_r;
    *reason = FAKETLS_R_NONE;
    memset(h, 0, sizeof *h);

    framing = frame_records(buf, len, &v, &consumed, &r);
    if (framing == P_REJECT)
        goto reject;
    if (v.total == 0)   /* handshake header not here yet */
        return FAKETLS_NEED_MORE;

    p = (parser){ &v, 0, v.total, FAKETLS_R_NONE };
    rc = parse_client_hello(&p, ring, h);
    if (rc == P_REJECT) {
        r = p.reason;
        goto reject;
    }
    if (framing == P_MORE || rc == P_MORE)
        return FAKETLS_NEED_MORE;

    r = check_digest(&v, ring, h);
    if (r != FAKETLS_R_NONE)
        goto reject;
    if (!time_ok(h->timestamp, now_unix, tolerance_ms)) {
        r = FAKETLS_R_TIME_SKEW;
        goto reject;
    }
    h->consumed = consumed;
    return FAKETLS_OK;

reject:
    *reason = r;
    return FAKETLS_REJECT;
}

size_t faketls_hello_next_check(const uint8_t *buf, size_t len)
{
    size_t off = 0;
    for (unsigned i = 0; i <= FAKETLS_HELLO_MAX_RECORDS; i++) {
        if (len < off + FAKETLS_HEADER_LEN)
            return off + FAKETLS_HEADER_LEN;
        size_t rec = (size_t)buf[off + 3] << 8 | buf[off + 4];
        if (len < off + FAKETLS_HEADER_LEN + rec)
            return off + FAKETLS_HEADER_LEN + rec;
        off += FAKETLS_HEADER_LEN + rec;
    }
    return len + 1;
}

/* ---- ServerHello ---- */

static const uint8_t ccs_record[] = { REC_CCS, 0x03, 0x03, 0x00, 0x01, 0x01 };
/* ServerHello body before the session id: version, random, sid length. */
#define SH_HEAD_LEN (2 + RANDOM_LEN + 1)

void faketls_default_shape(faketls_sh_shape *out, uint16_t cipher)
{
    memset(out, 0, sizeof *out);
    out->cipher = cipher;
    out->group = FAKETLS_GROUP_X25519;
    out->share_len = 32;
    out->ext_count = 2;
    out->exts[0] = FAKETLS_EXT_SUPPORTED_VERSIONS;
    out->exts[1] = FAKETLS_EXT_KEY_SHARE;
}

/* Bytes of the extension block after its length, or 0 if not writable. */
static size_t shape_exts_len(const faketls_sh_shape *sh)
{
    size_t n = 0;
    int have_share = 0;
    if (sh->ext_count == 0 || sh->ext_count > FAKETLS_SH_MAX_EXTS || sh->share_len == 0 ||
        sh->share_len > FAKETLS_MLKEM_SERVER_SHARE)
        return 0;
    for (size_t i = 0; i < sh->ext_count; i++) {
        if (sh->exts[i] == FAKETLS_EXT_SUPPORTED_VERSIONS) {
            n += 4 + 2;
        } else if (sh->exts[i] == FAKETLS_EXT_KEY_SHARE && !have_share) {
            n += 4 + 4 + sh->share_len;
            have_share = 1;
        } else {
            return 0;
        }
    }
    return have_share ? n : 0;
}

static size_t shaped_record_len(uint8_t sid_len, const faketls_sh_shape *sh)
{
    size_t ext = shape_exts_len(sh);
    if (ext == 0)
        return 0;
    return FAKETLS_HEADER_LEN + HS_HDR_LEN + SH_HEAD_LEN + sid_len + 2 + 1 + 2 + ext;
}

size_t faketls_shaped_len(uint8_t session_id_len, const faketls_sh_shape *shape,
                          size_t appdata_len)
{
    size_t rec1 = shaped_record_len(session_id_len, shape);
    if (rec1 == 0)
        return 0;
    return rec1 + sizeof ccs_record + FAKETLS_HEADER_LEN + appdata_len;
}

size_t faketls_server_hello_len(uint8_t session_id_len, size_t appdata_len)
{
    faketls_sh_shape sh;
    faketls_default_shape(&sh, 0x1301);
    return faketls_shaped_len(session_id_len, &sh, appdata_len);
}

size_t faketls_build_shaped(uint8_t *out, size_t cap, const faketls_hello *hello,
                            const tg_secret *secret, const faketls_sh_shape *shape,
                            const uint8_t *share, const uint8_t *appdata, size_t appdata_len)
{
    size_t sid_len = hello->session_id_len;
    size_t rec1 = shaped_record_len(hello->session_id_len, shape);
    size_t total = faketls_shaped_len(hello->session_id_len, shape, appdata_len);
    uint8_t *p = out;
    crypto_hmac h;

    if (rec1 == 0 || sid_len > SID_MAX || appdata_len == 0 ||
        appdata_len > FAKETLS_RECORD_MAX || total > cap)
        return 0;
    /* Place the application data first: it may lie anywhere in out. */
    memmove(out + total - appdata_len, appdata, appdata_len);

    *p++ = REC_HANDSHAKE;
    *p++ = 0x03;
    *p++ = 0x03;
    put_be16(p, rec1 - FAKETLS_HEADER_LEN);
    p += 2;
    *p++ = HS_SERVER_HELLO;
    put_be24(p, rec1 - FAKETLS_HEADER_LEN - HS_HDR_LEN);
    p += 3;
    *p++ = 0x03;
    *p++ = 0x03;
    memset(p, 0, RANDOM_LEN);
    p += RANDOM_LEN;
    *p++ = (uint8_t)sid_len;
    memcpy(p, hello->session_id, sid_len);
    p += sid_len;
    put_be16(p, shape->cipher);
    p += 2;
    *p++ = 0x00;   /* compression: null */
    put_be16(p, shape_exts_len(shape));
    p += 2;
    for (size_t i = 0; i < shape->ext_count; i++) {
        put_be16(p, shape->exts[i]);
        if (shape->exts[i] == FAKETLS_EXT_SUPPORTED_VERSIONS) {
            put_be16(p + 2, 2);
            p[4] = 0x03;
            p[5] = 0x04;   /* TLS 1.3 */
            p += 6;
        } else {
            put_be16(p + 2, 4 + shape->share_len);
            put_be16(p + 4, shape->group);
            put_be16(p + 6, shape->share_len);
            memcpy(p + 8, share, shape->share_len);
            p += 8 + shape->share_len;
        }
    }
    memcpy(p, ccs_record, sizeof ccs_record);
    p += sizeof ccs_record;
    *p++ = REC_APPDATA;
    *p++ = 0x03;
    *p++ = 0x03;
    put_be16(p, appdata_len);

    /* The client verifies this digest: it proves we know the key. */
    crypto_hmac_init(&h, secret->key, SECRET_KEY_LEN);
    crypto_hmac_update(&h, hello->client_random, RANDOM_LEN);
    crypto_hmac_update(&h, out, total);
    crypto_hmac_final(&h, out + REC_RANDOM_OFF);
    crypto_hmac_wipe(&h);
    return total;
}

size_t faketls_build_server_hello(uint8_t *out, size_t cap,
                                  const faketls_hello *hello,
                                  const tg_secret *secret,
                                  const uint8_t x25519_pub[32],
                                  const uint8_t *appdata, size_t appdata_len)
{
    faketls_sh_shape sh;
    faketls_default_shape(&sh, hello->cipher_suite);
    return faketls_build_shaped(out, cap, hello, secret, &sh, x25519_pub, appdata, appdata_len);
}

/* ---- record layer after the handshake ---- */

void faketls_rx_init(faketls_rx *st)
{
    memset(st, 0, sizeof *st);
}

/* What Go's crypto/tls (TLS 1.3, once the ServerHello is out: Caddy's
 * stack) refuses in the client's records, each with a fatal alert: a
 * version other than 03 03 (protocol_version) and a length over 16384 +
 * 256 (record_overflow), both from the header alone; a ChangeCipherSpec
 * other than the one byte 01 (decode_error) and any type but application
 * data and CCS (its AEAD check fails: bad_record_mac), both once the whole
 * record is in. A CCS is otherwise ignored, as Go ignores it; what Go's
 * AEAD would refuse inside application data FakeTLS cannot tell. */
#define RX_MAX_RECORD (16384 + 256)

static int rx_refuse(size_t n_spans, size_t r, size_t *count, size_t *used,
                     faketls_reason *reason, faketls_reason why)
{
    *count = n_spans;
    *used = r;
    if (reason)
        *reason = why;
    return -1;
}

/* The current record is complete. */
static void rx_record_done(faketls_rx *st)
{
    st->hdr_have = 0;
    if (st->type == REC_APPDATA)
        st->finished = 1;
}

int faketls_rx_spans(faketls_rx *st, const uint8_t *buf, size_t len, faketls_span *spans,
                     size_t max, size_t *count, size_t *used, faketls_reason *reason)
{
    size_t r = 0, n_spans = 0;
    while (r < len) {
        if (st->hdr_have < FAKETLS_HEADER_LEN) {
            st->hdr[st->hdr_have++] = buf[r++];
            if (st->hdr_have < FAKETLS_HEADER_LEN)
                continue;
            if (st->hdr[1] != 0x03 || st->hdr[2] != 0x03)
                return rx_refuse(n_spans, r, count, used, reason, FAKETLS_R_BAD_VERSION);
            st->type = st->hdr[0];
            st->remaining = be16(st->hdr + 3);
            if (st->remaining > RX_MAX_RECORD)
                return rx_refuse(n_spans, r, count, used, reason, FAKETLS_R_BAD_RECORD_LEN);
            st->refused = st->type != REC_APPDATA &&
                          !(st->type == REC_CCS && st->remaining == 1);
            if (st->remaining == 0) {
                rx_record_done(st);
                if (st->refused)
                    return rx_refuse(n_spans, r, count, used, reason, FAKETLS_R_BAD_TYPE);
            }
            continue;
        }
        size_t n = len - r < st->remaining ? len - r : st->remaining;
        /* Only application data carries the stream; the client's
         * ChangeCipherSpec is dropped, as mtg and Go do. */
        if (st->type == REC_APPDATA) {
            if (n_spans == max)
                break;
            spans[n_spans++] = (faketls_span){ .off = r, .len = n };
        } else if (st->type == REC_CCS && buf[r] != 0x01) {
            st->refused = 1;
        }
        r += n;
        st->remaining = (uint16_t)(st->remaining - n);
        if (st->remaining == 0) {
            rx_record_done(st);
            if (st->refused)
                return rx_refuse(n_spans, r, count, used, reason, FAKETLS_R_BAD_TYPE);
        }
    }
    *count = n_spans;
    *used = r;
    return 0;
}

int faketls_rx_unwrap(faketls_rx *st, uint8_t *buf, size_t len,
                      size_t *out_len, faketls_reason *reason)
{
    faketls_span spans[16];
    size_t r = 0, w = 0;
    int rc = 0;
    while (r < len && rc == 0) {
        size_t count = 0, used = 0;
        rc = faketls_rx_spans(st, buf + r, len - r, spans, sizeof spans / sizeof spans[0],
                              &count, &used, reason);
        for (size_t i = 0; i < count; i++) {
            memmove(buf + w, buf + r + spans[i].off, spans[i].len);
            w += spans[i].len;
        }
        r += used;
    }
    *out_len = w;
    return rc;
}

void faketls_tx_header(uint8_t hdr[FAKETLS_HEADER_LEN], size_t payload_len)
{
    hdr[0] = REC_APPDATA;
    hdr[1] = 0x03;
    hdr[2] = 0x03;
    put_be16(hdr + 3, payload_len);
}
