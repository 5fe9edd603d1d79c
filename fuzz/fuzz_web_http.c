/* Fuzzes the WEB listener's HTTP head parser and the routing on top of it:
 * any bytes, parsed whole and at a split given by the first byte; the two
 * must agree, views must stay inside the input, and a route is always one
 * of the four answers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "web_cap.h"
#include "web_http.h"
#include "web_route.h"

static void inside(web_str s, const char *b, size_t n)
{
    if (s.n && (s.p < b || s.p + s.n > b + n))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t n = size - 1;
    char *b = malloc(n ? n : 1);
    memcpy(b, data + 1, n);
    web_http_req r, r2;
    web_http_reason why, why2;
    web_http_result res = web_http_parse(b, n, &r, &why);
    size_t cut = n ? data[0] % (n + 1) : 0;
    web_http_result pre = web_http_parse(b, cut, &r2, &why2);
    /* A prefix never succeeds with a longer head than the whole. */
    if (pre == WH_OK && (res != WH_OK || r2.head_len != r.head_len))
        abort();
    if (res == WH_OK) {
        if (r.head_len > n || r.head_len < 4 || memcmp(b + r.head_len - 4, "\r\n\r\n", 4))
            abort();
        inside(r.method, b, n);
        inside(r.target, b, n);
        inside(r.host, b, n);
        inside(r.proto, b, n);
        inside(r.xff_last, b, n);
        static web_cap_entry caps[1] = { { "IpJrt3e7sKtzPyoXy6w-Zj6GGEvsvclN66JzQEfPYLA", { 0 },
                                           WEB_CAP_PADDED } };
        web_route_cfg c = { "proxy.example.com", "/api/v1/socket", caps, 1 };
        int ci;
        web_str tok;
        web_route_kind k = web_route(&c, &r, &ci, &tok);
        if (k != WR_SITE && k != WR_BRIDGE && k != WR_WS && k != WR_NOT_FOUND)
            abort();
        if ((k == WR_BRIDGE || k == WR_NOT_FOUND) && ci != 0)
            abort();
        if (k == WR_WS && (tok.n != WEB_TOKEN_LEN))
            abort();
    } else if (res == WH_BAD && why == WH_R_NONE) {
        abort();
    }
    free(b);
    return 0;
}
