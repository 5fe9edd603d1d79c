/* web_http: request line and header fields, RFC 9112, strictly. */
#include "web_http.h"

#include <string.h>

const char *web_http_reason_name(web_http_reason r)
{
    switch (r) {
    case WH_R_NONE: return "none";
    case WH_R_TOO_LONG: return "head_too_long";
    case WH_R_LINE: return "request_line";
    case WH_R_VERSION: return "version";
    case WH_R_HEADER: return "header";
    case WH_R_TOO_MANY: return "too_many_headers";
    case WH_R_LENGTH: return "content_length";
    case WH_R_COUNT: break;
    }
    return "unknown";
}

int web_str_eq(web_str s, const char *text)
{
    size_t n = strlen(text);
    return s.n == n && memcmp(s.p, text, n) == 0;
}

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }

int web_str_ieq(web_str s, const char *text)
{
    size_t n = strlen(text);
    if (s.n != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower(s.p[i]) != lower(text[i]))
            return 0;
    return 1;
}

static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_ows(char c) { return c == ' ' || c == '\t'; }

int web_http_list_has(web_str v, const char *token)
{
    size_t i = 0;
    while (i < v.n) {
        while (i < v.n && (is_ows(v.p[i]) || v.p[i] == ','))
            i++;
        size_t start = i;
        while (i < v.n && v.p[i] != ',')
            i++;
        size_t end = i;
        while (end > start && is_ows(v.p[end - 1]))
            end--;
        web_str t = { v.p + start, end - start };
        if (t.n && web_str_ieq(t, token))
            return 1;
    }
    return 0;
}

/* The end of the head: the offset just past CRLFCRLF, or 0. A bare LF
 * anywhere before it is refused later, line by line. */
static size_t head_end(const char *b, size_t len)
{
    for (size_t i = 3; i < len; i++)
        if (b[i] == '\n' && b[i - 1] == '\r' && b[i - 2] == '\n' && b[i - 3] == '\r')
            return i + 1;
    return 0;
}

static web_http_result bad(web_http_reason *why, web_http_reason r)
{
    *why = r;
    return WH_BAD;
}

static int parse_u64(web_str s, uint64_t *out)
{
    uint64_t v = 0;
    if (s.n == 0 || s.n > 18)
        return -1;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s.p[i] - '0');
    }
    *out = v;
    return 0;
}

/* The request line: METHOD SP origin-form SP HTTP/1.1. */
static web_http_result parse_line(const char *p, size_t n, web_http_req *r, web_http_reason *why)
{
    size_t i = 0;
    while (i < n && p[i] >= 'A' && p[i] <= 'Z')
        i++;
    if (i == 0 || i > 16 || i >= n || p[i] != ' ')
        return bad(why, WH_R_LINE);
    r->method = (web_str){ p, i };
    size_t t = ++i;
    while (i < n && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7f)
        i++;
    if (i == t || i >= n || p[i] != ' ' || p[t] != '/')
        return bad(why, WH_R_LINE);
    r->target = (web_str){ p + t, i - t };
    web_str v = { p + i + 1, n - i - 1 };
    if (!web_str_eq(v, "HTTP/1.1"))
        return v.n == 8 && memcmp(v.p, "HTTP/", 5) == 0 ? bad(why, WH_R_VERSION)
                                                      : bad(why, WH_R_LINE);
    const char *q = memchr(r->target.p, '?', r->target.n);
    const char *h = memchr(r->target.p, '#', r->target.n);
    if (h)
        return bad(why, WH_R_LINE);   /* fragments never reach a server */
    if (q) {
        r->path = (web_str){ r->target.p, (size_t)(q - r->target.p) };
        r->query = (web_str){ q + 1, r->target.n - r->path.n - 1 };
        r->has_query = 1;
    } else {
        r->path = r->target;
    }
    return WH_OK;
}

