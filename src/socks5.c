/* socks5: RFC 1928 CONNECT with RFC 1929 user/password, as a pure state
 * machine; the connection moves the bytes. */
#include "socks5.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"

#define VER 0x05
#define AUTH_VER 0x01
#define M_NONE 0x00
#define M_USERPASS 0x02
#define M_REFUSED 0xff
#define CMD_CONNECT 0x01
#define ATYP_V4 0x01
#define ATYP_NAME 0x03
#define ATYP_V6 0x04

const char *socks5_error_str(socks5_error e)
{
    switch (e) {
    case SOCKS5_E_NONE: return "no error";
    case SOCKS5_E_VERSION: return "the proxy did not answer as SOCKS5";
    case SOCKS5_E_NO_METHOD: return "the proxy accepts none of our authentication methods "
                                    "(does it need a user and password?)";
    case SOCKS5_E_BAD_METHOD: return "the proxy chose an authentication method we did not offer";
    case SOCKS5_E_AUTH: return "the proxy refused the user name or password";
    case SOCKS5_E_REFUSED: return "the proxy could not connect to the target";
    case SOCKS5_E_BAD_REPLY: return "malformed reply from the proxy";
    case SOCKS5_E_COUNT: break;
    }
    return "unknown error";
}

const char *socks5_rep_str(uint8_t rep)
{
    static const char *const text[] = {
        "succeeded", "general SOCKS server failure", "connection not allowed by ruleset",
        "network unreachable", "host unreachable", "connection refused", "TTL expired",
        "command not supported", "address type not supported",
    };
    return rep < sizeof text / sizeof text[0] ? text[rep] : "unassigned reply code";
}

/* ---- URL ---------------------------------------------------------------- */

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into out (cap bytes with the NUL); 1..255 bytes. */
static int unescape(const char *s, size_t n, char *out, size_t cap)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            ch = hi * 16 + lo;
            i += 2;
        }
        if (ch == 0 || len + 1 >= cap)
            return -1;
        out[len++] = (char)ch;
    }
    out[len] = '\0';
    return len > 0 ? 0 : -1;
}

int socks5_parse_url(const char *url, socks5_upstream *out, const char **why)
{
    memset(out, 0, sizeof *out);
    const char *p;
    if (strncmp(url, "socks5://", 9) == 0) {
        p = url + 9;
    } else if (strncmp(url, "socks5h://", 10) == 0) {
        p = url + 10;
        out->remote_dns = 1;
    } else {
        *why = "must start with socks5:// or socks5h://";
        return -1;
    }
    /* The authority ends at the first '/', '?' or '#' (a path is ignored,
     * as are mtg's circuit-breaker query parameters). */
    size_t alen = strcspn(p, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++)
        if (p[i] == '@')
            at = p + i;   /* the last '@': a password may not hold one unescaped */
    if (at != NULL) {
        size_t ulen = (size_t)(at - p);
        const char *colon = memchr(p, ':', ulen);
        size_t name_len = colon ? (size_t)(colon - p) : ulen;
        if (unescape(p, name_len, out->user, sizeof out->user) < 0) {
            *why = "bad user name (1-255 bytes, percent-encoding allowed)";
            return -1;
        }
        if (colon) {
            size_t plen = ulen - name_len - 1;
            if (plen > 0 && unescape(colon + 1, plen, out->pass, sizeof out->pass) < 0) {
                *why = "bad password (1-255 bytes, percent-encoding allowed)";
                return -1;
            }
        }
        out->has_auth = 1;
        alen -= ulen + 1;
        p = at + 1;
    }
    const char *host = p, *port = NULL;
    size_t hlen;
    if (alen > 0 && *p == '[') {
        const char *close = memchr(p, ']', alen);
        if (!close) {
            *why = "unclosed '[' in the host";
            return -1;
        }
        host = p + 1;
        hlen = (size_t)(close - host);
        if ((size_t)(close + 1 - p) < alen) {
            if (close[1] != ':') {
                *why = "expected ':port' after ']'";
                return -1;
            }
            port = close + 2;
        }
    } else {
        const char *colon = memchr(p, ':', alen);
        hlen = colon ? (size_t)(colon - p) : alen;
        if (colon)
            port = colon + 1;
    }
    if (hlen == 0 || hlen > SOCKS5_HOST_MAX) {
        *why = "missing or too long host";
        return -1;
    }
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    for (size_t i = 0; i < hlen; i++) {
        unsigned char ch = (unsigned char)out->host[i];
        if (!(isalnum(ch) || ch == '.' || ch == '-' || ch == '_' || ch == ':')) {
            *why = "the host must be an IP address or a hostname";
            return -1;
        }
    }
    out->port = SOCKS5_DEFAULT_PORT;
    if (port != NULL) {
        size_t plen = (size_t)(p + alen - port);
        unsigned long v = 0;
        if (plen == 0 || plen > 5) {
            *why = "bad port";
            return -1;
        }
        for (size_t i = 0; i < plen; i++) {
            if (!isdigit((unsigned char)port[i])) {
                *why = "bad port";
                return -1;
            }
            v = v * 10 + (unsigned long)(port[i] - '0');
        }
        if (v < 1 || v > 65535) {
            *why = "the port must be 1..65535";
            return -1;
        }
        out->port = (uint16_t)v;
    }
    return 0;
}

