/* web_http: a strict HTTP/1.1 request-head parser for the WEB proxy's
 * loopback listener (pure; no I/O, no allocation).
 *
 * Only Caddy talks to this listener, so anything a well-behaved proxy never
 * sends is refused rather than guessed at: bare LF, obs-fold, whitespace
 * before a colon, non-token names, control bytes, versions other than
 * HTTP/1.1, conflicting Content-Length, Content-Length together with
 * Transfer-Encoding (request smuggling). Views point into the caller's
 * buffer. */
#ifndef TGF_WEB_HTTP_H
#define TGF_WEB_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define WEB_HTTP_HEAD_MAX 16384
#define WEB_HTTP_HEADERS_MAX 100

typedef struct {
    const char *p;
    size_t n;
} web_str;

typedef enum {
    WH_R_NONE = 0,
    WH_R_TOO_LONG,      /* head longer than WEB_HTTP_HEAD_MAX */
    WH_R_LINE,          /* request line malformed */
    WH_R_VERSION,       /* not HTTP/1.1 */
    WH_R_HEADER,        /* a header line malformed (bare LF, fold, bytes) */
    WH_R_TOO_MANY,      /* more than WEB_HTTP_HEADERS_MAX headers */
    WH_R_LENGTH,        /* Content-Length malformed or conflicting, or with TE */
    WH_R_COUNT
} web_http_reason;

const char *web_http_reason_name(web_http_reason r);

typedef struct {
    web_str method, target, path, query;  /* query without '?'; path + query = target */
    int has_query;
    size_t head_len;                      /* bytes up to and including CRLFCRLF */

    unsigned host_count;
    web_str host;
    unsigned proto_count;
    web_str proto;                        /* Sec-WebSocket-Protocol */
    web_str ws_key, ws_version, origin;
    int upgrade_websocket;                /* Upgrade lists "websocket" */
    int connection_upgrade;               /* Connection lists "upgrade" */
    int connection_close;                 /* Connection lists "close" */
    web_str xff_last;                     /* right-most X-Forwarded-For entry of the last line */
    int has_cookie;
    int has_body;                         /* Content-Length > 0 or Transfer-Encoding */
    uint64_t content_length;
} web_http_req;

typedef enum { WH_NEED_MORE, WH_OK, WH_BAD } web_http_result;

/* Parses the head at buf[0..len). WH_OK: *req filled, req->head_len bytes
 * are the head. WH_NEED_MORE: no CRLFCRLF yet (and len is within the
 * limit). WH_BAD: *why says what. */
web_http_result web_http_parse(const char *buf, size_t len, web_http_req *req,
                               web_http_reason *why);

/* 1 when a comma-separated header value lists token (case-insensitive). */
int web_http_list_has(web_str value, const char *token);

/* 1 when s equals text exactly / case-insensitively. */
int web_str_eq(web_str s, const char *text);
int web_str_ieq(web_str s, const char *text);

#endif
