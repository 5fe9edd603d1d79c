/* socks5: the client side of SOCKS5 (RFC 1928, RFC 1929 user/password) for
 * Telegram dials through an upstream proxy ([network] proxies), and the
 * proxy URL parser.
 *
 * Pure: no I/O. The caller connects to the proxy, then loops:
 *   socks5_pending() bytes to write -> socks5_sent(n);
 *   socks5_want() bytes to read (exactly that many, so nothing after the
 *   proxy's reply is ever read here) -> socks5_input().
 * until socks5_input says SOCKS5_DONE (the socket is now a tunnel to the
 * target) or SOCKS5_FAIL (socks5_error_str(s->error) names why). */
#ifndef TGF_SOCKS5_H
#define TGF_SOCKS5_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SOCKS5_HOST_MAX 255
#define SOCKS5_CRED_MAX 255       /* RFC 1929: one length byte each */
#define SOCKS5_DEFAULT_PORT 1080  /* mtg's default */

typedef struct {
    char host[SOCKS5_HOST_MAX + 1];   /* IP literal or hostname, no brackets */
    uint16_t port;
    int remote_dns;                   /* socks5h: the proxy resolves names (we
                                       * send IP addresses either way) */
    int has_auth;
    char user[SOCKS5_CRED_MAX + 1];
    char pass[SOCKS5_CRED_MAX + 1];
} socks5_upstream;

/* Parses "socks5://[user[:pass]@]host[:port]" or "socks5h://...", host an IP
 * (IPv6 in brackets) or a name; user and password may be percent-encoded.
 * Returns 0, or -1 with a short reason in *why (static text). */
int socks5_parse_url(const char *url, socks5_upstream *out, const char **why);

typedef enum {
    SOCKS5_NEED_MORE,    /* write socks5_pending(), read socks5_want() */
    SOCKS5_DONE,         /* tunnel established */
    SOCKS5_FAIL
} socks5_result;

typedef enum {
    SOCKS5_E_NONE,
    SOCKS5_E_VERSION,        /* the reply is not SOCKS5 */
    SOCKS5_E_NO_METHOD,      /* the proxy accepts none of our methods (0xff) */
    SOCKS5_E_BAD_METHOD,     /* it chose a method we did not offer */
    SOCKS5_E_AUTH,           /* user/password refused */
    SOCKS5_E_REFUSED,        /* CONNECT failed: rep != 0 (see s->rep) */
    SOCKS5_E_BAD_REPLY,      /* reserved byte or address type invalid */
    SOCKS5_E_COUNT
} socks5_error;

const char *socks5_error_str(socks5_error e);
/* RFC 1928's text for a CONNECT reply code ("connection refused"...). */
const char *socks5_rep_str(uint8_t rep);

typedef enum {
    S5_GREETING,     /* reading the method choice (2 bytes) */
    S5_AUTH,         /* reading the user/password status (2 bytes) */
    S5_REPLY_HEAD,   /* reading VER REP RSV ATYP (4 bytes), plus a name's length */
    S5_REPLY_ADDR,   /* reading the bound address and port */
    S5_DONE,
    S5_FAILED
} socks5_step;

typedef struct {
    socks5_step step;
    socks5_error error;
    uint8_t rep;                 /* the CONNECT reply code, for messages */
    const socks5_upstream *up;
    uint8_t connect_req[22];     /* VER CMD RSV ATYP addr port, built at start */
    size_t connect_len;
    uint8_t out[3 + 2 * SOCKS5_CRED_MAX + 1];
    size_t out_len, out_off;
    uint8_t in[4 + 1];           /* reply head and a name's length byte */
    size_t in_have, in_need;
    size_t skip;                 /* bound address bytes still to read */
} socks5_client;

/* Starts a handshake toward target (IPv4 or IPv6, port set) through up,
 * which must outlive s. The greeting is pending at once. */
void socks5_begin(socks5_client *s, const socks5_upstream *up, const struct sockaddr *target);
/* Bytes to write now (NULL and 0 when nothing is pending). */
const uint8_t *socks5_pending(const socks5_client *s, size_t *len);
void socks5_sent(socks5_client *s, size_t n);
/* How many bytes to read next (0 while something is pending or when done). */
size_t socks5_want(const socks5_client *s);
/* Feeds up to socks5_want() bytes read from the proxy. */
socks5_result socks5_input(socks5_client *s, const uint8_t *in, size_t len);
/* Clears the copies of the password the client holds. */
void socks5_wipe(socks5_client *s);

#endif
