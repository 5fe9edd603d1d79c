#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "proxyproto.h"

#define SIG "0d0a0d0a000d0a515549540a"

static struct sockaddr_storage v4(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    memset(&ss, 0, sizeof ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    inet_pton(AF_INET, ip, &sin->sin_addr);
    return ss;
}

static struct sockaddr_storage v6(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    memset(&ss, 0, sizeof ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    inet_pton(AF_INET6, ip, &sin6->sin6_addr);
    return ss;
}

#define SA(x) ((const struct sockaddr *)&(x))

/* "ip:port" / "[ip]:port" / "unspec" for comparisons. */
static void addr_str(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
        snprintf(out, cap, "%s:%u", ip, ntohs(sin->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
        snprintf(out, cap, "[%s]:%u", ip, ntohs(sin6->sin6_port));
    } else {
        snprintf(out, cap, "unspec");
    }
}

/* Builds src->dst, compares with the expected hex, then parses the bytes
 * back at every split point and checks the addresses it reports. */
static void check_build(const struct sockaddr_storage *s, const struct sockaddr_storage *d,
                        const char *hex, const char *want_src, const char *want_dst)
{
    uint8_t out[128], want[128];
    size_t wn = unit_unhex(hex, want, sizeof want);
    size_t n = proxyproto_v2_build(out, sizeof out, SA(*s), SA(*d));
    CHECK_EQ_INT(n, wn);
    CHECK_MEM(out, want, wn);
    CHECK_EQ_INT(proxyproto_v2_build(out, wn - 1, SA(*s), SA(*d)), 0);
    CHECK_EQ_INT(proxyproto_v2_build(out, wn, SA(*s), SA(*d)), wn);

    /* parse: NEED_MORE for every strict prefix, OK once complete */
    for (size_t i = 0; i < wn; i++) {
        size_t consumed = 99;
        proxyproto_result r = proxyproto_parse(want, i, &consumed, NULL, NULL, NULL);
        CHECK_MSG(r == PROXYPROTO_NEED_MORE, "prefix %zu: %s", i, proxyproto_result_str(r));
        CHECK_EQ_INT(consumed, 0);
    }
    memcpy(want + wn, "\x16\x03\x01", 3);    /* next-layer bytes follow */
    struct sockaddr_storage ps, pd;
    size_t consumed;
    int local = 7;
    char a[64];
    CHECK_EQ_INT(proxyproto_parse(want, wn + 3, &consumed, &ps, &pd, &local), PROXYPROTO_OK);
    CHECK_EQ_INT(consumed, wn);
    CHECK_EQ_INT(local, 0);
    addr_str(&ps, a, sizeof a);
    CHECK_STR(a, want_src);
    addr_str(&pd, a, sizeof a);
    CHECK_STR(a, want_dst);
}

TEST(proxyproto_build_v4)
{
    struct sockaddr_storage s = v4("192.0.2.1", 51234), d = v4("198.51.100.7", 8443);
    check_build(&s, &d, SIG "21 11 000c c0000201 c6336407 c822 20fb",
                "192.0.2.1:51234", "198.51.100.7:8443");
}

TEST(proxyproto_build_v6)
{
    struct sockaddr_storage s = v6("2001:db8::1", 51234), d = v6("2001:db8::2", 443);
    check_build(&s, &d,
                SIG "21 21 0024 20010db8000000000000000000000001"
                "20010db8000000000000000000000002 c822 01bb",
                "[2001:db8::1]:51234", "[2001:db8::2]:443");
}

TEST(proxyproto_build_mixed)
{
    /* v6 client, v4 target: target v4-mapped */
    struct sockaddr_storage s = v6("2001:db8::1", 1000), d = v4("127.0.0.1", 8443);
    check_build(&s, &d,
                SIG "21 21 0024 20010db8000000000000000000000001"
                "00000000000000000000ffff7f000001 03e8 20fb",
                "[2001:db8::1]:1000", "[::ffff:127.0.0.1]:8443");
    /* v4 client, v6 target (mtg panics here): client v4-mapped */
    s = v4("203.0.113.9", 40000);
    d = v6("::1", 8443);
    check_build(&s, &d,
                SIG "21 21 0024 00000000000000000000ffffcb007109"
                "00000000000000000000000000000001 9c40 20fb",
                "[::ffff:203.0.113.9]:40000", "[::1]:8443");
    /* v4-mapped client from a dual-stack socket, v4 target: plain TCP4 */
    s = v6("::ffff:203.0.113.9", 40000);
    d = v4("127.0.0.1", 8443);
    check_build(&s, &d, SIG "21 11 000c cb007109 7f000001 9c40 20fb",
                "203.0.113.9:40000", "127.0.0.1:8443");
    /* both v4-mapped: TCP4 too */
    d = v6("::ffff:127.0.0.1", 8443);
    check_build(&s, &d, SIG "21 11 000c cb007109 7f000001 9c40 20fb",
                "203.0.113.9:40000", "127.0.0.1:8443");
}

TEST(proxyproto_build_unsupported)
{
    uint8_t out[64];
    struct sockaddr_storage s = v4("1.2.3.4", 1), d;
    memset(&d, 0, sizeof d);
    d.ss_family = AF_UNIX;
    CHECK_EQ_INT(proxyproto_v2_build(out, sizeof out, SA(s), SA(d)), 0);
    CHECK_EQ_INT(proxyproto_v2_build(out, sizeof out, SA(d), SA(s)), 0);
    CHECK_EQ_INT(proxyproto_v2_build(out, sizeof out, NULL, SA(s)), 0);
    CHECK_EQ_INT(proxyproto_v2_build(out, 0, SA(s), SA(s)), 0);
}

static proxyproto_result parse_str(const char *text, size_t *consumed,
                                   struct sockaddr_storage *s, struct sockaddr_storage *d)
{
    int local;
    return proxyproto_parse((const uint8_t *)text, strlen(text), consumed, s, d, &local);
}

/* Every strict prefix of a complete v1 line is NEED_MORE. */
static void check_v1_prefixes(const char *line)
{
    size_t n = strlen(line);
    for (size_t i = 0; i < n; i++) {
        size_t c;
        proxyproto_result r = proxyproto_parse((const uint8_t *)line, i, &c, NULL, NULL, NULL);
        CHECK_MSG(r == PROXYPROTO_NEED_MORE, "v1 prefix %zu: %s", i, proxyproto_result_str(r));
    }
}

TEST(proxyproto_v1_spec_examples)
{
    struct sockaddr_storage s, d;
    size_t c;
    char a[64];

    const char *l1 = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n";
    CHECK_EQ_INT(parse_str(l1, &c, &s, &d), PROXYPROTO_OK);
    CHECK_EQ_INT(c, strlen("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"));
    addr_str(&s, a, sizeof a);
    CHECK_STR(a, "192.168.0.1:56324");
    addr_str(&d, a, sizeof a);
    CHECK_STR(a, "192.168.0.11:443");
    check_v1_prefixes("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");

    /* worst cases from the spec: 56, 104 and 107 bytes */
    const char *w4 = "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
    CHECK_EQ_INT(strlen(w4), 56);
    CHECK_EQ_INT(parse_str(w4, &c, &s, &d), PROXYPROTO_OK);
    CHECK_EQ_INT(c, 56);
    const char *w6 = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    CHECK_EQ_INT(strlen(w6), 104);
    CHECK_EQ_INT(parse_str(w6, &c, &s, &d), PROXYPROTO_OK);
    CHECK_EQ_INT(c, 104);
    CHECK_EQ_INT(s.ss_family, AF_INET6);
    check_v1_prefixes(w6);
    const char *wu = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    CHECK_EQ_INT(strlen(wu), 107);
    CHECK_EQ_INT(parse_str(wu, &c, &s, &d), PROXYPROTO_OK);
    CHECK_EQ_INT(c, 107);
    CHECK_EQ_INT(s.ss_family, AF_UNSPEC);
    CHECK_EQ_INT(d.ss_family, AF_UNSPEC);
    check_v1_prefixes(wu);

    CHECK_EQ_INT(parse_str("PROXY UNKNOWN\r\n", &c, &s, &d), PROXYPROTO_OK);
    CHECK_EQ_INT(c, 15);
    CHECK_EQ_INT(s.ss_family, AF_UNSPEC);

    CHECK_EQ_INT(parse_str("PROXY TCP6 2001:db8::1 ::1 1 65535\r\n", &c, &s, &d), PROXYPROTO_OK);
    addr_str(&s, a, sizeof a);
    CHECK_STR(a, "[2001:db8::1]:1");
    addr_str(&d, a, sizeof a);
    CHECK_STR(a, "[::1]:65535");
}

TEST(proxyproto_v1_invalid)
{
    static const char *const bad[] = {
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",          /* bare LF */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",         /* CR not followed by LF */
        "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",       /* double space */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",       /* trailing space */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 100000 2\r\n",
        "PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
        "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
        "PROXY TCP4 example.com 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
        "PROXY UNKNOWNX\r\n",
        "PROXY \r\n",
        "PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",        /* control byte */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t c = 5;
        proxyproto_result r = parse_str(bad[i], &c, NULL, NULL);
        CHECK_MSG(r == PROXYPROTO_INVALID && c == 0, "case %zu: %s, consumed %zu", i,
                  proxyproto_result_str(r), c);
    }

    /* no CRLF within 107 bytes: NEED_MORE up to 106, INVALID from 107 */
    char line[200];
    memset(line, 'A', sizeof line);
    memcpy(line, "PROXY UNKNOWN ", 14);
    size_t c;
    CHECK_EQ_INT(proxyproto_parse((uint8_t *)line, 106, &c, NULL, NULL, NULL), PROXYPROTO_NEED_MORE);
    CHECK_EQ_INT(proxyproto_parse((uint8_t *)line, 107, &c, NULL, NULL, NULL), PROXYPROTO_INVALID);
    CHECK_EQ_INT(proxyproto_parse((uint8_t *)line, 200, &c, NULL, NULL, NULL), PROXYPROTO_INVALID);
    /* CR as byte 107 leaves no room for LF */
    line[106] = '\r';
    line[107] = '\n';
    CHECK_EQ_INT(proxyproto_parse((uint8_t *)line, 108, &c, NULL, NULL, NULL), PROXYPROTO_INVALID);
    /* CR at 106, LF at 107: exactly 107 bytes, valid */
    line[105] = '\r';
    line[106] = '\n';
    CHECK_EQ_INT(proxyproto_parse((uint8_t *)line, 108, &c, NULL, NULL, NULL), PROXYPROTO_OK);
    CHECK_EQ_INT(c, 107);
}

TEST(proxyproto_none_early)
{
    static const char *const early[] = {
        "\x16", "G", "\x00", "\r\n", "Q", "\xff",
    };
    size_t c;
    for (size_t i = 0; i < sizeof early / sizeof early[0]; i++) {
        size_t n = early[i][0] ? strlen(early[i]) : 1;
        CHECK_EQ_INT(proxyproto_parse((const uint8_t *)early[i], n, &c, NULL, NULL, NULL),
                     i == 3 ? PROXYPROTO_NEED_MORE : PROXYPROTO_NONE);
    }
    CHECK_EQ_INT(parse_str("GET / HTTP/1.1\r\n", &c, NULL, NULL), PROXYPROTO_NONE);
    CHECK_EQ_INT(parse_str("P", &c, NULL, NULL), PROXYPROTO_NEED_MORE);
    CHECK_EQ_INT(parse_str("PROX", &c, NULL, NULL), PROXYPROTO_NEED_MORE);
    CHECK_EQ_INT(parse_str("PRX", &c, NULL, NULL), PROXYPROTO_NONE);
    CHECK_EQ_INT(parse_str("POST / HTTP/1.1\r\n", &c, NULL, NULL), PROXYPROTO_NONE);
    CHECK_EQ_INT(parse_str("PROXY", &c, NULL, NULL), PROXYPROTO_NEED_MORE);
    CHECK_EQ_INT(parse_str("PROXYX", &c, NULL, NULL), PROXYPROTO_NONE);
    CHECK_EQ_INT(proxyproto_parse((const uint8_t *)"", 0, &c, NULL, NULL, NULL),
                 PROXYPROTO_NEED_MORE);
    /* v2 signature broken at its last byte */
    uint8_t sig[16];
    unit_unhex(SIG "21110000", sig, sizeof sig);
    sig[11] = 0x0b;
    CHECK_EQ_INT(proxyproto_parse(sig, 16, &c, NULL, NULL, NULL), PROXYPROTO_NONE);
    CHECK_EQ_INT(proxyproto_parse(sig, 11, &c, NULL, NULL, NULL), PROXYPROTO_NEED_MORE);
    CHECK_EQ_INT(proxyproto_parse(sig, 12, &c, NULL, NULL, NULL), PROXYPROTO_NONE);
}

static proxyproto_result parse_hex(const char *hex, size_t *consumed,
                                   struct sockaddr_storage *s, struct sockaddr_storage *d,
                                   int *local)
{
    uint8_t buf[700];
    size_t n = unit_unhex(hex, buf, sizeof buf);
    return proxyproto_parse(buf, n, consumed, s, d, local);
}

TEST(proxyproto_v2_variants)
{
    struct sockaddr_storage s, d;
    size_t c;
    int local;
    char a[64];

    /* LOCAL (health check) with no addresses */
    CHECK_EQ_INT(parse_hex(SIG "20 00 0000", &c, &s, &d, &local), PROXYPROTO_OK);
    CHECK_EQ_INT(c, 16);
    CHECK_EQ_INT(local, 1);
    CHECK_EQ_INT(s.ss_family, AF_UNSPEC);
    /* LOCAL carrying TCP4 addresses: skipped */
    CHECK_EQ_INT(parse_hex(SIG "20 11 000c 01020304 05060708 0001 0002", &c, &s, &d, &local),
                 PROXYPROTO_OK);
    CHECK_EQ_INT(c, 28);
    CHECK_EQ_INT(local, 1);
    CHECK_EQ_INT(s.ss_family, AF_UNSPEC);
    /* PROXY UNSPEC */
    CHECK_EQ_INT(parse_hex(SIG "21 00 0000", &c, &s, &d, &local), PROXYPROTO_OK);
    CHECK_EQ_INT(local, 0);
    CHECK_EQ_INT(s.ss_family, AF_UNSPEC);
    /* TCP4 with TLVs (NOOP of 3 bytes, AUTHORITY "a.b") */
    CHECK_EQ_INT(parse_hex(SIG "21 11 0018 01020304 05060708 0001 0002 04 0003 000000"
                           " 02 0003 612e62 ffff", &c, &s, &d, &local), PROXYPROTO_OK);
    CHECK_EQ_INT(c, 16 + 24);
    addr_str(&s, a, sizeof a);
    CHECK_STR(a, "1.2.3.4:1");
    addr_str(&d, a, sizeof a);
    CHECK_STR(a, "5.6.7.8:2");
    /* UDP4 / UNIX: accepted, no TCP addresses */
    CHECK_EQ_INT(parse_hex(SIG "21 12 000c 01020304 05060708 0001 0002", &c, &s, &d, &local),
                 PROXYPROTO_OK);
    CHECK_EQ_INT(s.ss_family, AF_UNSPEC);
    /* largest accepted body (536), then one more */
    char hex[2 * 600 + 64];
    strcpy(hex, SIG "21 00 0218");
    for (int i = 0; i < 536; i++) strcat(hex, "00");
    CHECK_EQ_INT(parse_hex(hex, &c, &s, &d, &local), PROXYPROTO_OK);
    CHECK_EQ_INT(c, 552);
    CHECK_EQ_INT(parse_hex(SIG "21 00 0219", &c, &s, &d, &local), PROXYPROTO_INVALID);
    CHECK_EQ_INT(parse_hex(SIG "21 00 ffff", &c, &s, &d, &local), PROXYPROTO_INVALID);
}

TEST(proxyproto_v2_invalid)
{
    size_t c;
    int local;
    static const char *const bad[] = {
        SIG "11",                  /* version 1 */
        SIG "31",                  /* version 3 */
        SIG "22",                  /* command 2 */
        SIG "2f",
        SIG "21 41",               /* family 4 */
        SIG "21 13",               /* transport 3 */
        SIG "21 11 000b",          /* TCP4 needs 12 */
        SIG "21 21 0023",          /* TCP6 needs 36 */
        SIG "21 11 0000",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c = 9;
        proxyproto_result r = parse_hex(bad[i], &c, NULL, NULL, &local);
        CHECK_MSG(r == PROXYPROTO_INVALID && c == 0, "case %zu (%s): %s, consumed %zu",
                  i, bad[i], proxyproto_result_str(r), c);
    }
    /* a valid header still waiting for its body */
    CHECK_EQ_INT(parse_hex(SIG "21 11 000c 0102", &c, NULL, NULL, &local), PROXYPROTO_NEED_MORE);
    CHECK_EQ_INT(parse_hex(SIG "21", &c, NULL, NULL, &local), PROXYPROTO_NEED_MORE);

    for (int r = PROXYPROTO_OK; r <= PROXYPROTO_INVALID; r++)
        CHECK(strlen(proxyproto_result_str((proxyproto_result)r)) > 0);
}

/* Each kind of invalid header names its own reason (the log line says what
 * was wrong); a valid one leaves NONE. */
TEST(proxyproto_invalid_reasons)
{
    static const struct { const char *text; proxyproto_reason want; } cases[] = {
        { "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", PROXYPROTO_R_V1_FIELDS },
        { "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", PROXYPROTO_R_V1_PROTOCOL },
        { "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", PROXYPROTO_R_V1_ADDRESS },
        { "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", PROXYPROTO_R_V1_ADDRESS },
        { "PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n", PROXYPROTO_R_V1_BAD_CHAR },
        { "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", PROXYPROTO_R_V1_BAD_CHAR },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t c;
        proxyproto_reason why = PROXYPROTO_R_NONE;
        proxyproto_result r = proxyproto_parse_why((const uint8_t *)cases[i].text,
                                                   strlen(cases[i].text), &c, NULL, NULL, NULL,
                                                   &why);
        CHECK_MSG(r == PROXYPROTO_INVALID && why == cases[i].want, "case %zu: %s, reason %s", i,
                  proxyproto_result_str(r), proxyproto_reason_str(why));
    }
    char line[120];
    memset(line, 'A', sizeof line);
    memcpy(line, "PROXY UNKNOWN ", 14);
    size_t c;
    proxyproto_reason why = PROXYPROTO_R_NONE;
    CHECK_EQ_INT(proxyproto_parse_why((uint8_t *)line, sizeof line, &c, NULL, NULL, NULL, &why),
                 PROXYPROTO_INVALID);
    CHECK_EQ_INT(why, PROXYPROTO_R_V1_TOO_LONG);

    static const struct { const char *hex; proxyproto_reason want; } v2[] = {
        { SIG "11", PROXYPROTO_R_V2_VERSION_COMMAND },
        { SIG "22", PROXYPROTO_R_V2_VERSION_COMMAND },
        { SIG "21 41", PROXYPROTO_R_V2_FAMILY },
        { SIG "21 11 000b", PROXYPROTO_R_V2_SHORT_ADDRESSES },
        { SIG "21 11 ffff", PROXYPROTO_R_V2_TOO_LONG },
    };
    for (size_t i = 0; i < sizeof v2 / sizeof v2[0]; i++) {
        uint8_t buf[64];
        size_t n = unit_unhex(v2[i].hex, buf, sizeof buf);
        why = PROXYPROTO_R_NONE;
        proxyproto_result r = proxyproto_parse_why(buf, n, &c, NULL, NULL, NULL, &why);
        CHECK_MSG(r == PROXYPROTO_INVALID && why == v2[i].want, "v2 case %zu: %s, reason %s", i,
                  proxyproto_result_str(r), proxyproto_reason_str(why));
    }
    const char *ok = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    why = PROXYPROTO_R_V1_FIELDS;
    CHECK_EQ_INT(proxyproto_parse_why((const uint8_t *)ok, strlen(ok), &c, NULL, NULL, NULL, &why),
                 PROXYPROTO_OK);
    CHECK_EQ_INT(why, PROXYPROTO_R_NONE);
}
