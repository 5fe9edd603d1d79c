/* web_limits: a WEB stream against its secret's max-connections, expiry
 * and quota and the daemon's concurrency, the refusal log's rate limit,
 * and the frame mux refusing an OPEN over a limit with CLOSE for that
 * stream only (a real session on a socketpair). */
#include "unit.h"

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "secret_usage.h"
#include "web_cap.h"
#include "web_frame.h"
#include "web_limits.h"
#include "web_session.h"

#define NOW 1800000000   /* 2027-01-15 */

TEST(web_limits_max_connections_per_stream)
{
    secret_usage *u = secret_usage_create();
    web_limits l = { .usage = u };
    config_secret s = { .name = "bob", .max_connections = 2, .quota_period_s = 86400 };
    web_limit_hold h[3];
    CHECK_EQ_INT(web_limits_take(&l, &s, 100, NOW, &h[0]), WEB_LIM_OK);
    CHECK_EQ_INT(web_limits_take(&l, &s, 100, NOW, &h[1]), WEB_LIM_OK);
    CHECK_EQ_INT(web_limits_take(&l, &s, 100, NOW, &h[2]), WEB_LIM_MAX_CONNECTIONS);
    CHECK(h[2].sec == NULL && !h[2].counted);
    usage_slot *slot = secret_usage_slot(u, "bob");
    CHECK_EQ_INT(atomic_load(&slot->connections), 2);
    CHECK_EQ_INT(atomic_load(&slot->accepted), 2);
    CHECK_EQ_INT(atomic_load(&slot->refused[USAGE_MAX_CONNECTIONS]), 1);
    /* the check takes nothing, but counts a refusal */
    CHECK_EQ_INT(web_limits_check(&l, &s, NOW), WEB_LIM_MAX_CONNECTIONS);
    CHECK_EQ_INT(atomic_load(&slot->connections), 2);
    CHECK_EQ_INT(atomic_load(&slot->refused[USAGE_MAX_CONNECTIONS]), 2);
    /* a stream that ends gives its connection back, once */
    web_limits_give(&l, &h[0]);
    web_limits_give(&l, &h[0]);
    CHECK_EQ_INT(atomic_load(&slot->connections), 1);
    CHECK_EQ_INT(web_limits_check(&l, &s, NOW), WEB_LIM_OK);
    CHECK_EQ_INT(web_limits_take(&l, &s, 100, NOW, &h[0]), WEB_LIM_OK);
    web_limits_give(&l, &h[0]);
    web_limits_give(&l, &h[1]);
    CHECK_EQ_INT(atomic_load(&slot->connections), 0);
    secret_usage_destroy(u);
}

TEST(web_limits_concurrency_is_the_daemons_count)
{
    secret_usage *u = secret_usage_create();
    atomic_size_t inspected = 1;   /* one FakeTLS connection being inspected */
    web_limits l = { .usage = u, .inspected = &inspected };
    config_secret s = { .name = "a", .quota_period_s = 86400 };
    web_limit_hold h1, h2;
    CHECK_EQ_INT(web_limits_take(&l, &s, 2, NOW, &h1), WEB_LIM_OK);
    CHECK(h1.counted && h1.sec != NULL);
    CHECK_EQ_INT(atomic_load(&inspected), 2);
    CHECK_EQ_INT(web_limits_take(&l, &s, 2, NOW, &h2), WEB_LIM_CONCURRENCY);
    CHECK_EQ_INT(atomic_load(&inspected), 2);
    /* not the secret's refusal, and its connection was not taken */
    usage_slot *slot = secret_usage_slot(u, "a");
    CHECK_EQ_INT(atomic_load(&slot->connections), 1);
    for (int r = 0; r < USAGE_REFUSED_COUNT; r++)
        CHECK_EQ_INT(atomic_load(&slot->refused[r]), 0);
    /* a secret refusal gives the concurrency slot back */
    s.max_connections = 1;
    atomic_store(&inspected, 0);
    CHECK_EQ_INT(web_limits_take(&l, &s, 2, NOW, &h2), WEB_LIM_MAX_CONNECTIONS);
    CHECK_EQ_INT(atomic_load(&inspected), 0);
    atomic_store(&inspected, 1);
    web_limits_give(&l, &h1);
    CHECK_EQ_INT(atomic_load(&inspected), 0);
    CHECK_EQ_INT(atomic_load(&slot->connections), 0);
    secret_usage_destroy(u);
}

