/* https: BearSSL's full client profile over a blocking socket. */
#include "https.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "netutil.h"

#define HTTPS_HEAD_MAX 16384

const char *https_x509_error_str(int code)
{
    switch (code) {
    case BR_ERR_X509_EXPIRED: return "the certificate has expired or is not yet valid";
    case BR_ERR_X509_BAD_SERVER_NAME: return "the certificate is not valid for this host name";
    case BR_ERR_X509_NOT_TRUSTED: return "the certificate chain does not lead to a trusted CA";
    case BR_ERR_X509_EMPTY_CHAIN: return "the server sent no certificate";
    case BR_ERR_X509_BAD_SIGNATURE: return "a signature in the chain does not verify";
    case BR_ERR_X509_NOT_CA: return "an intermediate certificate is not a CA";
    case BR_ERR_X509_WEAK_PUBLIC_KEY: return "the certificate's key is too weak";
    case BR_ERR_X509_TIME_UNKNOWN: return "the current time is unknown";
    default: return "the certificate could not be validated";
    }
}

void https_set_timeouts(int fd, unsigned timeout_ms)
{
    struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

int https_parse_url(const char *url, char *host, size_t host_cap, uint16_t *port, char *path,
                    size_t path_cap)
{
    if (strncasecmp(url, "https://", 8) != 0)
        return -1;
    const char *p = url + 8, *h = p;
    size_t hlen;
    const char *after;
    if (*p == '[') {
        const char *close = strchr(p, ']');
        if (!close)
            return -1;
        h = p + 1;
        hlen = (size_t)(close - h);
        after = close + 1;
    } else {
        hlen = strcspn(p, ":/?#");
        after = p + hlen;
    }
    if (hlen == 0 || hlen >= host_cap)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = 443;
    if (*after == ':') {
        char *end;
        unsigned long v = strtoul(after + 1, &end, 10);
        if (end == after + 1 || v < 1 || v > 65535)
            return -1;
        *port = (uint16_t)v;
        after = end;
    }
    if (*after != '\0' && *after != '/' && *after != '?')
        return -1;
    const char *rest = *after ? after : "/";
    if (*rest == '?')
        return snprintf(path, path_cap, "/%s", rest) < (int)path_cap ? 0 : -1;
    return snprintf(path, path_cap, "%s", rest) < (int)path_cap ? 0 : -1;
}

static int sock_read(void *ctx, unsigned char *buf, size_t len)
{
    int fd = *(int *)ctx;
    for (;;) {
        ssize_t n = read(fd, buf, len);
        if (n > 0)
            return (int)n;
        if (n < 0 && errno == EINTR)
            continue;
        return -1;
    }
}

static int sock_write(void *ctx, const unsigned char *buf, size_t len)
{
    int fd = *(int *)ctx;
    for (;;) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n > 0)
            return (int)n;
        if (n < 0 && errno == EINTR)
            continue;
        return -1;
    }
}

/* The value of header name in head (NUL-terminated), or NULL. */
static const char *header_value(const char *head, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (const char *l = strstr(head, "\r\n"); l != NULL; l = strstr(l + 2, "\r\n")) {
        const char *h = l + 2;
        if (strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
            const char *v = h + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            const char *e = strstr(v, "\r\n");
            *len = e ? (size_t)(e - v) : strlen(v);
            return v;
        }
    }
    return NULL;
}

/* RFC 7231 IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT". */
static time_t parse_date(const char *v, size_t len)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    char text[64], mon[4];
    struct tm tm;
    int day, year, hh, mm, ss;
    if (len >= sizeof text)
        return 0;
    memcpy(text, v, len);
    text[len] = '\0';
    memset(&tm, 0, sizeof tm);
    if (sscanf(text, "%*3s, %2d %3s %4d %2d:%2d:%2d GMT", &day, mon, &year, &hh, &mm, &ss) != 6)
        return 0;
    const char *m = strstr(months, mon);
    if (!m || (m - months) % 3)
        return 0;
    tm.tm_mday = day;
    tm.tm_mon = (int)((m - months) / 3);
    tm.tm_year = year - 1900;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    return timegm(&tm);
}

/* BearSSL's "full" client minus what no current web server needs: TLS 1.2
 * only, ECDHE with AES-GCM or ChaCha20-Poly1305 (what Caddy, Go and every
 * CDN offer); no CBC, CCM, 3DES, static RSA/ECDH or TLS 1.0's PRF: about
 * 20 KB less in the static binary than br_ssl_client_init_full. */
