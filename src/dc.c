/* dc: Telegram datacenter addresses. The built-in table is mtg's
 * (essentials/addresses.go), all on port 443. */
#include "dc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DC_PORT 443
#define DC_DEFAULT 2

typedef struct {
    int dc;
    const char *v4[2];   /* NULL-terminated when shorter */
    const char *v6[1];
} dc_builtin;

static const dc_builtin builtin[] = {
    { 1, { "149.154.175.50", NULL }, { "2001:b28:f23d:f001::a" } },
    { 2, { "149.154.167.51", "95.161.76.100" }, { "2001:67c:04e8:f002::a" } },
    { 3, { "149.154.175.100", NULL }, { "2001:b28:f23d:f003::a" } },
    { 4, { "149.154.167.91", NULL }, { "2001:67c:04e8:f004::a" } },
    { 5, { "149.154.171.5", NULL }, { "2001:b28:f23f:f005::a" } },
    { 203, { "91.105.192.100", NULL }, { "2a0a:f280:0203:000a:5000:0000:0000:0100" } },
};

static const char *const prefer_names[] = {
    [DC_PREFER_IPV6] = "prefer-ipv6",
    [DC_PREFER_IPV4] = "prefer-ipv4",
    [DC_ONLY_IPV6] = "only-ipv6",
    [DC_ONLY_IPV4] = "only-ipv4",
};

int dc_prefer_parse(const char *text, dc_prefer *out)
{
    for (size_t i = 0; i < sizeof prefer_names / sizeof prefer_names[0]; i++) {
        if (strcasecmp(text, prefer_names[i]) == 0) {
            *out = (dc_prefer)i;
            return 0;
        }
    }
    return -1;
}

const char *dc_prefer_name(dc_prefer p)
{
    if ((unsigned)p < sizeof prefer_names / sizeof prefer_names[0])
        return prefer_names[p];
    return "unknown";
}

static const dc_builtin *find_builtin(int dc)
{
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
        if (builtin[i].dc == dc)
            return &builtin[i];
    return NULL;
}

/* An override with no addresses is treated as absent, so it can never make
 * a DC undialable by accident. */
static const dc_override *find_override(const dc_table *t, int dc)
{
    for (size_t i = 0; i < t->override_count && i < DC_MAX_OVERRIDES; i++)
        if (t->overrides[i].dc == dc && t->overrides[i].count > 0)
            return &t->overrides[i];
    return NULL;
}

static int dc_known(const dc_table *t, int dc)
{
    return find_builtin(dc) != NULL || find_override(t, dc) != NULL;
}

int dc_resolve(const dc_table *t, int16_t raw_dc)
{
    int dc = raw_dc;          /* widen first: -(-32768) does not fit int16_t */
    if (dc < 0)
        dc = -dc;
    if (dc == 0)
        dc = DC_DEFAULT;
    if (dc_known(t, dc))
        return dc;
    return t->allow_fallback ? DC_DEFAULT : -1;
}

static void make_v4(dc_addr *a, const char *ip, uint16_t port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&a->addr;
    memset(a, 0, sizeof *a);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    inet_pton(AF_INET, ip, &sin->sin_addr);   /* table literals: always valid */
    a->len = sizeof *sin;
}

static void make_v6(dc_addr *a, const char *ip, uint16_t port)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->addr;
    memset(a, 0, sizeof *a);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    inet_pton(AF_INET6, ip, &sin6->sin6_addr);
    a->len = sizeof *sin6;
}

/* xorshift32 over a mixed seed: the shuffle only spreads load across a DC's
 * addresses, it is not a security boundary. */
static uint32_t prng_next(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static void shuffle(dc_addr *a, size_t n, uint32_t *state)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = prng_next(state) % i;
        dc_addr tmp = a[i - 1];
        a[i - 1] = a[j];
        a[j] = tmp;
    }
}

