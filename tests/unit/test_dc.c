#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "dc.h"

static void fmt(const dc_addr *a, char *buf, size_t cap)
{
    dc_format_addr((const struct sockaddr *)&a->addr, buf, cap);
}

/* Sorted, joined list so shuffled output can be compared to a set. */
static int contains(const dc_addr *a, size_t n, const char *want)
{
    char buf[64];
    for (size_t i = 0; i < n; i++) {
        fmt(&a[i], buf, sizeof buf);
        if (strcmp(buf, want) == 0)
            return 1;
    }
    return 0;
}

TEST(dc_prefer_names)
{
    dc_prefer p;
    CHECK_EQ_INT(dc_prefer_parse("prefer-ipv6", &p), 0);
    CHECK_EQ_INT(p, DC_PREFER_IPV6);
    CHECK_EQ_INT(dc_prefer_parse("Prefer-IPv4", &p), 0);
    CHECK_EQ_INT(p, DC_PREFER_IPV4);
    CHECK_EQ_INT(dc_prefer_parse("ONLY-IPV6", &p), 0);
    CHECK_EQ_INT(p, DC_ONLY_IPV6);
    CHECK_EQ_INT(dc_prefer_parse("only-ipv4", &p), 0);
    CHECK_EQ_INT(p, DC_ONLY_IPV4);
    CHECK_EQ_INT(dc_prefer_parse("ipv4", &p), -1);
    CHECK_EQ_INT(dc_prefer_parse("", &p), -1);
    CHECK_STR(dc_prefer_name(DC_ONLY_IPV4), "only-ipv4");
    CHECK_STR(dc_prefer_name(DC_PREFER_IPV6), "prefer-ipv6");
}

TEST(dc_resolve_rules)
{
    dc_table t;
    memset(&t, 0, sizeof t);
    CHECK_EQ_INT(dc_resolve(&t, 1), 1);
    CHECK_EQ_INT(dc_resolve(&t, -1), 1);
    CHECK_EQ_INT(dc_resolve(&t, 0), 2);
    CHECK_EQ_INT(dc_resolve(&t, 5), 5);
    CHECK_EQ_INT(dc_resolve(&t, -5), 5);
    CHECK_EQ_INT(dc_resolve(&t, 203), 203);
    CHECK_EQ_INT(dc_resolve(&t, -203), 203);
    CHECK_EQ_INT(dc_resolve(&t, 6), -1);
    CHECK_EQ_INT(dc_resolve(&t, 10002), -1);
    CHECK_EQ_INT(dc_resolve(&t, -32768), -1);
    CHECK_EQ_INT(dc_resolve(&t, 32767), -1);
    t.allow_fallback = 1;
    CHECK_EQ_INT(dc_resolve(&t, 6), 2);
    CHECK_EQ_INT(dc_resolve(&t, -32768), 2);
    CHECK_EQ_INT(dc_resolve(&t, 4), 4);

    /* an override makes a DC known, |raw| applies to it too */
    t.allow_fallback = 0;
    t.override_count = 2;
    t.overrides[0].dc = 32768;
    CHECK_EQ_INT(dc_parse_hostport("127.0.0.1:4431", &t.overrides[0].addrs[0]), 0);
    t.overrides[0].count = 1;
    t.overrides[1].dc = 7;          /* empty override: ignored */
    CHECK_EQ_INT(dc_resolve(&t, -32768), 32768);
    CHECK_EQ_INT(dc_resolve(&t, 7), -1);
}

