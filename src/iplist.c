/* iplist: networks as sorted, disjoint ranges [lo, hi]. */
#include "iplist.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct iplist {
    _Atomic unsigned long refs;   /* workers share one list (iplist_hold) */
    iplist_range4 *v4;
    size_t n4;
    iplist_range6 *v6;
    size_t n6;
    size_t entries;
};

typedef unsigned __int128 u128;

void iplist_builder_init(iplist_builder *b) { memset(b, 0, sizeof *b); }

void iplist_builder_free(iplist_builder *b)
{
    free(b->v4);
    free(b->v6);
    memset(b, 0, sizeof *b);
}

static int grow(void **p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 256;
    void *q = realloc(*p, ncap * size);
    if (!q)
        return -1;
    *p = q;
    *cap = ncap;
    return 0;
}

static u128 load128(const uint8_t *b)
{
    u128 v = 0;
    for (int i = 0; i < 16; i++)
        v = (v << 8) | b[i];
    return v;
}

int iplist_builder_add(iplist_builder *b, const char *text)
{
    char addr[64];
    const char *slash = strchr(text, '/');
    size_t alen = slash ? (size_t)(slash - text) : strlen(text);
    if (alen == 0 || alen >= sizeof addr)
        return -1;
    memcpy(addr, text, alen);
    addr[alen] = '\0';
    int v6 = strchr(addr, ':') != NULL;
    long bits = v6 ? 128 : 32;
    if (slash) {
        const char *p = slash + 1;
        long n = 0;
        if (*p == '\0' || strlen(p) > 3)
            return -1;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                return -1;
            n = n * 10 + (*p - '0');
        }
        if (n > bits)
            return -1;
        bits = n;
    }
    if (!v6) {
        struct in_addr a;
        if (inet_pton(AF_INET, addr, &a) != 1)
            return -1;
        uint32_t ip = ntohl(a.s_addr);
        uint32_t mask = bits == 0 ? 0 : 0xffffffffu << (32 - bits);
        if (grow((void **)&b->v4, &b->cap4, b->n4, sizeof *b->v4) < 0) {
            b->oom = 1;
            return -1;
        }
        /* Host bits set in "1.2.3.4/24" are ignored, as Go's ParseCIDR does. */
        b->v4[b->n4++] = (iplist_range4){ ip & mask, (ip & mask) | ~mask };
    } else {
        struct in6_addr a;
        if (inet_pton(AF_INET6, addr, &a) != 1)
            return -1;
        u128 ip = load128(a.s6_addr);
        u128 mask = bits == 0 ? 0 : ~(u128)0 << (128 - bits);
        if (grow((void **)&b->v6, &b->cap6, b->n6, sizeof *b->v6) < 0) {
            b->oom = 1;
            return -1;
        }
        b->v6[b->n6++] = (iplist_range6){ ip & mask, (ip & mask) | ~mask };
    }
    b->entries++;
    return 0;
}

size_t iplist_builder_add_netset(iplist_builder *b, const char *text, size_t len,
                                 size_t *bad_line)
{
    size_t added = 0, line = 0;
    *bad_line = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        line++;
        const char *hash = memchr(p, '#', (size_t)(le - p));
        const char *ce = hash ? hash : le;
        while (p < ce && (*p == ' ' || *p == '\t' || *p == '\r'))
            p++;
        while (ce > p && (ce[-1] == ' ' || ce[-1] == '\t' || ce[-1] == '\r'))
            ce--;
        if (ce > p) {
            char entry[80];
            size_t n = (size_t)(ce - p);
            if (n >= sizeof entry) {
                *bad_line = line;
                return added;
            }
            memcpy(entry, p, n);
            entry[n] = '\0';
            if (iplist_builder_add(b, entry) < 0) {
                *bad_line = line;
                return added;
            }
            added++;
        }
        p = nl ? nl + 1 : end;
    }
    return added;
}

static int cmp4(const void *a, const void *b)
{
    const iplist_range4 *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static int cmp6(const void *a, const void *b)
{
    const iplist_range6 *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Sorts by start and merges overlapping and adjacent ranges in place. */
static size_t merge4(iplist_range4 *r, size_t n)
{
    if (n == 0)
        return 0;
    qsort(r, n, sizeof *r, cmp4);
    size_t out = 0;
    for (size_t i = 1; i < n; i++) {
        if (r[out].hi == UINT32_MAX || r[i].lo <= r[out].hi + 1) {
            if (r[i].hi > r[out].hi)
                r[out].hi = r[i].hi;
        } else {
            r[++out] = r[i];
        }
    }
    return out + 1;
}

static size_t merge6(iplist_range6 *r, size_t n)
{
    if (n == 0)
        return 0;
    qsort(r, n, sizeof *r, cmp6);
    size_t out = 0;
    for (size_t i = 1; i < n; i++) {
        if (r[out].hi == ~(u128)0 || r[i].lo <= r[out].hi + 1) {
            if (r[i].hi > r[out].hi)
                r[out].hi = r[i].hi;
        } else {
            r[++out] = r[i];
        }
    }
    return out + 1;
}

iplist *iplist_build(iplist_builder *b)
{
    iplist *l = calloc(1, sizeof *l);
    if (!l || b->oom) {
        free(l);
        iplist_builder_free(b);
        return NULL;
    }
    l->n4 = merge4(b->v4, b->n4);
    l->n6 = merge6(b->v6, b->n6);
    l->v4 = b->v4;
    l->v6 = b->v6;
    l->entries = b->entries;
    atomic_init(&l->refs, 1);
    memset(b, 0, sizeof *b);   /* the arrays are the list's now */
    return l;
}

iplist *iplist_hold(iplist *l)
{
    if (l)
        atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
    return l;
}

void iplist_free(iplist *l)
{
    if (!l || atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(l->v4);
    free(l->v6);
    free(l);
}

size_t iplist_entries(const iplist *l) { return l ? l->entries : 0; }
size_t iplist_ranges(const iplist *l) { return l ? l->n4 + l->n6 : 0; }

/* The last range starting at or below ip, then its end. */
static int find4(const iplist *l, uint32_t ip)
{
    size_t lo = 0, hi = l->n4;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->v4[mid].lo <= ip)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && ip <= l->v4[lo - 1].hi;
}

static int find6(const iplist *l, u128 ip)
{
    size_t lo = 0, hi = l->n6;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->v6[mid].lo <= ip)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && ip <= l->v6[lo - 1].hi;
}

int iplist_contains(const iplist *l, const struct sockaddr *sa)
{
    if (!l)
        return 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        return find4(l, ntohl(a->sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
            uint32_t ip;
            memcpy(&ip, a->sin6_addr.s6_addr + 12, 4);
            return find4(l, ntohl(ip));
        }
        return find6(l, load128(a->sin6_addr.s6_addr));
    }
    return 0;
}