static void client_init(br_ssl_client_context *cc, br_x509_minimal_context *xc,
                        const tlstrust *t)
{
    static const uint16_t suites[] = {
        BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    };
    /* SHA-1 stays for the X.509 engine: a few intermediates still use it. */
    static const struct { int id; const br_hash_class *hc; } hashes[] = {
        { br_sha1_ID, &br_sha1_vtable }, { br_sha224_ID, &br_sha224_vtable },
        { br_sha256_ID, &br_sha256_vtable }, { br_sha384_ID, &br_sha384_vtable },
        { br_sha512_ID, &br_sha512_vtable },
    };
    br_ssl_client_zero(cc);
    br_ssl_engine_set_versions(&cc->eng, BR_TLS12, BR_TLS12);
    br_x509_minimal_init(xc, &br_sha256_vtable, t->ta, t->count);
    br_ssl_engine_set_suites(&cc->eng, suites, sizeof suites / sizeof suites[0]);
    br_ssl_engine_set_default_rsavrfy(&cc->eng);
    br_ssl_engine_set_default_ecdsa(&cc->eng);
    br_x509_minimal_set_rsa(xc, br_ssl_engine_get_rsavrfy(&cc->eng));
    br_x509_minimal_set_ecdsa(xc, br_ssl_engine_get_ec(&cc->eng),
                              br_ssl_engine_get_ecdsa(&cc->eng));
    for (size_t i = 0; i < sizeof hashes / sizeof hashes[0]; i++) {
        br_ssl_engine_set_hash(&cc->eng, hashes[i].id, hashes[i].hc);
        br_x509_minimal_set_hash(xc, hashes[i].id, hashes[i].hc);
    }
    br_ssl_engine_set_x509(&cc->eng, &xc->vtable);
    br_ssl_engine_set_prf_sha256(&cc->eng, &br_tls12_sha256_prf);
    br_ssl_engine_set_prf_sha384(&cc->eng, &br_tls12_sha384_prf);
    br_ssl_engine_set_default_aes_gcm(&cc->eng);
    br_ssl_engine_set_default_chapol(&cc->eng);
}

typedef struct {
    char *p;
    size_t len, cap, max;
} growbuf;