static web_http_result take_header(web_str name, web_str val, web_http_req *r,
                                   web_http_reason *why, int *have_cl, int *have_te)
{
    if (web_str_ieq(name, "host")) {
        r->host_count++;
        r->host = val;
    } else if (web_str_ieq(name, "sec-websocket-protocol")) {
        r->proto_count++;
        r->proto = val;
    } else if (web_str_ieq(name, "sec-websocket-key")) {
        r->ws_key = val;
    } else if (web_str_ieq(name, "sec-websocket-version")) {
        r->ws_version = val;
    } else if (web_str_ieq(name, "origin")) {
        r->origin = val;
    } else if (web_str_ieq(name, "upgrade")) {
        r->upgrade_websocket |= web_http_list_has(val, "websocket");
    } else if (web_str_ieq(name, "connection")) {
        r->connection_upgrade |= web_http_list_has(val, "upgrade");
        r->connection_close |= web_http_list_has(val, "close");
    } else if (web_str_ieq(name, "cookie")) {
        r->has_cookie = 1;
    } else if (web_str_ieq(name, "x-forwarded-for")) {
        /* The right-most entry of the last line: what the nearest proxy
         * (ours) saw; anything to its left is the client's to invent. */
        size_t s = val.n;
        while (s > 0 && val.p[s - 1] != ',')
            s--;
        web_str e = { val.p + s, val.n - s };
        while (e.n && is_ows(e.p[0])) {
            e.p++;
            e.n--;
        }
        r->xff_last = e;
    } else if (web_str_ieq(name, "content-length")) {
        uint64_t v;
        if (parse_u64(val, &v) < 0 || (*have_cl && v != r->content_length))
            return bad(why, WH_R_LENGTH);
        *have_cl = 1;
        r->content_length = v;
    } else if (web_str_ieq(name, "transfer-encoding")) {
        *have_te = 1;
    }
    return WH_OK;
}

web_http_result web_http_parse(const char *buf, size_t len, web_http_req *r,
                               web_http_reason *why)
{
    memset(r, 0, sizeof *r);
    *why = WH_R_NONE;
    size_t scan = len < WEB_HTTP_HEAD_MAX ? len : WEB_HTTP_HEAD_MAX;
    size_t end = head_end(buf, scan);
    /* A bare LF is refused as soon as it arrives, not after a timeout. */
    int first_line = 1;
    for (size_t i = 0; i < (end ? end : scan); i++) {
        if (buf[i] != '\n')
            continue;
        if (i == 0 || buf[i - 1] != '\r')
            return bad(why, first_line ? WH_R_LINE : WH_R_HEADER);
        first_line = 0;
    }
    if (!end)
        return len >= WEB_HTTP_HEAD_MAX ? bad(why, WH_R_TOO_LONG) : WH_NEED_MORE;
    r->head_len = end;
    int have_cl = 0, have_te = 0;
    unsigned count = 0;
    size_t pos = 0;
    for (int first = 1;; first = 0) {
        const char *lf = memchr(buf + pos, '\n', end - pos);
        size_t eol = (size_t)(lf - buf);
        if (eol == pos || buf[eol - 1] != '\r')
            return bad(why, first ? WH_R_LINE : WH_R_HEADER);   /* bare LF */
        const char *p = buf + pos;
        size_t n = eol - 1 - pos;
        pos = eol + 1;
        if (first) {
            if (parse_line(p, n, r, why) != WH_OK)
                return WH_BAD;
            continue;
        }
        if (n == 0)
            break;   /* the empty line */
        if (++count > WEB_HTTP_HEADERS_MAX)
            return bad(why, WH_R_TOO_MANY);
        size_t i = 0;
        while (i < n && is_tchar((unsigned char)p[i]))
            i++;
        if (i == 0 || i >= n || p[i] != ':')
            return bad(why, WH_R_HEADER);   /* also obs-fold and space before ':' */
        web_str name = { p, i };
        size_t v = i + 1, ve = n;
        while (v < n && is_ows(p[v]))
            v++;
        while (ve > v && is_ows(p[ve - 1]))
            ve--;
        for (size_t k = v; k < ve; k++) {
            unsigned char c = (unsigned char)p[k];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return bad(why, WH_R_HEADER);
        }
        if (take_header(name, (web_str){ p + v, ve - v }, r, why, &have_cl, &have_te) != WH_OK)
            return WH_BAD;
    }
    if (have_cl && have_te)
        return bad(why, WH_R_LENGTH);
    r->has_body = have_te || r->content_length > 0;
    return WH_OK;
}
