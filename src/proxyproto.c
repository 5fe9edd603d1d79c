/* proxyproto: PROXY protocol v1 (text) and v2 (binary), as described in
 * HAProxy's proxy-protocol.txt. */
#include "proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t v2_sig[12] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};
static const char v1_sig[] = "PROXY ";
#define V1_SIG_LEN 6

#define V2_VERSION 0x20
#define V2_CMD_LOCAL 0x0
#define V2_CMD_PROXY 0x1
#define V2_FAM_TCP4 0x11
#define V2_FAM_TCP6 0x21
#define V2_MAX_BODY (PROXYPROTO_V2_MAX_LEN - PROXYPROTO_V2_HDR_LEN)

/* ---- builder ---- */

typedef struct {
    int v4;             /* 1: addr[0..4) holds IPv4; 0: addr holds IPv6 */
    uint8_t addr[16];
    uint8_t port[2];    /* network order */
} endpoint;

static int load_endpoint(const struct sockaddr *sa, endpoint *e)
{
    if (sa == NULL)
        return -1;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        e->v4 = 1;
        memcpy(e->addr, &sin->sin_addr, 4);
        memcpy(e->port, &sin->sin_port, 2);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        /* A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; the
         * backend should see them as the IPv4 clients they are. */
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            e->v4 = 1;
            memcpy(e->addr, sin6->sin6_addr.s6_addr + 12, 4);
        } else {
            e->v4 = 0;
            memcpy(e->addr, sin6->sin6_addr.s6_addr, 16);
        }
        memcpy(e->port, &sin6->sin6_port, 2);
        return 0;
    }
    return -1;
}

/* Writes e as a 16-byte IPv6 address, v4-mapping an IPv4 one. */
static void put_v6(uint8_t *out, const endpoint *e)
{
    if (e->v4) {
        memset(out, 0, 10);
        out[10] = 0xff;
        out[11] = 0xff;
        memcpy(out + 12, e->addr, 4);
    } else {
        memcpy(out, e->addr, 16);
    }
}

size_t proxyproto_v2_build(uint8_t *out, size_t cap, const struct sockaddr *src,
                           const struct sockaddr *dst)
{
    endpoint s, d;
    if (load_endpoint(src, &s) != 0 || load_endpoint(dst, &d) != 0)
        return 0;

    /* Mixed families become TCP6: mtg panics on a v4 source with a v6
     * target, and a header must carry both addresses in one family. */
    int v4 = s.v4 && d.v4;
    size_t total = v4 ? PROXYPROTO_V2_TCP4_LEN : PROXYPROTO_V2_TCP6_LEN;
    if (out == NULL || cap < total)
        return 0;

    memcpy(out, v2_sig, sizeof v2_sig);
    out[12] = V2_VERSION | V2_CMD_PROXY;
    out[13] = v4 ? V2_FAM_TCP4 : V2_FAM_TCP6;
    size_t body = total - PROXYPROTO_V2_HDR_LEN;
    out[14] = (uint8_t)(body >> 8);
    out[15] = (uint8_t)body;
    uint8_t *p = out + PROXYPROTO_V2_HDR_LEN;
    if (v4) {
        memcpy(p, s.addr, 4);
        memcpy(p + 4, d.addr, 4);
        p += 8;
    } else {
        put_v6(p, &s);
        put_v6(p + 16, &d);
        p += 32;
    }
    memcpy(p, s.port, 2);
    memcpy(p + 2, d.port, 2);
    return total;
}

/* ---- parser ---- */

static void set_unspec(struct sockaddr_storage *ss)
{
    if (ss) {
        memset(ss, 0, sizeof *ss);
        ss->ss_family = AF_UNSPEC;
    }
}

static void set_v4(struct sockaddr_storage *ss, const uint8_t ip[4], const uint8_t port[2])
{
    if (!ss)
        return;
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    memset(ss, 0, sizeof *ss);
    sin->sin_family = AF_INET;
    memcpy(&sin->sin_addr, ip, 4);
    memcpy(&sin->sin_port, port, 2);
}

static void set_v6(struct sockaddr_storage *ss, const uint8_t ip[16], const uint8_t port[2])
{
    if (!ss)
        return;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof *ss);
    sin6->sin6_family = AF_INET6;
    memcpy(&sin6->sin6_addr, ip, 16);
    memcpy(&sin6->sin6_port, port, 2);
}

/* Validates the v2 fixed header as far as bytes are present. */
static proxyproto_result invalid(proxyproto_reason *why, proxyproto_reason r)
{
    *why = r;
    return PROXYPROTO_INVALID;
}