TEST(web_limits_quota_and_expiry)
{
    secret_usage *u = secret_usage_create();
    web_limits l = { .usage = u };
    config_secret s = { .name = "q", .quota_bytes = 1000, .quota_period_s = 86400 };
    web_limit_hold h, h2;
    CHECK_EQ_INT(web_limits_take(&l, &s, 100, NOW, &h), WEB_LIM_OK);
    web_limits_traffic(&h, METRICS_FROM_CLIENT, 600);
    CHECK_EQ_INT(web_limits_check(&l, &s, NOW), WEB_LIM_OK);
    web_limits_traffic(&h, METRICS_TO_CLIENT, 400);   /* both directions count */
    usage_slot *slot = secret_usage_slot(u, "q");
    CHECK_EQ_INT(atomic_load(&slot->traffic[METRICS_FROM_CLIENT]), 600);
    CHECK_EQ_INT(atomic_load(&slot->traffic[METRICS_TO_CLIENT]), 400);
    CHECK_EQ_INT(web_limits_check(&l, &s, NOW), WEB_LIM_QUOTA);
    CHECK_EQ_INT(web_limits_take(&l, &s, 100, NOW, &h2), WEB_LIM_QUOTA);
    /* the open stream is not cut: it still counts */
    web_limits_traffic(&h, METRICS_TO_CLIENT, 10);
    CHECK_EQ_INT(atomic_load(&slot->window_bytes), 1010);
    /* the next window (a UTC day) starts at 0 */
    CHECK_EQ_INT(web_limits_check(&l, &s, NOW + 86400), WEB_LIM_OK);
    web_limits_give(&l, &h);
    web_limits_traffic(&h, METRICS_TO_CLIENT, 10);   /* after the end: nothing */
    CHECK_EQ_INT(atomic_load(&slot->traffic[METRICS_TO_CLIENT]), 410);

    config_secret e = { .name = "e", .expires = NOW, .quota_period_s = 86400 };
    CHECK_EQ_INT(web_limits_take(&l, &e, 100, NOW - 1, &h), WEB_LIM_OK);
    web_limits_give(&l, &h);
    CHECK_EQ_INT(web_limits_take(&l, &e, 100, NOW, &h), WEB_LIM_EXPIRED);
    CHECK_EQ_INT(web_limits_check(&l, &e, NOW), WEB_LIM_EXPIRED);
    CHECK_EQ_INT(atomic_load(&secret_usage_slot(u, "e")->refused[USAGE_EXPIRED]), 2);
    /* without a usage table (a fuzz target): the expiry still holds */
    CHECK_EQ_INT(web_limits_check(NULL, &e, NOW), WEB_LIM_EXPIRED);
    CHECK_EQ_INT(web_limits_take(NULL, &e, 100, NOW, &h), WEB_LIM_EXPIRED);
    CHECK_EQ_INT(web_limits_take(NULL, &e, 100, NOW - 1, &h), WEB_LIM_OK);
    web_limits_give(NULL, &h);
    secret_usage_destroy(u);
}

