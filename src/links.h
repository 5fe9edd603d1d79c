/* links: the pieces every printed proxy link is made of (`access`, `links`):
 * percent-encoding for query values and the WEB proxy link's query. */
#ifndef TGF_LINKS_H
#define TGF_LINKS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Percent-encodes everything but RFC 3986 unreserved characters into out
 * (always terminated; stops before a character that would not fit). */
void links_url_encode(const char *in, char *out, size_t cap);

/* The port the links name: the listener's, or --port TEXT when given
 * (1..65535). 0, or -1 when TEXT is not a port. */
int links_port(const tgf_config *cfg, const char *text, unsigned *port);

/* The WEB proxy link (tg://webproxy) of one 16-byte key: the bridge's
 * hostname in lower case (never an IP: the WebView needs the site's
 * certificate; no port: always 443) into host, the key as a dd secret into
 * sec (LINKS_WEB_SECRET_LEN + 1 bytes), and "server=...&secret=..." into
 * query. The caller wipes sec and query. */
#define LINKS_WEB_SECRET_LEN (2 + 2 * SECRET_KEY_LEN)
void links_web(const tgf_config *cfg, const uint8_t *key, char *host, size_t host_cap,
               char sec[LINKS_WEB_SECRET_LEN + 1], char *query, size_t query_cap);

#endif