static proxyproto_result parse_v2(const uint8_t *buf, size_t len, size_t *consumed,
                                  struct sockaddr_storage *src,
                                  struct sockaddr_storage *dst, int *is_local,
                                  proxyproto_reason *why)
{
    if (len > 12) {
        unsigned cmd = buf[12] & 0x0f;
        if ((buf[12] & 0xf0) != V2_VERSION || (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY))
            return invalid(why, PROXYPROTO_R_V2_VERSION_COMMAND);
    }
    if (len > 13) {
        /* address family 0..3 (UNSPEC, INET, INET6, UNIX), transport 0..2 */
        if ((buf[13] >> 4) > 3 || (buf[13] & 0x0f) > 2)
            return invalid(why, PROXYPROTO_R_V2_FAMILY);
    }
    if (len < PROXYPROTO_V2_HDR_LEN)
        return PROXYPROTO_NEED_MORE;

    size_t body = (size_t)buf[14] << 8 | buf[15];
    if (body > V2_MAX_BODY)
        return invalid(why, PROXYPROTO_R_V2_TOO_LONG);
    uint8_t fam = buf[13];
    if ((buf[12] & 0x0f) == V2_CMD_PROXY) {
        /* Check the declared length before waiting for it to arrive. */
        if ((fam == V2_FAM_TCP4 && body < 12) || (fam == V2_FAM_TCP6 && body < 36))
            return invalid(why, PROXYPROTO_R_V2_SHORT_ADDRESSES);
    }
    if (len < PROXYPROTO_V2_HDR_LEN + body)
        return PROXYPROTO_NEED_MORE;

    const uint8_t *a = buf + PROXYPROTO_V2_HDR_LEN;
    set_unspec(src);
    set_unspec(dst);
    if ((buf[12] & 0x0f) == V2_CMD_LOCAL) {
        *is_local = 1;                /* addresses, if any, are ignored */
    } else if (fam == V2_FAM_TCP4) {
        set_v4(src, a, a + 8);
        set_v4(dst, a + 4, a + 10);
    } else if (fam == V2_FAM_TCP6) {
        set_v6(src, a, a + 32);
        set_v6(dst, a + 16, a + 34);
    }
    /* UNSPEC, UDP and UNIX: no usable TCP addresses; the caller keeps the
     * socket's. TLVs after the addresses are skipped via the length. */
    *consumed = PROXYPROTO_V2_HDR_LEN + body;
    return PROXYPROTO_OK;
}

/* Finds the v1 line end. Returns OK with *line_len = bytes before CRLF,
 * NEED_MORE, or INVALID (stray CR/LF, control bytes, or no CRLF in 107). */
static proxyproto_result v1_line(const uint8_t *buf, size_t len, size_t *line_len,
                                 proxyproto_reason *why)
{
    for (size_t i = V1_SIG_LEN; i < len; i++) {
        uint8_t c = buf[i];
        if (i + 2 > PROXYPROTO_V1_MAX_LEN)
            return invalid(why, PROXYPROTO_R_V1_TOO_LONG);   /* no room left for CRLF */
        if (c == '\r') {
            if (i + 1 == len)
                return PROXYPROTO_NEED_MORE;
            if (buf[i + 1] != '\n')
                return invalid(why, PROXYPROTO_R_V1_BAD_CHAR);
            *line_len = i;
            return PROXYPROTO_OK;
        }
        if (c < 0x20 || c > 0x7e)
            return invalid(why, PROXYPROTO_R_V1_BAD_CHAR);   /* includes a bare LF */
    }
    return PROXYPROTO_NEED_MORE;
}

/* Splits s[0..n) at single spaces into at most max tokens. Returns the token
 * count, or -1 on an empty token or too many tokens. */
static int split_tokens(const char *s, size_t n, const char **tok, size_t *tlen, int max)
{
    int count = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == ' ') {
            if (i == start || count == max)
                return -1;
            tok[count] = s + start;
            tlen[count] = i - start;
            count++;
            start = i + 1;
        }
    }
    return count;
}

static int token_is(const char *t, size_t n, const char *word)
{
    return strlen(word) == n && memcmp(t, word, n) == 0;
}

static int v1_port(const char *t, size_t n, uint8_t out[2])
{
    unsigned v = 0;
    if (n == 0 || n > 5)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (t[i] < '0' || t[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(t[i] - '0');
    }
    if (v > 65535)
        return -1;
    out[0] = (uint8_t)(v >> 8);
    out[1] = (uint8_t)v;
    return 0;
}

static int v1_addr(int af, const char *t, size_t n, uint8_t out[16])
{
    char tmp[INET6_ADDRSTRLEN];
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, t, n);
    tmp[n] = '\0';
    return inet_pton(af, tmp, out) == 1 ? 0 : -1;
}

static proxyproto_result parse_v1(const uint8_t *buf, size_t len, size_t *consumed,
                                  struct sockaddr_storage *src,
                                  struct sockaddr_storage *dst, proxyproto_reason *why)
{
    size_t line_len;
    proxyproto_result r = v1_line(buf, len, &line_len, why);
    if (r != PROXYPROTO_OK)
        return r;