TEST(dc_builtin_table)
{
    dc_table t;
    dc_addr a[DC_MAX_ADDRS * 2];
    char buf[64];
    memset(&t, 0, sizeof t);

    /* prefer-ipv6 (default): v6 first, then v4 */
    size_t n = dc_addresses(&t, 2, 1, a, 16);
    CHECK_EQ_INT(n, 3);
    fmt(&a[0], buf, sizeof buf);
    CHECK_STR(buf, "[2001:67c:4e8:f002::a]:443");
    CHECK(contains(a + 1, 2, "149.154.167.51:443"));
    CHECK(contains(a + 1, 2, "95.161.76.100:443"));

    static const char *const expect[][2] = {
        { "149.154.175.50:443", "[2001:b28:f23d:f001::a]:443" },
        { "149.154.167.51:443", "[2001:67c:4e8:f002::a]:443" },
        { "149.154.175.100:443", "[2001:b28:f23d:f003::a]:443" },
        { "149.154.167.91:443", "[2001:67c:4e8:f004::a]:443" },
        { "149.154.171.5:443", "[2001:b28:f23f:f005::a]:443" },
    };
    for (int dc = 1; dc <= 5; dc++) {
        n = dc_addresses(&t, dc, 7, a, 16);
        CHECK_EQ_INT(n, dc == 2 ? 3 : 2);
        CHECK(contains(a, n, expect[dc - 1][0]));
        CHECK(contains(a, n, expect[dc - 1][1]));
    }
    n = dc_addresses(&t, 203, 7, a, 16);
    CHECK_EQ_INT(n, 2);
    CHECK(contains(a, n, "91.105.192.100:443"));
    CHECK(contains(a, n, "[2a0a:f280:203:a:5000::100]:443"));
    CHECK_EQ_INT(dc_addresses(&t, 6, 7, a, 16), 0);
    CHECK_EQ_INT(dc_addresses(&t, 0, 7, a, 16), 0);
    CHECK_EQ_INT(dc_addresses(&t, -2, 7, a, 16), 0);
}

TEST(dc_prefer_order)
{
    dc_table t;
    dc_addr a[16];
    memset(&t, 0, sizeof t);

    t.prefer = DC_PREFER_IPV4;
    CHECK_EQ_INT(dc_addresses(&t, 2, 3, a, 16), 3);
    CHECK_EQ_INT(a[0].addr.ss_family, AF_INET);
    CHECK_EQ_INT(a[1].addr.ss_family, AF_INET);
    CHECK_EQ_INT(a[2].addr.ss_family, AF_INET6);
    CHECK_EQ_INT(a[0].len, sizeof(struct sockaddr_in));
    CHECK_EQ_INT(a[2].len, sizeof(struct sockaddr_in6));

    t.prefer = DC_ONLY_IPV4;
    CHECK_EQ_INT(dc_addresses(&t, 2, 3, a, 16), 2);
    CHECK_EQ_INT(a[0].addr.ss_family, AF_INET);
    CHECK_EQ_INT(a[1].addr.ss_family, AF_INET);

    t.prefer = DC_ONLY_IPV6;
    CHECK_EQ_INT(dc_addresses(&t, 2, 3, a, 16), 1);
    CHECK_EQ_INT(a[0].addr.ss_family, AF_INET6);

    /* cap truncates in dial order */
    t.prefer = DC_PREFER_IPV6;
    CHECK_EQ_INT(dc_addresses(&t, 2, 3, a, 1), 1);
    CHECK_EQ_INT(a[0].addr.ss_family, AF_INET6);
    CHECK_EQ_INT(dc_addresses(&t, 2, 3, a, 0), 0);
}

TEST(dc_shuffle_uses_seed)
{
    dc_table t;
    dc_addr a[4];
    int first_seen[2] = { 0, 0 };
    char buf[64];
    memset(&t, 0, sizeof t);
    t.prefer = DC_ONLY_IPV4;
    for (uint32_t seed = 0; seed < 200; seed++) {
        CHECK_EQ_INT(dc_addresses(&t, 2, seed, a, 4), 2);
        fmt(&a[0], buf, sizeof buf);
        first_seen[strcmp(buf, "95.161.76.100:443") == 0]++;
    }
    /* both orders occur, roughly evenly */
    CHECK(first_seen[0] > 50);
    CHECK(first_seen[1] > 50);
    /* same seed, same order */
    dc_addr b[4];
    dc_addresses(&t, 2, 42, a, 4);
    dc_addresses(&t, 2, 42, b, 4);
    CHECK_MEM(a, b, 2 * sizeof a[0]);
}