/* ---- the handshake ------------------------------------------------------ */

static void queue(socks5_client *s, const uint8_t *b, size_t n)
{
    memcpy(s->out, b, n);
    s->out_len = n;
    s->out_off = 0;
}

static void expect(socks5_client *s, socks5_step step, size_t n)
{
    s->step = step;
    s->in_have = 0;
    s->in_need = n;
}

void socks5_begin(socks5_client *s, const socks5_upstream *up, const struct sockaddr *target)
{
    memset(s, 0, sizeof *s);
    s->up = up;
    uint8_t *r = s->connect_req;
    r[0] = VER;
    r[1] = CMD_CONNECT;
    r[2] = 0;
    if (target->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)target;
        r[3] = ATYP_V6;
        memcpy(r + 4, &a->sin6_addr, 16);
        memcpy(r + 20, &a->sin6_port, 2);
        s->connect_len = 22;
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)target;
        r[3] = ATYP_V4;
        memcpy(r + 4, &a->sin_addr, 4);
        memcpy(r + 8, &a->sin_port, 2);
        s->connect_len = 10;
    }
    /* With credentials we offer both, as Go's x/net/proxy does (mtg): a
     * proxy that needs none may still pick "no authentication". */
    static const uint8_t plain[] = { VER, 1, M_NONE };
    static const uint8_t both[] = { VER, 2, M_NONE, M_USERPASS };
    if (up->has_auth)
        queue(s, both, sizeof both);
    else
        queue(s, plain, sizeof plain);
    expect(s, S5_GREETING, 2);
}

const uint8_t *socks5_pending(const socks5_client *s, size_t *len)
{
    *len = s->out_len - s->out_off;
    return *len ? s->out + s->out_off : NULL;
}

void socks5_sent(socks5_client *s, size_t n)
{
    if (n > s->out_len - s->out_off)
        n = s->out_len - s->out_off;
    s->out_off += n;
    if (s->out_off == s->out_len) {
        crypto_wipe(s->out, s->out_len);   /* it may have held the password */
        s->out_len = s->out_off = 0;
    }
}

size_t socks5_want(const socks5_client *s)
{
    if (s->out_len || s->step == S5_DONE || s->step == S5_FAILED)
        return 0;
    return s->step == S5_REPLY_ADDR ? s->skip : s->in_need - s->in_have;
}

static socks5_result fail(socks5_client *s, socks5_error e)
{
    s->step = S5_FAILED;
    s->error = e;
    return SOCKS5_FAIL;
}