    const char *line = (const char *)buf + V1_SIG_LEN;
    size_t n = line_len - V1_SIG_LEN;
    /* "UNKNOWN" may be followed by anything, which receivers ignore. */
    if (n >= 7 && memcmp(line, "UNKNOWN", 7) == 0 && (n == 7 || line[7] == ' ')) {
        set_unspec(src);
        set_unspec(dst);
        *consumed = line_len + 2;
        return PROXYPROTO_OK;
    }

    const char *tok[5];
    size_t tlen[5];
    if (split_tokens(line, n, tok, tlen, 5) != 5)
        return invalid(why, PROXYPROTO_R_V1_FIELDS);
    int af;
    if (token_is(tok[0], tlen[0], "TCP4"))
        af = AF_INET;
    else if (token_is(tok[0], tlen[0], "TCP6"))
        af = AF_INET6;
    else
        return invalid(why, PROXYPROTO_R_V1_PROTOCOL);

    uint8_t sa[16], da[16], sp[2], dp[2];
    if (v1_addr(af, tok[1], tlen[1], sa) != 0 || v1_addr(af, tok[2], tlen[2], da) != 0 ||
        v1_port(tok[3], tlen[3], sp) != 0 || v1_port(tok[4], tlen[4], dp) != 0)
        return invalid(why, PROXYPROTO_R_V1_ADDRESS);
    if (af == AF_INET) {
        set_v4(src, sa, sp);
        set_v4(dst, da, dp);
    } else {
        set_v6(src, sa, sp);
        set_v6(dst, da, dp);
    }
    *consumed = line_len + 2;
    return PROXYPROTO_OK;
}

/* Length of the common prefix of buf and sig (up to n bytes). */
static size_t prefix_match(const uint8_t *buf, size_t len, const uint8_t *sig, size_t n)
{
    size_t i = 0;
    while (i < len && i < n && buf[i] == sig[i])
        i++;
    return i;
}

proxyproto_result proxyproto_parse(const uint8_t *buf, size_t len, size_t *consumed,
                                   struct sockaddr_storage *src,
                                   struct sockaddr_storage *dst, int *is_local)
{
    return proxyproto_parse_why(buf, len, consumed, src, dst, is_local, NULL);
}

proxyproto_result proxyproto_parse_why(const uint8_t *buf, size_t len, size_t *consumed,
                                       struct sockaddr_storage *src,
                                       struct sockaddr_storage *dst, int *is_local,
                                       proxyproto_reason *why)
{
    size_t dummy_consumed;
    int dummy_local;
    proxyproto_reason dummy_why;
    if (!why)
        why = &dummy_why;
    *why = PROXYPROTO_R_NONE;
    if (!consumed)
        consumed = &dummy_consumed;
    if (!is_local)
        is_local = &dummy_local;
    *consumed = 0;
    *is_local = 0;
    if (len == 0)
        return PROXYPROTO_NEED_MORE;

    size_t m2 = prefix_match(buf, len, v2_sig, sizeof v2_sig);
    if (m2 == sizeof v2_sig)
        return parse_v2(buf, len, consumed, src, dst, is_local, why);
    if (m2 == len)
        return PROXYPROTO_NEED_MORE;

    size_t m1 = prefix_match(buf, len, (const uint8_t *)v1_sig, V1_SIG_LEN);
    if (m1 == V1_SIG_LEN)
        return parse_v1(buf, len, consumed, src, dst, why);
    if (m1 == len)
        return PROXYPROTO_NEED_MORE;
    return PROXYPROTO_NONE;
}

const char *proxyproto_result_str(proxyproto_result r)
{
    switch (r) {
    case PROXYPROTO_OK: return "ok";
    case PROXYPROTO_NEED_MORE: return "need more";
    case PROXYPROTO_NONE: return "no PROXY header";
    case PROXYPROTO_INVALID: return "invalid PROXY header";
    }
    return "unknown";
}

const char *proxyproto_reason_str(proxyproto_reason r)
{
    switch (r) {
    case PROXYPROTO_R_NONE: return "none";
    case PROXYPROTO_R_V2_VERSION_COMMAND: return "v2: unknown version or command";
    case PROXYPROTO_R_V2_FAMILY: return "v2: unknown address family or transport";
    case PROXYPROTO_R_V2_TOO_LONG: return "v2: longer than 536 bytes";
    case PROXYPROTO_R_V2_SHORT_ADDRESSES: return "v2: too short for its addresses";
    case PROXYPROTO_R_V1_TOO_LONG: return "v1: no CRLF within 107 bytes";
    case PROXYPROTO_R_V1_BAD_CHAR: return "v1: control byte or bare CR/LF";
    case PROXYPROTO_R_V1_FIELDS: return "v1: not five space-separated fields";
    case PROXYPROTO_R_V1_PROTOCOL: return "v1: protocol is not TCP4, TCP6 or UNKNOWN";
    case PROXYPROTO_R_V1_ADDRESS: return "v1: bad address or port";
    }
    return "unknown";
}