TEST(dc_overrides_replace_builtin)
{
    dc_table t;
    dc_addr a[16];
    memset(&t, 0, sizeof t);
    t.override_count = 1;
    t.overrides[0].dc = 2;
    CHECK_EQ_INT(dc_parse_hostport("127.0.0.1:4431", &t.overrides[0].addrs[0]), 0);
    CHECK_EQ_INT(dc_parse_hostport("[::1]:4432", &t.overrides[0].addrs[1]), 0);
    CHECK_EQ_INT(dc_parse_hostport("127.0.0.2:4433", &t.overrides[0].addrs[2]), 0);
    t.overrides[0].count = 3;

    size_t n = dc_addresses(&t, 2, 9, a, 16);
    CHECK_EQ_INT(n, 3);
    CHECK(contains(a, 1, "[::1]:4432"));
    CHECK(contains(a + 1, 2, "127.0.0.1:4431"));
    CHECK(contains(a + 1, 2, "127.0.0.2:4433"));
    CHECK(!contains(a, n, "149.154.167.51:443"));

    t.prefer = DC_ONLY_IPV4;
    CHECK_EQ_INT(dc_addresses(&t, 2, 9, a, 16), 2);
    /* other DCs keep the built-in list */
    CHECK_EQ_INT(dc_addresses(&t, 1, 9, a, 16), 1);
    CHECK(contains(a, 1, "149.154.175.50:443"));
}

TEST(dc_parse_hostport_cases)
{
    dc_addr a;
    char buf[64];
    CHECK_EQ_INT(dc_parse_hostport("1.2.3.4:443", &a), 0);
    CHECK_EQ_INT(a.len, sizeof(struct sockaddr_in));
    fmt(&a, buf, sizeof buf);
    CHECK_STR(buf, "1.2.3.4:443");
    CHECK_EQ_INT(dc_parse_hostport("[2001:db8::1]:65535", &a), 0);
    CHECK_EQ_INT(a.len, sizeof(struct sockaddr_in6));
    fmt(&a, buf, sizeof buf);
    CHECK_STR(buf, "[2001:db8::1]:65535");
    CHECK_EQ_INT(dc_parse_hostport("[::ffff:1.2.3.4]:1", &a), 0);
    CHECK_EQ_INT(a.addr.ss_family, AF_INET6);
    CHECK_EQ_INT(dc_parse_hostport("0.0.0.0:00443", &a), 0);

    static const char *const bad[] = {
        "", ":443", "1.2.3.4", "1.2.3.4:", "1.2.3.4:0", "1.2.3.4:65536",
        "1.2.3.4:99999999999999999999", "1.2.3.4:-1", "1.2.3.4:+1", "1.2.3.4:44 3",
        "1.2.3:443", "1.2.3.4.5:443", "256.1.1.1:443", "example.com:443",
        "localhost:443", "2001:db8::1:443", "[2001:db8::1]", "[2001:db8::1]443",
        "[]:443", "[1.2.3.4]:443", "[2001:db8::1]:", "[fe80::1%eth0]:443",
        " 1.2.3.4:443", "1.2.3.4:443 ", "[2001:db8::1]:443x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(dc_parse_hostport(bad[i], &a) == -1, "accepted \"%s\"", bad[i]);
}

TEST(dc_format_small_cap)
{
    dc_addr a;
    char buf[8];
    CHECK_EQ_INT(dc_parse_hostport("149.154.175.100:443", &a), 0);
    memset(buf, 'x', sizeof buf);
    dc_format_addr((const struct sockaddr *)&a.addr, buf, sizeof buf);
    CHECK_EQ_INT(strlen(buf), 7);
}
