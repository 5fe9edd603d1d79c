/* Fuzzes the SOCKS5 client: the first byte picks auth or not, the rest is
 * the proxy's replies, fed in pieces no larger than socks5_want() asks for.
 * Invariants: the client never asks for more than its buffers hold, never
 * has output pending and input wanted at once, ends DONE only after a
 * whole CONNECT reply, and FAIL always names an error. Also fuzzes the URL
 * parser with the same bytes. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "socks5.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char url[600];
    size_t ul = size < sizeof url - 1 ? size : sizeof url - 1;
    memcpy(url, data, ul);
    url[ul] = '\0';
    socks5_upstream parsed;
    const char *why = NULL;
    if (socks5_parse_url(url, &parsed, &why) == 0) {
        if (parsed.host[0] == '\0' || parsed.port == 0)
            abort();
    } else if (why == NULL) {
        abort();
    }

    if (size == 0)
        return 0;
    socks5_upstream up;
    if (socks5_parse_url(data[0] & 1 ? "socks5://user:pass@127.0.0.1" : "socks5://127.0.0.1",
                         &up, &why) != 0)
        abort();
    struct sockaddr_in6 t;
    memset(&t, 0, sizeof t);
    t.sin6_family = AF_INET6;
    t.sin6_port = htons(443);
    if (data[0] & 2)
        inet_pton(AF_INET6, "2001:db8::1", &t.sin6_addr);
    else
        ((struct sockaddr_in *)&t)->sin_family = AF_INET;
    socks5_client s;
    socks5_begin(&s, &up, (struct sockaddr *)&t);
    size_t off = 1;
    socks5_result r = SOCKS5_NEED_MORE;
    while (r == SOCKS5_NEED_MORE) {
        size_t len;
        const uint8_t *out = socks5_pending(&s, &len);
        if (out) {
            if (socks5_want(&s) != 0 || len > sizeof s.out)
                abort();
            socks5_sent(&s, len);
            continue;
        }
        size_t want = socks5_want(&s);
        if (want == 0 || want > 257)
            abort();
        if (off == size)
            return 0;
        size_t n = 1 + data[off] % want;   /* a piece size, then the piece */
        off++;
        if (n > size - off)
            n = size - off;
        if (n == 0)
            return 0;
        r = socks5_input(&s, data + off, n);
        off += n;
    }
    if (r == SOCKS5_FAIL && s.error == SOCKS5_E_NONE)
        abort();
    if (r == SOCKS5_DONE && (s.step != S5_DONE || socks5_want(&s) != 0))
        abort();
    return 0;
}
