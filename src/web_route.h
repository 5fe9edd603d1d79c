/* web_route: which of the relay's answers a parsed request gets (pure).
 *
 *   BRIDGE     exactly GET /?bridge=CAP, one Host equal to the host (or
 *              host:443), CAP canonical and authentic
 *   WS         GET <ws-path> with no query, that Host, a valid WebSocket
 *              upgrade (version 13, a 16-byte key) and exactly one
 *              subprotocol "tproxy-v1.<43>"; the caller still has to find
 *              the token in its store (else: SITE)
 *   NOT_FOUND  an authentic capability in any other request (extra
 *              parameters, HEAD, another path): a local no-store 404, so it
 *              never reaches the site's caches or logs
 *   SITE       everything else: the site answers, as if we were not here */
#ifndef TGF_WEB_ROUTE_H
#define TGF_WEB_ROUTE_H

#include <stddef.h>

#include "web_cap.h"
#include "web_http.h"

typedef enum { WR_SITE, WR_BRIDGE, WR_WS, WR_NOT_FOUND } web_route_kind;

typedef struct {
    const char *host;            /* lower-case ACE */
    const char *ws_path;
    const web_cap_entry *caps;
    size_t ncaps;
} web_route_cfg;

/* *cap_index: the matched capability (BRIDGE, NOT_FOUND); *token: the
 * token text (WS). */
web_route_kind web_route(const web_route_cfg *c, const web_http_req *r, int *cap_index,
                         web_str *token);

#endif
