/* Fuzzes proxyproto_parse. Invariants: INVALID always names a reason and
 * no other result does; OK consumes 1..len bytes and every
 * shorter prefix of the header is NEED_MORE; a parsed TCP header rebuilt
 * with proxyproto_v2_build parses back to the same addresses. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_storage s, d;
    size_t consumed = 12345;
    int local = 0;

    proxyproto_reason why = PROXYPROTO_R_V1_FIELDS;
    proxyproto_result r = proxyproto_parse_why(data, size, &consumed, &s, &d, &local, &why);
    if ((r == PROXYPROTO_INVALID) != (why != PROXYPROTO_R_NONE))
        abort();
    if (r != PROXYPROTO_OK) {
        if (consumed != 0)
            abort();
        return 0;
    }
    if (consumed == 0 || consumed > size || consumed > PROXYPROTO_V2_MAX_LEN)
        abort();

    for (size_t i = 0; i < consumed; i++) {
        size_t c;
        if (proxyproto_parse(data, i, &c, NULL, NULL, NULL) != PROXYPROTO_NEED_MORE)
            abort();
    }
    size_t c2;
    if (proxyproto_parse(data, consumed, &c2, NULL, NULL, NULL) != PROXYPROTO_OK || c2 != consumed)
        abort();

    if (s.ss_family == AF_UNSPEC || d.ss_family == AF_UNSPEC) {
        if (s.ss_family != d.ss_family)
            abort();
        return 0;
    }
    uint8_t a[PROXYPROTO_V2_TCP6_LEN], b[PROXYPROTO_V2_TCP6_LEN];
    size_t na = proxyproto_v2_build(a, sizeof a, (struct sockaddr *)&s, (struct sockaddr *)&d);
    if (na == 0)
        abort();
    struct sockaddr_storage s2, d2;
    if (proxyproto_parse(a, na, &c2, &s2, &d2, &local) != PROXYPROTO_OK || c2 != na || local)
        abort();
    size_t nb = proxyproto_v2_build(b, sizeof b, (struct sockaddr *)&s2, (struct sockaddr *)&d2);
    if (nb != na || memcmp(a, b, na) != 0)
        abort();
    return 0;
}
