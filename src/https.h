/* https: a small blocking HTTPS/1.0 client over BearSSL, with the server's
 * certificate verified for the host name. For the list fetcher's thread and
 * for doctor only: it blocks, so it never runs on the event loop. */
#ifndef TGF_HTTPS_H
#define TGF_HTTPS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "tlstrust.h"

typedef enum {
    HTTPS_OK,
    HTTPS_E_CONNECT,   /* name, TCP connect or socket I/O before TLS */
    HTTPS_E_TLS,       /* the peer does not complete a TLS handshake */
    HTTPS_E_CERT,      /* handshake refused over its certificate */
    HTTPS_E_HTTP       /* TLS fine, but no usable HTTP answer */
} https_status;

typedef struct {
    int status;          /* HTTP status code, 0 when none was read */
    time_t date;         /* the Date header as Unix time; 0 when absent */
    char *body;          /* malloc'd, NUL-terminated; NULL when not asked */
    size_t body_len;
} https_response;

/* Parses "https://host[:port][/path]": host without brackets (IPv6 in
 * brackets in the URL), port 443 by default, path "/" by default.
 * Returns 0 or -1. */
int https_parse_url(const char *url, char *host, size_t host_cap, uint16_t *port,
                    char *path, size_t path_cap);

/* Over fd, a connected blocking socket (its timeouts set by the caller):
 * TLS with SNI host, the certificate chain checked against t for host;
 * then sends request (a whole HTTP/1.0 request) and reads the answer until
 * the server closes. With max_body > 0 the body is kept (at most max_body
 * bytes, else HTTPS_E_HTTP). Returns HTTPS_OK or why not, with err set. */
https_status https_exchange(int fd, const char *host, const tlstrust *t, const char *request,
                            size_t max_body, https_response *r, char *err, size_t err_cap);

/* GET url: resolve, connect (timeout_ms for the connect and each read),
 * exchange. HTTPS_OK needs status 200..299. The caller frees r->body. */
https_status https_get(const char *url, const tlstrust *t, unsigned timeout_ms,
                       size_t max_body, https_response *r, char *err, size_t err_cap);

/* Sets SO_RCVTIMEO and SO_SNDTIMEO. */
void https_set_timeouts(int fd, unsigned timeout_ms);

/* BearSSL's X.509 error codes as text ("not trusted", "expired", ...). */
const char *https_x509_error_str(int code);

#endif