TEST(web_limits_log_rate_limit)
{
    web_limits l = { 0 };
    uint64_t more = 99;
    CHECK(web_limits_log_ok(&l, 5000, &more));
    CHECK_EQ_INT(more, 0);
    CHECK(!web_limits_log_ok(&l, 5001, &more));
    CHECK(!web_limits_log_ok(&l, 5000 + WEB_LIMITS_LOG_MS - 1, &more));
    CHECK(web_limits_log_ok(&l, 5000 + WEB_LIMITS_LOG_MS, &more));
    CHECK_EQ_INT(more, 2);
    CHECK(!web_limits_log_ok(&l, 5000 + WEB_LIMITS_LOG_MS + 1, &more));
}

/* ---- the mux: OPEN over a limit gets CLOSE for that stream only ---- */

static const char LIMITS_CONFIG[] =
    "secret = \"ee000102030405060708090a0b0c0d0e0f70726f78792e6578616d706c652e636f6d\"\n"
    "bind-to = \"127.0.0.1:443\"\n"
    "[secrets]\n"
    "bob = \"ee101112131415161718191a1b1c1d1e1f70726f78792e6578616d706c652e636f6d\"\n"
    "[secret-limits.bob]\nmax-connections = 1\n"
    "[web]\nenabled = true\n"
    "[datacenters]\n2 = [\"127.0.0.1:9\"]\n";

static void *graves[64];
static size_t ngraves;

static void lim_defer_free(void *owner, void *mem)
{
    (void)owner;
    if (ngraves < sizeof graves / sizeof graves[0])
        graves[ngraves++] = mem;
}

static void lim_on_closed(void *owner, web_session *s)
{
    (void)owner;
    (void)s;
}

/* One masked (zero key) binary message holding frames p[0..n). */
static void feed_frames(web_session *s, const uint8_t *p, size_t n)
{
    uint8_t m[256];
    m[0] = 0x82;
    m[1] = (uint8_t)(0x80 | n);
    memset(m + 2, 0, 4);
    memcpy(m + 6, p, n);
    web_session_feed(s, m, n + 6);
}

/* What the session wrote: n bytes of unmasked messages. */
static size_t drain(int fd, uint8_t *out, size_t cap)
{
    size_t got = 0;
    ssize_t r;
    while (got < cap && (r = read(fd, out + got, cap - got)) > 0)
        got += (size_t)r;
    return got;
}

/* 1 when out[0..n) holds a message with exactly CLOSE(id). */
static int has_close(const uint8_t *out, size_t n, uint32_t id)
{
    uint8_t want[2 + WEB_FRAME_HDR] = { 0x82, WEB_FRAME_HDR };
    web_frame_header(want + 2, WF_CLOSE, id, 0);
    for (size_t i = 0; i + sizeof want <= n; i++)
        if (memcmp(out + i, want, sizeof want) == 0)
            return 1;
    return 0;
}

static size_t open_stream(web_session *s, int peer, uint32_t id, uint8_t *out, size_t cap)
{
    uint8_t f[WEB_FRAME_HDR];
    web_frame_header(f, WF_OPEN, id, 0);
    feed_frames(s, f, sizeof f);
    return drain(peer, out, cap);
}

