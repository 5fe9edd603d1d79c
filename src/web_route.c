/* web_route: the bridge, carrier and site decisions. */
#include "web_route.h"

#include <string.h>

#include "web_page.h"
#include "web_ws.h"

static int host_ok(const web_route_cfg *c, const web_http_req *r)
{
    if (r->host_count != 1)
        return 0;
    size_t hl = strlen(c->host);
    web_str h = r->host;
    if (h.n == hl + 4 && memcmp(h.p + hl, ":443", 4) == 0)
        h.n = hl;
    return web_str_ieq(h, c->host);
}

/* Any authentic capability among the query's bridge= values. */
static int any_authentic(const web_route_cfg *c, web_str q)
{
    int found = -1;
    size_t i = 0;
    while (i <= q.n) {
        size_t s = i;
        while (i < q.n && q.p[i] != '&')
            i++;
        web_str kv = { q.p + s, i - s };
        if (kv.n > 7 && memcmp(kv.p, "bridge=", 7) == 0) {
            int m = web_cap_match(c->caps, c->ncaps, kv.p + 7, kv.n - 7);
            if (m >= 0 && found < 0)
                found = m;
        }
        i++;
    }
    return found;
}

web_route_kind web_route(const web_route_cfg *c, const web_http_req *r, int *cap_index,
                         web_str *token)
{
    *cap_index = -1;
    token->p = NULL;
    token->n = 0;
    int get = web_str_eq(r->method, "GET");

    if (r->has_query) {
        int m = any_authentic(c, r->query);
        if (m >= 0) {
            *cap_index = m;
            int exact = get && web_str_eq(r->path, "/") && r->query.n == 7 + WEB_CAP_LEN &&
                        memcmp(r->query.p, "bridge=", 7) == 0 &&
                        web_cap_canonical(r->query.p + 7, WEB_CAP_LEN) && host_ok(c, r) &&
                        !r->has_body;
            return exact ? WR_BRIDGE : WR_NOT_FOUND;
        }
        return WR_SITE;
    }

    size_t pl = strlen(WEB_SUBPROTO_PREFIX);
    if (get && web_str_eq(r->path, c->ws_path) && host_ok(c, r) && !r->has_body &&
        r->upgrade_websocket && r->connection_upgrade && web_str_eq(r->ws_version, "13") &&
        ws_key_valid(r->ws_key.p, r->ws_key.n) && r->proto_count == 1 &&
        r->proto.n == pl + WEB_TOKEN_LEN && memcmp(r->proto.p, WEB_SUBPROTO_PREFIX, pl) == 0) {
        if (r->origin.n) {
            /* A browser always sends Origin: it must be the bridge's. */
            size_t hl = strlen(c->host);
            if (!(r->origin.n == 8 + hl && memcmp(r->origin.p, "https://", 8) == 0 &&
                  web_str_ieq((web_str){ r->origin.p + 8, hl }, c->host)))
                return WR_SITE;
        }
        token->p = r->proto.p + pl;
        token->n = WEB_TOKEN_LEN;
        return WR_WS;
    }
    return WR_SITE;
}
