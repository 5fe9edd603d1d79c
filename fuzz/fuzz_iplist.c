/* Fuzzes the netset parser and the range list. Invariants: entries added
 * never exceed the lines; merging never adds ranges; every lookup agrees
 * with a linear scan over the ranges as parsed (before sorting and
 * merging), for addresses taken from the input and each range's edges. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "iplist.h"

static int scan4(const iplist_range4 *r, size_t n, uint32_t ip)
{
    for (size_t i = 0; i < n; i++)
        if (ip >= r[i].lo && ip <= r[i].hi)
            return 1;
    return 0;
}

static void probe(const iplist *l, const iplist_range4 *r, size_t n, uint32_t ip)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(ip);
    if (iplist_contains(l, (struct sockaddr *)&a) != scan4(r, n, ip))
        abort();
    struct sockaddr_in6 m;   /* the same address v4-mapped */
    memset(&m, 0, sizeof m);
    m.sin6_family = AF_INET6;
    m.sin6_addr.s6_addr[10] = m.sin6_addr.s6_addr[11] = 0xff;
    memcpy(m.sin6_addr.s6_addr + 12, &a.sin_addr, 4);
    if (iplist_contains(l, (struct sockaddr *)&m) != scan4(r, n, ip))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    iplist_builder b;
    iplist_builder_init(&b);
    size_t bad = 0;
    size_t added = iplist_builder_add_netset(&b, (const char *)data, size, &bad);
    size_t lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    if (added > lines || added != b.entries || (bad && bad > lines))
        abort();
    size_t n4 = b.n4;
    iplist_range4 *copy = malloc((n4 ? n4 : 1) * sizeof *copy);
    if (!copy) {
        iplist_builder_free(&b);
        return 0;
    }
    if (n4)
        memcpy(copy, b.v4, n4 * sizeof *copy);
    size_t before = b.n4 + b.n6;
    iplist *l = iplist_build(&b);
    if (!l) {
        free(copy);
        return 0;
    }
    if (iplist_ranges(l) > before || iplist_entries(l) != added)
        abort();
    for (size_t i = 0; i < n4 && i < 64; i++) {
        probe(l, copy, n4, copy[i].lo);
        probe(l, copy, n4, copy[i].hi);
        probe(l, copy, n4, copy[i].lo - 1);
        probe(l, copy, n4, copy[i].hi + 1);
    }
    for (size_t i = 0; i + 4 <= size && i < 256; i += 4) {
        uint32_t ip;
        memcpy(&ip, data + i, 4);
        probe(l, copy, n4, ip);
    }
    iplist_free(l);
    free(copy);
    return 0;
}