TEST(web_limits_mux_refuses_open_over_a_limit_with_close)
{
    static tgf_config cfg, cfg2;
    char err[256];
    CHECK(config_load_string(LIMITS_CONFIG, sizeof LIMITS_CONFIG - 1, "unit", &cfg, err,
                             sizeof err) == 0);
    loop lp;
    static metrics mx;
    static web_tokens tokens;
    web_cap_entry caps[4];
    memset(caps, 0, sizeof caps);
    memcpy(caps[3].key, cfg.secret_keys[1], sizeof caps[3].key);   /* bob's, as web_server builds */
    size_t carriers = 0;
    CHECK(loop_init_signals(&lp, 200, 0) == 0);
    metrics_init(&mx);
    web_tokens_init(&tokens);
    secret_usage *u = secret_usage_create();
    atomic_size_t inspected = 0;
    web_limits lim = { .usage = u, .inspected = &inspected };
    web_env env = { .loop = &lp, .metrics = &mx, .cfg = &cfg, .tokens = &tokens,
                    .caps = caps, .ncaps = 4, .host = "proxy.example.com",
                    .carriers = &carriers, .limits = &lim, .defer_free = lim_defer_free,
                    .on_closed = lim_on_closed };
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    struct sockaddr_in peer = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
    web_session *s = web_session_start(&env, sv[0], (struct sockaddr *)&peer, sizeof peer);
    CHECK(s != NULL);
    if (!s)
        return;
    web_session_run(s);
    CHECK(web_session_force_carrier(s, 3) == 0);   /* caps[3]: bob's dd link */
    static const uint8_t hello[] = { 0x10, 0, 0, 0, 0, 0, 0, 1, 1 };
    feed_frames(s, hello, sizeof hello);
    uint8_t out[4096];
    size_t n = drain(sv[1], out, sizeof out);
    CHECK_EQ_INT(n, 10);   /* WELCOME alone */

    usage_slot *bob = secret_usage_slot(u, "bob");
    unit_stderr_begin();
    n = open_stream(s, sv[1], 1, out, sizeof out);
    int first_ok = !has_close(out, n, 1);
    n = open_stream(s, sv[1], 2, out, sizeof out);
    int second_closed = has_close(out, n, 2);
    n = open_stream(s, sv[1], 3, out, sizeof out);
    int third_closed = has_close(out, n, 3);
    const char *log = unit_stderr_end();
    CHECK(first_ok);
    CHECK(second_closed);
    CHECK(third_closed);
    CHECK(web_session_carrier_open(s));
    CHECK_EQ_INT(atomic_load(&bob->connections), 1);
    CHECK_EQ_INT(atomic_load(&inspected), 1);
    CHECK_EQ_INT(atomic_load(&bob->refused[USAGE_MAX_CONNECTIONS]), 2);
    CHECK_EQ_INT(mx.web.limited[WEB_AT_STREAM][WEB_LIM_MAX_CONNECTIONS], 2);
    CHECK_EQ_INT(mx.web.streams, 1);
    /* logged once with the secret's name, the second only counted */
    const char *line = log ? strstr(log, "of secret 'bob': max_connections: stream refused") : NULL;
    CHECK_MSG(line != NULL, "log: %s", log ? log : "(none)");
    CHECK(line == NULL || strstr(line + 1, "of secret 'bob'") == NULL);

    /* a reload that raises the limit applies to the next OPEN */
    CHECK(config_load_string(LIMITS_CONFIG, sizeof LIMITS_CONFIG - 1, "unit", &cfg2, err,
                             sizeof err) == 0);
    cfg2.secrets[1].max_connections = 2;
    env.cfg = &cfg2;
    n = open_stream(s, sv[1], 4, out, sizeof out);
    CHECK(!has_close(out, n, 4));
    CHECK_EQ_INT(atomic_load(&bob->connections), 2);
    /* and the daemon's concurrency, counted with FakeTLS connections */
    cfg2.secrets[1].max_connections = 0;
    cfg2.concurrency = 3;
    atomic_fetch_add(&inspected, 1);   /* a FakeTLS connection elsewhere */
    n = open_stream(s, sv[1], 5, out, sizeof out);
    CHECK(has_close(out, n, 5));
    CHECK_EQ_INT(mx.web.limited[WEB_AT_STREAM][WEB_LIM_CONCURRENCY], 1);
    CHECK_EQ_INT(mx.concurrency_limited, 1);
    atomic_fetch_sub(&inspected, 1);

    /* the session's end gives everything back */
    web_session_end(s, WEB_END_SHUTDOWN);
    web_session_end(s, WEB_END_SHUTDOWN);
    CHECK_EQ_INT(atomic_load(&bob->connections), 0);
    CHECK_EQ_INT(atomic_load(&inspected), 0);
    CHECK_EQ_INT(mx.web.memory_bytes, 0);
    close(sv[1]);
    for (size_t i = 0; i < ngraves; i++)
        free(graves[i]);
    ngraves = 0;
    secret_usage_destroy(u);
    loop_close(&lp);
}