size_t dc_addresses(const dc_table *t, int dc, uint32_t rand_seed,
                    dc_addr *out, size_t cap)
{
    dc_addr v4[DC_MAX_ADDRS], v6[DC_MAX_ADDRS];
    size_t n4 = 0, n6 = 0;

    const dc_override *ov = find_override(t, dc);
    const dc_builtin *bi = ov ? NULL : find_builtin(dc);
    if (ov) {
        for (size_t i = 0; i < ov->count && i < DC_MAX_ADDRS; i++) {
            int fam = ov->addrs[i].addr.ss_family;
            if (fam == AF_INET)
                v4[n4++] = ov->addrs[i];
            else if (fam == AF_INET6)
                v6[n6++] = ov->addrs[i];
        }
    } else if (bi) {
        for (size_t i = 0; i < 2 && bi->v4[i]; i++)
            make_v4(&v4[n4++], bi->v4[i], DC_PORT);
        make_v6(&v6[n6++], bi->v6[0], DC_PORT);
    } else {
        return 0;
    }

    /* Mix the seed so that small or zero seeds still give a usable state. */
    uint32_t state = rand_seed * 0x9e3779b9u ^ 0x6a09e667u;
    if (state == 0)
        state = 1;
    shuffle(v4, n4, &state);
    shuffle(v6, n6, &state);

    const dc_addr *first = v6, *second = v4;
    size_t nfirst = n6, nsecond = n4;
    switch (t->prefer) {
    case DC_PREFER_IPV4: first = v4; nfirst = n4; second = v6; nsecond = n6; break;
    case DC_ONLY_IPV6: nsecond = 0; break;
    case DC_ONLY_IPV4: first = v4; nfirst = n4; nsecond = 0; break;
    case DC_PREFER_IPV6: default: break;
    }

    size_t n = 0;
    for (size_t i = 0; i < nfirst && n < cap; i++)
        out[n++] = first[i];
    for (size_t i = 0; i < nsecond && n < cap; i++)
        out[n++] = second[i];
    return n;
}

/* Port: 1..65535 in decimal digits only (leading zeros allowed, as Go's
 * ParseUint allows them). */
static int parse_port(const char *s, uint16_t *out)
{
    unsigned long v = 0;
    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > 65535)
            return -1;
    }
    if (v == 0)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

int dc_parse_hostport(const char *text, dc_addr *out)
{
    char host[INET6_ADDRSTRLEN];
    const char *port_str;
    size_t hlen;
    int v6;
    uint16_t port;

    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end || end[1] != ':')
            return -1;
        hlen = (size_t)(end - text - 1);
        if (hlen == 0 || hlen >= sizeof host)
            return -1;
        memcpy(host, text + 1, hlen);
        port_str = end + 2;
        v6 = 1;
    } else {
        const char *colon = strchr(text, ':');
        if (!colon || strchr(colon + 1, ':'))
            return -1;            /* IPv6 must be bracketed */
        hlen = (size_t)(colon - text);
        if (hlen == 0 || hlen >= sizeof host)
            return -1;
        memcpy(host, text, hlen);
        port_str = colon + 1;
        v6 = 0;
    }
    host[hlen] = '\0';
    if (parse_port(port_str, &port) != 0)
        return -1;

    dc_addr a;
    memset(&a, 0, sizeof a);
    if (v6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.addr;
        if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
            return -1;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        a.len = sizeof *sin6;
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)&a.addr;
        if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
            return -1;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        a.len = sizeof *sin;
    }
    *out = a;
    return 0;
}

void dc_format_addr(const struct sockaddr *sa, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];

    if (cap == 0)
        return;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
        snprintf(out, cap, "%s:%u", ip, (unsigned)ntohs(sin->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
        snprintf(out, cap, "[%s]:%u", ip, (unsigned)ntohs(sin6->sin6_port));
    } else {
        snprintf(out, cap, "(family %d)", (int)sa->sa_family);
    }
}