static int grow_add(growbuf *b, const unsigned char *d, size_t n)
{
    if (b->len + n > b->max)
        return -1;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

https_status https_exchange(int fd, const char *host, const tlstrust *t, const char *request,
                            size_t max_body, https_response *r, char *err, size_t err_cap)
{
    memset(r, 0, sizeof *r);
    https_status st = HTTPS_OK;
    br_ssl_client_context *sc = malloc(sizeof *sc);
    br_x509_minimal_context *xc = malloc(sizeof *xc);
    unsigned char *iobuf = malloc(BR_SSL_BUFSIZE_BIDI);
    br_sslio_context io;
    growbuf all = { NULL, 0, 0, HTTPS_HEAD_MAX + max_body };
    if (!sc || !xc || !iobuf) {
        snprintf(err, err_cap, "out of memory");
        st = HTTPS_E_CONNECT;
        goto out;
    }
    client_init(sc, xc, t);
    br_ssl_engine_set_buffer(&sc->eng, iobuf, BR_SSL_BUFSIZE_BIDI, 1);
    br_ssl_client_reset(sc, host, 0);
    br_sslio_init(&io, &sc->eng, sock_read, &fd, sock_write, &fd);

    /* The request's first write drives the handshake. */
    if (br_sslio_write_all(&io, request, strlen(request)) < 0 || br_sslio_flush(&io) < 0) {
        int e = br_ssl_engine_last_error(&sc->eng);
        if (e >= BR_ERR_X509_OK && e < BR_ERR_X509_OK + 32) {
            snprintf(err, err_cap, "%s (BearSSL error %d)", https_x509_error_str(e), e);
            st = HTTPS_E_CERT;
        } else if (e == BR_ERR_IO) {
            snprintf(err, err_cap, "the connection closed during the TLS handshake");
            st = HTTPS_E_TLS;
        } else if (e >= BR_ERR_SEND_FATAL_ALERT) {
            snprintf(err, err_cap, "TLS handshake failed: we sent alert %d", e - BR_ERR_SEND_FATAL_ALERT);
            st = HTTPS_E_TLS;
        } else if (e >= BR_ERR_RECV_FATAL_ALERT) {
            snprintf(err, err_cap, "the server refused the handshake with TLS alert %d (no "
                     "certificate for this name?)", e - BR_ERR_RECV_FATAL_ALERT);
            st = HTTPS_E_TLS;
        } else {
            /* Version errors are what bytes that are not TLS look like. */
            snprintf(err, err_cap, "TLS handshake failed (BearSSL error %d%s)", e,
                     e == BR_ERR_UNSUPPORTED_VERSION || e == BR_ERR_BAD_VERSION
                         ? ": the answer is not TLS" : "");
            st = HTTPS_E_TLS;
        }
        goto out;
    }
    unsigned char chunk[4096];
    for (;;) {
        int n = br_sslio_read(&io, chunk, sizeof chunk);
        if (n <= 0)
            break;
        if (grow_add(&all, chunk, (size_t)n) < 0) {
            snprintf(err, err_cap, "the answer is larger than %zu bytes", all.max);
            st = HTTPS_E_HTTP;
            goto out;
        }
    }
    int clean = br_ssl_engine_last_error(&sc->eng) == BR_ERR_OK;
    char *body = all.p ? strstr(all.p, "\r\n\r\n") : NULL;
    if (!body || sscanf(all.p, "HTTP/%*d.%*d %d", &r->status) != 1) {
        snprintf(err, err_cap, "no HTTP answer after the TLS handshake");
        st = HTTPS_E_HTTP;
        goto out;
    }
    *body = '\0';
    body += 4;
    size_t vlen;
    const char *v = header_value(all.p, "Date", &vlen);
    if (v)
        r->date = parse_date(v, vlen);
    size_t blen = all.len - (size_t)(body - all.p);
    v = header_value(all.p, "Content-Length", &vlen);
    /* Without close_notify a truncated body would look complete: then the
     * Content-Length must match. */
    if (v ? strtoull(v, NULL, 10) != blen : !clean) {
        snprintf(err, err_cap, "the answer was cut short (%zu bytes of body)", blen);
        st = HTTPS_E_HTTP;
        goto out;
    }
    if (max_body > 0) {
        r->body = malloc(blen + 1);
        if (!r->body) {
            snprintf(err, err_cap, "out of memory");
            st = HTTPS_E_HTTP;
            goto out;
        }
        memcpy(r->body, body, blen);
        r->body[blen] = '\0';
        r->body_len = blen;
    }
out:
    free(all.p);
    free(iobuf);
    free(xc);
    free(sc);
    return st;
}

https_status https_get(const char *url, const tlstrust *t, unsigned timeout_ms,
                       size_t max_body, https_response *r, char *err, size_t err_cap)
{
    char host[256], path[1024], request[1400], why[300];
    uint16_t port;
    memset(r, 0, sizeof *r);
    if (https_parse_url(url, host, sizeof host, &port, path, sizeof path) < 0) {
        snprintf(err, err_cap, "not an https://host[:port]/path URL");
        return HTTPS_E_CONNECT;
    }
    dc_addr addrs[8];
    int n = net_resolve(host, port, addrs, 8, why, sizeof why);
    if (n < 0) {
        snprintf(err, err_cap, "%s", why);
        return HTTPS_E_CONNECT;
    }
    int fd = -1;
    for (int i = 0; i < n && fd < 0; i++) {
        /* A blocking connect honours SO_SNDTIMEO. */
        fd = socket(addrs[i].addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0) {
            https_set_timeouts(fd, timeout_ms);
            if (connect(fd, (const struct sockaddr *)&addrs[i].addr, addrs[i].len) < 0) {
                snprintf(why, sizeof why, "connect: %s", strerror(errno));
                close(fd);
                fd = -1;
            }
        }
    }
    if (fd < 0) {
        snprintf(err, err_cap, "%s", why);
        return HTTPS_E_CONNECT;
    }
    /* HTTP/1.0: no chunked encoding to undo; curl's user agent as mtg sends. */
    snprintf(request, sizeof request,
             "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n"
             "Connection: close\r\n\r\n", path, host);
    https_status st = https_exchange(fd, host, t, request, max_body, r, err, err_cap);
    close(fd);
    if (st == HTTPS_OK && (r->status < 200 || r->status > 299)) {
        snprintf(err, err_cap, "HTTP status %d", r->status);
        free(r->body);
        r->body = NULL;
        return HTTPS_E_HTTP;
    }
    return st;
}