/* ---- a stream's deadlines and its secret after a reload ---- */

typedef struct {
    tgf_config cfg;
    loop lp;
    metrics mx;
    web_tokens tokens;
    web_cap_entry caps[4];
    size_t carriers;
    secret_usage *u;
    atomic_size_t inspected;
    web_limits lim;
    web_env env;
    int sv[2];
    web_session *s;
} lim_fixture;

/* A carrier of bob's dd link after HELLO/WELCOME; 0 on success. */
static int fixture_up(lim_fixture *f)
{
    char err[256];
    memset(f, 0, sizeof *f);
    if (config_load_string(LIMITS_CONFIG, sizeof LIMITS_CONFIG - 1, "unit", &f->cfg, err,
                           sizeof err) < 0 ||
        loop_init_signals(&f->lp, 200, 0) < 0)
        return -1;
    metrics_init(&f->mx);
    web_tokens_init(&f->tokens);
    memcpy(f->caps[3].key, f->cfg.secret_keys[1], sizeof f->caps[3].key);
    f->u = secret_usage_create();
    f->lim = (web_limits){ .usage = f->u, .inspected = &f->inspected };
    f->env = (web_env){ .loop = &f->lp, .metrics = &f->mx, .cfg = &f->cfg, .tokens = &f->tokens,
                        .caps = f->caps, .ncaps = 4, .host = "proxy.example.com",
                        .carriers = &f->carriers, .limits = &f->lim,
                        .defer_free = lim_defer_free, .on_closed = lim_on_closed };
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, f->sv) < 0)
        return -1;
    struct sockaddr_in peer = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
    f->s = web_session_start(&f->env, f->sv[0], (struct sockaddr *)&peer, sizeof peer);
    if (!f->s)
        return -1;
    web_session_run(f->s);
    if (web_session_force_carrier(f->s, 3) < 0)
        return -1;
    static const uint8_t hello[] = { 0x10, 0, 0, 0, 0, 0, 0, 1, 1 };
    feed_frames(f->s, hello, sizeof hello);
    uint8_t out[64];
    return drain(f->sv[1], out, sizeof out) == 10 ? 0 : -1;
}

static void fixture_down(lim_fixture *f)
{
    if (f->s)
        web_session_end(f->s, WEB_END_SHUTDOWN);
    close(f->sv[1]);
    for (size_t i = 0; i < ngraves; i++)
        free(graves[i]);
    ngraves = 0;
    secret_usage_destroy(f->u);
    loop_close(&f->lp);
}

TEST(web_limits_bare_open_gives_its_slots_back_at_the_handshake_timeout)
{
    static lim_fixture f;
    CHECK(fixture_up(&f) == 0);
    if (!f.s)
        return;
    uint8_t out[4096];
    usage_slot *bob = secret_usage_slot(f.u, "bob");
    uint64_t t0 = f.lp.now_ms;
    size_t n = open_stream(f.s, f.sv[1], 1, out, sizeof out);   /* OPEN, never any DATA */
    CHECK(!has_close(out, n, 1));
    CHECK_EQ_INT(atomic_load(&bob->connections), 1);
    uint32_t hs = f.cfg.timeout_handshake_ms;
    CHECK(hs > 0);
    f.lp.now_ms = t0 + hs - 1;
    web_session_tick(f.s, f.lp.now_ms);
    n = drain(f.sv[1], out, sizeof out);
    CHECK(!has_close(out, n, 1));
    CHECK_EQ_INT(atomic_load(&bob->connections), 1);
    unit_stderr_begin();
    f.lp.now_ms = t0 + hs;
    web_session_tick(f.s, f.lp.now_ms);
    unit_stderr_end();
    n = drain(f.sv[1], out, sizeof out);
    CHECK_MSG(has_close(out, n, 1), "no CLOSE for a stream past its handshake timeout");
    CHECK_EQ_INT(atomic_load(&bob->connections), 0);
    CHECK_EQ_INT(atomic_load(&f.inspected), 0);
    CHECK_EQ_INT(f.mx.web.streams, 0);
    CHECK_EQ_INT(f.mx.web.streams_init_timeout, 1);
    CHECK(web_session_carrier_open(f.s));
    /* the slot is free again: the next OPEN is admitted */
    n = open_stream(f.s, f.sv[1], 2, out, sizeof out);
    CHECK(!has_close(out, n, 2));
    CHECK_EQ_INT(atomic_load(&bob->connections), 1);
    fixture_down(&f);
}