static void queue_auth(socks5_client *s)
{
    size_t ul = strlen(s->up->user), pl = strlen(s->up->pass);
    s->out[0] = AUTH_VER;
    s->out[1] = (uint8_t)ul;
    memcpy(s->out + 2, s->up->user, ul);
    s->out[2 + ul] = (uint8_t)pl;
    memcpy(s->out + 3 + ul, s->up->pass, pl);
    s->out_len = 3 + ul + pl;
    s->out_off = 0;
}

/* A whole reply piece is in s->in. */
static socks5_result step_done(socks5_client *s)
{
    const uint8_t *in = s->in;
    switch (s->step) {
    case S5_GREETING:
        if (in[0] != VER)
            return fail(s, SOCKS5_E_VERSION);
        if (in[1] == M_REFUSED)
            return fail(s, SOCKS5_E_NO_METHOD);
        if (in[1] == M_USERPASS && s->up->has_auth) {
            queue_auth(s);
            expect(s, S5_AUTH, 2);
            return SOCKS5_NEED_MORE;
        }
        if (in[1] != M_NONE)
            return fail(s, SOCKS5_E_BAD_METHOD);
        queue(s, s->connect_req, s->connect_len);
        expect(s, S5_REPLY_HEAD, 4);
        return SOCKS5_NEED_MORE;
    case S5_AUTH:
        /* RFC 1929 says version 1; some servers answer 5. Status decides. */
        if (in[1] != 0)
            return fail(s, SOCKS5_E_AUTH);
        queue(s, s->connect_req, s->connect_len);
        expect(s, S5_REPLY_HEAD, 4);
        return SOCKS5_NEED_MORE;
    case S5_REPLY_HEAD:
        if (in[0] != VER)
            return fail(s, SOCKS5_E_VERSION);
        if (in[1] != 0) {
            s->rep = in[1];
            return fail(s, SOCKS5_E_REFUSED);
        }
        if (in[2] != 0)
            return fail(s, SOCKS5_E_BAD_REPLY);
        if (in[3] == ATYP_V4)
            s->skip = 4 + 2;
        else if (in[3] == ATYP_V6)
            s->skip = 16 + 2;
        else if (in[3] == ATYP_NAME && s->in_need == 4) {
            s->in_need = 5;   /* the name's length byte comes next */
            return SOCKS5_NEED_MORE;
        } else if (in[3] == ATYP_NAME)
            s->skip = (size_t)in[4] + 2;
        else
            return fail(s, SOCKS5_E_BAD_REPLY);
        s->step = S5_REPLY_ADDR;
        return SOCKS5_NEED_MORE;
    default:
        return fail(s, SOCKS5_E_BAD_REPLY);
    }
}

socks5_result socks5_input(socks5_client *s, const uint8_t *in, size_t len)
{
    while (len > 0) {
        if (s->step == S5_DONE || s->step == S5_FAILED || s->out_len)
            return fail(s, SOCKS5_E_BAD_REPLY);   /* bytes nobody asked for */
        if (s->step == S5_REPLY_ADDR) {
            size_t take = len < s->skip ? len : s->skip;
            s->skip -= take;
            in += take;
            len -= take;
            if (s->skip == 0) {
                s->step = S5_DONE;
                if (len > 0)
                    return fail(s, SOCKS5_E_BAD_REPLY);
                return SOCKS5_DONE;
            }
            continue;
        }
        size_t take = s->in_need - s->in_have;
        if (take > len)
            take = len;
        memcpy(s->in + s->in_have, in, take);
        s->in_have += take;
        in += take;
        len -= take;
        if (s->in_have == s->in_need) {
            socks5_result r = step_done(s);
            if (r != SOCKS5_NEED_MORE)
                return r;
        }
    }
    if (s->step == S5_REPLY_ADDR && s->skip == 0) {
        s->step = S5_DONE;
        return SOCKS5_DONE;
    }
    return s->step == S5_FAILED ? SOCKS5_FAIL : SOCKS5_NEED_MORE;
}

void socks5_wipe(socks5_client *s)
{
    crypto_wipe(s->out, sizeof s->out);
}
