/* socks5: the URL parser, the handshake bytes with and without a password,
 * every split point of the proxy's replies, and malformed replies. */
#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>

#include "socks5.h"

static struct sockaddr_in v4_target(void)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(443);
    inet_pton(AF_INET, "149.154.167.51", &a.sin_addr);
    return a;
}

TEST(socks5_parse_url_forms)
{
    socks5_upstream u;
    const char *why = "";
    CHECK(socks5_parse_url("socks5://127.0.0.1", &u, &why) == 0);
    CHECK(strcmp(u.host, "127.0.0.1") == 0 && u.port == 1080 && !u.has_auth && !u.remote_dns);
    CHECK(socks5_parse_url("socks5h://user:pa%3Ass@proxy.example:9050/x?open_threshold=5", &u,
                           &why) == 0);
    CHECK(strcmp(u.host, "proxy.example") == 0 && u.port == 9050 && u.remote_dns);
    CHECK(u.has_auth && strcmp(u.user, "user") == 0 && strcmp(u.pass, "pa:ss") == 0);
    CHECK(socks5_parse_url("socks5://[2001:db8::1]:1081", &u, &why) == 0);
    CHECK(strcmp(u.host, "2001:db8::1") == 0 && u.port == 1081);
    CHECK(socks5_parse_url("socks5://a:b@c@host", &u, &why) == 0);
    CHECK(strcmp(u.host, "host") == 0 && strcmp(u.pass, "b@c") == 0);
    CHECK(socks5_parse_url("socks5://onlyuser@h:1", &u, &why) == 0);
    CHECK(u.has_auth && strcmp(u.user, "onlyuser") == 0 && u.pass[0] == '\0');
    static const char *const bad[] = {
        "http://h:1", "socks5://", "socks5://h:0", "socks5://h:65536", "socks5://h:x",
        "socks5://[::1", "socks5://[::1]x", "socks5://@h", "socks5://u%zz:p@h", "socks5://h h",
        "socks5://u%00:p@h", "socks4://h",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(socks5_parse_url(bad[i], &u, &why) < 0, "accepted %s", bad[i]);
}

/* Drains everything pending into out; returns its length. */
static size_t take_out(socks5_client *s, uint8_t *out)
{
    size_t n, total = 0;
    const uint8_t *p;
    while ((p = socks5_pending(s, &n)) != NULL) {
        size_t step = n > 3 ? 3 : n;   /* partial writes */
        memcpy(out + total, p, step);
        total += step;
        socks5_sent(s, step);
    }
    return total;
}

/* Feeds reply in pieces of at most `piece` bytes, each no more than
 * socks5_want(); returns the final result. */
static socks5_result feed(socks5_client *s, const uint8_t *reply, size_t len, size_t piece)
{
    socks5_result r = SOCKS5_NEED_MORE;
    size_t off = 0;
    while (off < len && r == SOCKS5_NEED_MORE) {
        size_t want = socks5_want(s);
        if (want == 0)
            return SOCKS5_FAIL;
        size_t n = want < piece ? want : piece;
        if (n > len - off)
            n = len - off;
        r = socks5_input(s, reply + off, n);
        off += n;
    }
    return r;
}

TEST(socks5_handshake_without_auth_every_split)
{
    socks5_upstream up;
    const char *why;
    CHECK(socks5_parse_url("socks5://127.0.0.1:1080", &up, &why) == 0);
    struct sockaddr_in t = v4_target();
    /* A reply with a domain-name bound address, the longest form to parse. */
    static const uint8_t connect_reply[] = { 5, 0, 0, 3, 4, 'a', 'b', 'c', 'd', 0x01, 0xbb };
    for (size_t piece = 1; piece <= sizeof connect_reply; piece++) {
        socks5_client s;
        uint8_t out[600];
        socks5_begin(&s, &up, (struct sockaddr *)&t);
        static const uint8_t greet[] = { 5, 1, 0 };
        size_t n = take_out(&s, out);
        CHECK(n == 3 && memcmp(out, greet, 3) == 0);
        CHECK(socks5_want(&s) == 2);
        static const uint8_t choice[] = { 5, 0 };
        CHECK(feed(&s, choice, 2, piece) == SOCKS5_NEED_MORE);
        n = take_out(&s, out);
        static const uint8_t req[] = { 5, 1, 0, 1, 149, 154, 167, 51, 0x01, 0xbb };
        CHECK_MEM(out, req, sizeof req);
        CHECK(n == sizeof req);
        CHECK_MSG(feed(&s, connect_reply, sizeof connect_reply, piece) == SOCKS5_DONE,
                  "piece %zu", piece);
        CHECK(socks5_want(&s) == 0);
    }
}

TEST(socks5_handshake_with_auth)
{
    socks5_upstream up;
    const char *why;
    CHECK(socks5_parse_url("socks5://alice:s3cret@127.0.0.1:1080", &up, &why) == 0);
    struct sockaddr_in6 t;
    memset(&t, 0, sizeof t);
    t.sin6_family = AF_INET6;
    t.sin6_port = htons(443);
    inet_pton(AF_INET6, "2001:b28:f23d:f001::a", &t.sin6_addr);
    socks5_client s;
    uint8_t out[600];
    socks5_begin(&s, &up, (struct sockaddr *)&t);
    static const uint8_t greet[] = { 5, 2, 0, 2 };
    CHECK(take_out(&s, out) == 4 && memcmp(out, greet, 4) == 0);
    static const uint8_t choice[] = { 5, 2 };
    CHECK(feed(&s, choice, 2, 2) == SOCKS5_NEED_MORE);
    static const uint8_t auth[] = { 1, 5, 'a', 'l', 'i', 'c', 'e', 6, 's', '3', 'c', 'r', 'e', 't' };
    size_t n = take_out(&s, out);
    CHECK(n == sizeof auth);
    CHECK_MEM(out, auth, sizeof auth);
    static const uint8_t ok[] = { 1, 0 };
    CHECK(feed(&s, ok, 2, 1) == SOCKS5_NEED_MORE);
    n = take_out(&s, out);
    CHECK(n == 22 && out[3] == 4 && out[20] == 0x01 && out[21] == 0xbb);
    uint8_t reply[22] = { 5, 0, 0, 4 };
    CHECK(feed(&s, reply, sizeof reply, 7) == SOCKS5_DONE);

    /* A refused password. */
    socks5_begin(&s, &up, (struct sockaddr *)&t);
    take_out(&s, out);
    CHECK(feed(&s, choice, 2, 2) == SOCKS5_NEED_MORE);
    take_out(&s, out);
    static const uint8_t refused[] = { 1, 1 };
    CHECK(feed(&s, refused, 2, 2) == SOCKS5_FAIL && s.error == SOCKS5_E_AUTH);
}

TEST(socks5_bad_replies)
{
    socks5_upstream up, up_auth;
    const char *why;
    CHECK(socks5_parse_url("socks5://127.0.0.1", &up, &why) == 0);
    CHECK(socks5_parse_url("socks5://u:p@127.0.0.1", &up_auth, &why) == 0);
    struct sockaddr_in t = v4_target();
    struct { const socks5_upstream *up; uint8_t choice[2]; uint8_t reply[4]; socks5_error e; }
    cases[] = {
        { &up, { 4, 0 }, { 0 }, SOCKS5_E_VERSION },
        { &up, { 5, 0xff }, { 0 }, SOCKS5_E_NO_METHOD },
        { &up, { 5, 2 }, { 0 }, SOCKS5_E_BAD_METHOD },       /* we offered no auth */
        { &up_auth, { 5, 1 }, { 0 }, SOCKS5_E_BAD_METHOD },  /* GSSAPI */
        { &up, { 5, 0 }, { 5, 5, 0, 1 }, SOCKS5_E_REFUSED },
        { &up, { 5, 0 }, { 4, 0, 0, 1 }, SOCKS5_E_VERSION },
        { &up, { 5, 0 }, { 5, 0, 1, 1 }, SOCKS5_E_BAD_REPLY },
        { &up, { 5, 0 }, { 5, 0, 0, 9 }, SOCKS5_E_BAD_REPLY },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        socks5_client s;
        uint8_t out[600];
        socks5_begin(&s, cases[i].up, (struct sockaddr *)&t);
        take_out(&s, out);
        socks5_result r = feed(&s, cases[i].choice, 2, 2);
        if (r == SOCKS5_NEED_MORE) {
            take_out(&s, out);
            r = feed(&s, cases[i].reply, 4, 4);
        }
        CHECK_MSG(r == SOCKS5_FAIL && s.error == cases[i].e, "case %zu: result %d error %d",
                  i, (int)r, (int)s.error);
    }
    /* Bytes beyond what was asked for are refused, not swallowed. */
    socks5_client s;
    uint8_t out[600];
    socks5_begin(&s, &up, (struct sockaddr *)&t);
    take_out(&s, out);
    static const uint8_t extra[] = { 5, 0, 5 };
    CHECK(socks5_input(&s, extra, sizeof extra) == SOCKS5_FAIL);
    CHECK(strcmp(socks5_rep_str(5), "connection refused") == 0);
}

/* Random replies never crash the parser or read past what it asked for. */
TEST(socks5_random_replies)
{
    socks5_upstream up;
    const char *why;
    CHECK(socks5_parse_url("socks5://u:p@127.0.0.1", &up, &why) == 0);
    struct sockaddr_in t = v4_target();
    srand(7);
    int done = 0, failed = 0;
    for (int iter = 0; iter < 20000; iter++) {
        socks5_client s;
        uint8_t out[600], in[300];
        socks5_begin(&s, &up, (struct sockaddr *)&t);
        socks5_result r = SOCKS5_NEED_MORE;
        for (int step = 0; step < 50 && r == SOCKS5_NEED_MORE; step++) {
            take_out(&s, out);
            size_t want = socks5_want(&s);
            if (want == 0)
                break;
            size_t n = 1 + (size_t)rand() % want;
            /* Mostly what a proxy would send (5 0 0 1, auth status 1 0), sometimes noise. */
            static const uint8_t likely[] = { 5, 0, 0, 1 };
            for (size_t i = 0; i < n; i++)
                in[i] = (uint8_t)(rand() % 8 == 0 ? rand() : likely[i % 4]);
            if (s.step == S5_AUTH && n == 2 && rand() % 2)
                in[0] = 1, in[1] = 0;
            r = socks5_input(&s, in, n);
        }
        done += r == SOCKS5_DONE;
        failed += r == SOCKS5_FAIL;
        if (r == SOCKS5_NEED_MORE) {
            size_t pn;
            CHECK_MSG(socks5_want(&s) > 0 || socks5_pending(&s, &pn), "stuck at step %d",
                      (int)s.step);
        }
    }
    CHECK_MSG(done > 0 && failed > 0, "done %d failed %d", done, failed);
}