TEST(web_limits_stream_follows_its_secrets_key_after_a_rename)
{
    static lim_fixture f;
    static tgf_config renamed, gone;
    CHECK(fixture_up(&f) == 0);
    if (!f.s)
        return;
    uint8_t out[4096];
    /* bob renamed robert, same key, robert's own limit */
    renamed = f.cfg;
    strcpy(renamed.secrets[1].name, "robert");
    renamed.secrets[1].max_connections = 1;
    f.env.cfg = &renamed;
    unit_stderr_begin();
    size_t n = open_stream(f.s, f.sv[1], 1, out, sizeof out);
    int first_ok = !has_close(out, n, 1);
    n = open_stream(f.s, f.sv[1], 2, out, sizeof out);
    int second_closed = has_close(out, n, 2);
    const char *log = unit_stderr_end();
    CHECK(first_ok);
    CHECK(second_closed);
    usage_slot *robert = secret_usage_slot(f.u, "robert");
    usage_slot *bob = secret_usage_slot(f.u, "bob");
    CHECK_EQ_INT(atomic_load(&robert->connections), 1);
    CHECK_EQ_INT(atomic_load(&bob->connections), 0);
    CHECK_EQ_INT(atomic_load(&robert->refused[USAGE_MAX_CONNECTIONS]), 1);
    CHECK_MSG(log && strstr(log, "of secret 'robert'"), "log: %s", log ? log : "(none)");
    /* the key gone from the config: the carrier's copy (bob, max 1) */
    gone = f.cfg;
    memset(gone.secret_keys[1], 0x5a, sizeof gone.secret_keys[1]);
    gone.secrets[1].max_connections = 0;
    f.env.cfg = &gone;
    n = open_stream(f.s, f.sv[1], 3, out, sizeof out);
    CHECK(!has_close(out, n, 3));
    CHECK_EQ_INT(atomic_load(&bob->connections), 1);
    unit_stderr_begin();
    n = open_stream(f.s, f.sv[1], 4, out, sizeof out);
    unit_stderr_end();
    CHECK(has_close(out, n, 4));
    CHECK_EQ_INT(atomic_load(&bob->connections), 1);
    f.env.cfg = &f.cfg;
    web_session_end(f.s, WEB_END_SHUTDOWN);
    CHECK_EQ_INT(atomic_load(&robert->connections), 0);
    CHECK_EQ_INT(atomic_load(&bob->connections), 0);
    fixture_down(&f);
}

TEST(web_limits_find_key)
{
    static tgf_config cfg;
    char err[256];
    CHECK(config_load_string(LIMITS_CONFIG, sizeof LIMITS_CONFIG - 1, "unit", &cfg, err,
                             sizeof err) == 0);
    CHECK(web_limits_find_key(&cfg, cfg.secret_keys[1]) == &cfg.secrets[1]);
    CHECK(web_limits_find_key(&cfg, cfg.secret_keys[0]) == &cfg.secrets[0]);
    uint8_t other[SECRET_KEY_LEN];
    memset(other, 0x5a, sizeof other);
    CHECK(web_limits_find_key(&cfg, other) == NULL);
}
