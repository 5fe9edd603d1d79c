/* Named secrets: the [secrets] and [secret-limits.NAME] tables, RFC 3339
 * expiry, matching a hello against a ring of keys (and what that costs),
 * the usage limits, and reference-counted configs. */
#include "unit.h"

#include <stdlib.h>
#include <time.h>

#include "cli.h"
#include "config.h"
#include "config_ref.h"
#include "config_secrets.h"
#include "crypto.h"
#include "faketls.h"
#include "log.h"
#include "secret_usage.h"

#define HOST "example.com"
#define HEX_A "eed1f7eb92b30576b129fb49069ca45dfc6578616d706c652e636f6d"
#define HEX_B "ee00112233445566778899aabbccddeeff6578616d706c652e636f6d"
#define HEX_ORG "ee00112233445566778899aabbccddeeff6578616d706c652e6f7267"  /* example.org */
#define BIND "bind-to = \"0.0.0.0:443\"\n"
#define NOW 1700000000

static int load(const char *text, tgf_config *cfg, char *err, size_t cap)
{
    log_level old = log_get_level();
    log_set_level(LOG_ERROR);
    int rc = config_load_string(text, strlen(text), "t.toml", cfg, err, cap);
    log_set_level(old);
    return rc;
}

static void expect_fail(const char *text, int line, const char *what, int src_line)
{
    static tgf_config cfg;
    char err[512], prefix[32];
    if (!unit_check(load(text, &cfg, err, sizeof err) != 0, __FILE__, src_line,
                    "load succeeded, expected an error"))
        return;
    snprintf(prefix, sizeof prefix, "t.toml:%d: ", line);
    unit_check(strncmp(err, prefix, strlen(prefix)) == 0 && strstr(err, what) != NULL,
               __FILE__, src_line, "got '%s', want prefix '%s' and '%s'", err, prefix, what);
}
#define EXPECT_FAIL(text, line, what) expect_fail(text, line, what, __LINE__)

TEST(secrets_table_and_default)
{
    static tgf_config cfg;
    char err[512] = "";
    /* Only named secrets. */
    CHECK_MSG(load(BIND "[secrets]\nalice = \"" HEX_A "\"\nbob = \"" HEX_B "\"\n", &cfg, err,
                   sizeof err) == 0, "%s", err);
    CHECK_EQ_INT(cfg.secret_count, 2);
    CHECK_STR(cfg.secrets[0].name, "alice");
    CHECK_STR(cfg.secrets[1].name, "bob");
    CHECK_STR(cfg.secret.host, HOST);
    CHECK(cfg.secret_keys[1][0] == 0x00 && cfg.secret_keys[1][15] == 0xff);
    CHECK(memcmp(cfg.secret.key, cfg.secret_keys[0], 16) == 0);
    CHECK_EQ_INT(config_secret_find(&cfg, "bob"), 1);
    CHECK_EQ_INT(config_secret_find(&cfg, "carol"), -1);

    /* mtg's secret is "default" and comes first, even when a limits table
     * named it before [secrets]. */
    CHECK_MSG(load("secret = \"" HEX_A "\"\n" BIND "[secret-limits.bob]\nmax-connections = 3\n"
                   "[secrets]\nbob = \"" HEX_B "\"\n[secret-limits.default]\n"
                   "expires = \"2030-01-01T00:00:00Z\"\n", &cfg, err, sizeof err) == 0, "%s", err);
    CHECK_EQ_INT(cfg.secret_count, 2);
    CHECK_STR(cfg.secrets[0].name, "default");
    CHECK(cfg.secret_keys[0][0] == 0xd1);
    CHECK_STR(cfg.secrets[1].name, "bob");
    CHECK_EQ_INT(cfg.secrets[1].max_connections, 3);
    CHECK_EQ_INT(cfg.secrets[0].expires, 1893456000);
    CHECK_EQ_INT(cfg.secrets[0].max_connections, 0);

    /* The single secret alone still works as before. */
    CHECK_MSG(load("secret = \"" HEX_A "\"\n" BIND, &cfg, err, sizeof err) == 0, "%s", err);
    CHECK_EQ_INT(cfg.secret_count, 1);
    CHECK_STR(cfg.secrets[0].name, "default");
}

TEST(secrets_limits_values)
{
    static tgf_config cfg;
    char err[512] = "";
    CHECK_MSG(load(BIND "[secrets]\nq = \"" HEX_A "\"\n[secret-limits.q]\nquota = \"10gib\"\n"
                   "quota-period = \"24h\"\nexpires = \"2027-01-31T23:59:59.5+02:00\"\n",
                   &cfg, err, sizeof err) == 0, "%s", err);
    CHECK(cfg.secrets[0].quota_bytes == 10ull << 30);
    CHECK(cfg.secrets[0].quota_period_s == 86400);
    CHECK_EQ_INT(cfg.secrets[0].expires, 1801439999 - 7200);
    CHECK_MSG(load(BIND "[secrets]\nq = \"" HEX_A "\"\n[secret-limits.q]\nquota = \"1mib\"\n",
                   &cfg, err, sizeof err) == 0, "%s", err);
    CHECK(cfg.secrets[0].quota_period_s == 30 * 86400);   /* the default */
}

TEST(secrets_errors)
{
    EXPECT_FAIL(BIND, 1, "missing required key 'secret'");
    EXPECT_FAIL(BIND "[secrets]\n", 1, "or a [secrets] table");
    EXPECT_FAIL(BIND "[secrets]\na = \"" HEX_A "\"\nb = \"" HEX_ORG "\"\n", 4, "same hostname");
    EXPECT_FAIL(BIND "[secrets]\na = \"" HEX_A "\"\nb = \"" HEX_A "\"\n", 1, "same key");
    EXPECT_FAIL(BIND "[secrets]\na = \"ee00\"\n", 3, "key 'secrets.a' is invalid");
    EXPECT_FAIL(BIND "[secrets]\na = 5\n", 3, "must be a string");
    EXPECT_FAIL(BIND "[secrets]\n\"a b\" = \"" HEX_A "\"\n", 3, "secret name 'a b'");
    EXPECT_FAIL(BIND "[secrets]\nabcdefghijabcdefghijabcdefghijabc = \"" HEX_A "\"\n", 3,
                "1 to 32 letters");
    EXPECT_FAIL("secret = \"" HEX_A "\"\n" BIND "[secrets]\ndefault = \"" HEX_B "\"\n", 1,
                "another 'default'");
    EXPECT_FAIL(BIND "[secrets]\na = \"" HEX_A "\"\n[secret-limits.zed]\nquota = \"1mib\"\n", 5,
                "[secret-limits.zed] names no secret");
    EXPECT_FAIL(BIND "[secrets]\na = \"" HEX_A "\"\n[secret-limits]\nquota = \"1mib\"\n", 5,
                "[secret-limits.NAME]");
    EXPECT_FAIL(BIND "[secrets]\na = \"" HEX_A "\"\n[secret-limits.a]\nmax-conns = 1\n", 5,
                "unknown key 'max-conns'");
    EXPECT_FAIL(BIND "[secrets]\na = \"" HEX_A "\"\n[secret-limits.a]\nmax-connections = 0\n", 5,
                "between 1 and 65535");
    EXPECT_FAIL(BIND "[secrets]\na = \"" HEX_A "\"\n[secret-limits.a]\nexpires = \"2027-02-30T00:00:00Z\"\n",
                5, "RFC 3339");
    EXPECT_FAIL(BIND "[secrets]\na = \"" HEX_A "\"\n[secret-limits.a]\nquota = \"100\"\n", 5,
                "size string");
    EXPECT_FAIL(BIND "[secrets]\na = \"" HEX_A "\"\n[secret-limits.a]\nquota-period = \"30s\"\n",
                5, "from 1m to 8784h");
    /* A secret is never part of a message. */
    static tgf_config cfg;
    char err[512];
    CHECK(load(BIND "[secrets]\na = \"" HEX_A "\"\nb = \"" HEX_A "\"\n", &cfg, err, sizeof err) < 0);
    CHECK(strstr(err, "d1f7eb") == NULL);
}

TEST(secrets_rfc3339)
{
    int64_t t;
    CHECK(config_parse_rfc3339("1970-01-01T00:00:00Z", &t) == 0 && t == 0);
    CHECK(config_parse_rfc3339("2000-02-29T12:00:00Z", &t) == 0 && t == 951825600);
    CHECK(config_parse_rfc3339("2000-02-29t12:00:00z", &t) == 0 && t == 951825600);
    CHECK(config_parse_rfc3339("2000-02-29 12:00:00+01:30", &t) == 0 && t == 951825600 - 5400);
    CHECK(config_parse_rfc3339("2000-02-29T12:00:00-00:30", &t) == 0 && t == 951825600 + 1800);
    CHECK(config_parse_rfc3339("2000-02-29T12:00:00.123456Z", &t) == 0 && t == 951825600);
    CHECK(config_parse_rfc3339("1969-12-31T23:59:59Z", &t) == 0 && t == -1);
    static const char *const bad[] = {
        "", "2000-02-29", "2000-02-29T12:00:00", "1900-02-29T00:00:00Z", "2001-13-01T00:00:00Z",
        "2001-00-01T00:00:00Z", "2001-04-31T00:00:00Z", "2001-01-01T24:00:00Z",
        "2001-01-01T00:60:00Z", "2001-01-01T00:00:00.Z", "2001-01-01T00:00:00+0100",
        "2001-01-01T00:00:00Zx", "2001-1-01T00:00:00Z", "01-01-2001T00:00:00Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(config_parse_rfc3339(bad[i], &t) < 0, "accepted '%s'", bad[i]);
}

/* ---- matching a hello against a ring of keys ---- */

static uint8_t *put16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

/* A tdlib-shaped 517-byte hello for host signed with key at ts. */
static size_t signed_hello(uint8_t *rec, const uint8_t key[16], uint32_t ts)
{
    uint8_t *p = rec + 9, *ext_at, mac[32];
    *p++ = 3; *p++ = 3;
    memset(p, 0, 32);
    p += 32;
    *p++ = 32;
    for (int i = 0; i < 32; i++)
        *p++ = (uint8_t)i;
    p = put16(p, 4); p = put16(p, 0x1301); p = put16(p, 0x1302);
    *p++ = 1; *p++ = 0;
    ext_at = p;
    p += 2;
    size_t hl = strlen(HOST);
    p = put16(p, 0); p = put16(p, hl + 5); p = put16(p, hl + 3);
    *p++ = 0;
    p = put16(p, hl);
    memcpy(p, HOST, hl);
    p += hl;
    size_t pad = 517 - (size_t)(p - rec) - 4;
    p = put16(p, 0x0015); p = put16(p, pad);
    memset(p, 0, pad);
    p += pad;
    put16(ext_at, (size_t)(p - ext_at - 2));
    size_t total = (size_t)(p - rec), l = total - 9;
    rec[0] = 0x16; rec[1] = 3; rec[2] = 1;
    put16(rec + 3, total - 5);
    rec[5] = 1; rec[6] = (uint8_t)(l >> 16);
    put16(rec + 7, l);
    crypto_hmac_sha256(key, 16, rec, total, mac);
    for (int i = 0; i < 4; i++)
        mac[28 + i] ^= (uint8_t)(ts >> (8 * i));
    memcpy(rec + 11, mac, 32);
    return total;
}

#define RING_MAX 256
static uint8_t ring_keys[RING_MAX][SECRET_KEY_LEN];
static crypto_hmac_key ring_prepared[RING_MAX];

/* n keys; with prepared HMAC states (as the daemon's config has) or not. */
static faketls_keyring ring_of(size_t n, int prepared)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < SECRET_KEY_LEN; j++)
            ring_keys[i][j] = (uint8_t)(i * 31 + j * 7 + 1);
        crypto_hmac_key_init(&ring_prepared[i], ring_keys[i], SECRET_KEY_LEN);
    }
    faketls_keyring r = { ring_keys, n, HOST, strlen(HOST), prepared ? ring_prepared : NULL };
    return r;
}

TEST(secrets_ring_finds_the_key)
{
    uint8_t buf[1024];
    faketls_keyring ring = ring_of(100, 1);
    static const size_t at[] = { 0, 1, 50, 98, 99 };
    for (size_t i = 0; i < 2 * (sizeof at / sizeof at[0]); i++) {
        if (i == sizeof at / sizeof at[0])
            ring.prepared = NULL;   /* the same without prepared states */
        size_t k = at[i % (sizeof at / sizeof at[0])];
        size_t len = signed_hello(buf, ring_keys[k], NOW);
        CHECK_EQ_INT(len, 517);
        faketls_hello h;
        faketls_reason why;
        CHECK_EQ_INT(faketls_check_client_hello_any(buf, len, &ring, NOW, 3000, &h, &why),
                     FAKETLS_OK);
        CHECK_EQ_INT(h.key_index, k);
        CHECK_EQ_INT(h.consumed, len);
    }
    /* A key outside the ring. */
    uint8_t other[16];
    memset(other, 0x77, sizeof other);
    size_t len = signed_hello(buf, other, NOW);
    faketls_reason why = FAKETLS_R_NONE;
    CHECK_EQ_INT(faketls_check_client_hello_any(buf, len, &ring, NOW, 3000, NULL, &why),
                 FAKETLS_REJECT);
    CHECK_EQ_INT(why, FAKETLS_R_BAD_DIGEST);
    /* A skewed hello names its key and timestamp, for the warning. */
    len = signed_hello(buf, ring_keys[42], NOW - 125);
    faketls_hello h;
    CHECK_EQ_INT(faketls_check_client_hello_any(buf, len, &ring, NOW, 3000, &h, &why),
                 FAKETLS_REJECT);
    CHECK_EQ_INT(why, FAKETLS_R_TIME_SKEW);
    CHECK_EQ_INT(h.key_index, 42);
    CHECK_EQ_INT((int64_t)h.timestamp - NOW, -125);
    /* The one-secret call agrees with a ring of one. */
    tg_secret s = { .host = HOST, .host_len = strlen(HOST) };
    memcpy(s.key, ring_keys[7], 16);
    len = signed_hello(buf, ring_keys[7], NOW);
    CHECK_EQ_INT(faketls_check_client_hello(buf, len, &s, NOW, 3000, NULL, NULL), FAKETLS_OK);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);   /* CPU time: the machine is shared */
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Cost of one hello check with n secrets (the HMAC per secret dominates);
 * printed for the README, checked only to grow with n. */
TEST(secrets_ring_cost)
{
    static const size_t sizes[] = { 1, 10, 100, 256 };
    uint8_t buf[1024];
    double per[2][4];
    for (int prep = 0; prep < 2; prep++)
        for (size_t s = 0; s < 4; s++) {
            faketls_keyring ring = ring_of(sizes[s], prep);
            size_t len = signed_hello(buf, ring_keys[sizes[s] - 1], NOW);
            int iters = (int)(20000 / sizes[s]) + 50;
            double t0 = now_s();
            for (int i = 0; i < iters; i++)
                CHECK(faketls_check_client_hello_any(buf, len, &ring, NOW, 3000, NULL, NULL) ==
                      FAKETLS_OK);
            per[prep][s] = (now_s() - t0) / iters;
            printf("    hello check, %3zu secrets, %s: %8.1f us (%.2f us per secret)\n",
                   sizes[s], prep ? "prepared HMAC keys" : "raw keys          ",
                   per[prep][s] * 1e6, per[prep][s] * 1e6 / (double)sizes[s]);
        }
    CHECK(per[1][3] > per[1][0]);
}

/* ---- usage limits ---- */

TEST(secrets_usage_limits)
{
    secret_usage *u = secret_usage_create();
    CHECK(u != NULL);
    usage_slot *a = secret_usage_slot(u, "a");
    CHECK(a != NULL && secret_usage_slot(u, "a") == a && secret_usage_slot(u, "b") != a);
    config_secret s = { .name = "a", .max_connections = 2, .quota_period_s = 86400 };
    CHECK_EQ_INT(secret_usage_admit(a, &s, NOW), USAGE_REFUSED_COUNT);
    CHECK_EQ_INT(secret_usage_admit(a, &s, NOW), USAGE_REFUSED_COUNT);
    CHECK_EQ_INT(secret_usage_admit(a, &s, NOW), USAGE_MAX_CONNECTIONS);
    secret_usage_release(a);
    CHECK_EQ_INT(secret_usage_admit(a, &s, NOW), USAGE_REFUSED_COUNT);
    CHECK_EQ_INT(atomic_load(&a->connections), 2);
    CHECK_EQ_INT(atomic_load(&a->refused[USAGE_MAX_CONNECTIONS]), 1);
    secret_usage_release(a);
    secret_usage_release(a);

    s.expires = NOW;
    CHECK_EQ_INT(secret_usage_admit(a, &s, NOW - 1), USAGE_REFUSED_COUNT);
    secret_usage_release(a);
    CHECK_EQ_INT(secret_usage_admit(a, &s, NOW), USAGE_EXPIRED);
    s.expires = 0;

    /* Quota: used up within a UTC day, fresh the next day. */
    s.quota_bytes = 1000;
    int64_t day = NOW - NOW % 86400;
    CHECK_EQ_INT(secret_usage_admit(a, &s, day + 10), USAGE_REFUSED_COUNT);
    secret_usage_add(a, 0, 600);
    secret_usage_add(a, 1, 400);
    secret_usage_release(a);
    CHECK_EQ_INT(secret_usage_admit(a, &s, day + 20), USAGE_QUOTA);
    CHECK_EQ_INT(secret_usage_admit(a, &s, day + 86400), USAGE_REFUSED_COUNT);
    CHECK_EQ_INT(atomic_load(&a->window_bytes), 0);
    CHECK_EQ_INT(atomic_load(&a->traffic[0]), 600);
    secret_usage_release(a);

    /* The skew warning: one per interval, the rest counted. */
    uint64_t more = 99;
    CHECK(secret_usage_skew_warn(u, -120, 1000, &more) == 1 && more == 0);
    CHECK(secret_usage_skew_warn(u, -121, 2000, &more) == 0);
    CHECK(secret_usage_skew_warn(u, -122, 3000, &more) == 0);
    CHECK(secret_usage_skew_warn(u, -123, 12000, &more) == 1 && more == 2);

    char out[8192];
    size_t n = secret_usage_render(u, "mtg", out, 0, sizeof out);
    CHECK(n > 0 && strstr(out, "mtg_secret_refused{reason=\"quota\",secret=\"a\"} 1\n") != NULL);
    CHECK(strstr(out, "mtg_client_clock_skew_seconds -123\n") != NULL);
    secret_usage_destroy(u);
}

TEST(secrets_config_ref)
{
    static tgf_config base;
    char err[256];
    CHECK(load("secret = \"" HEX_A "\"\n" BIND, &base, err, sizeof err) == 0);
    tgf_config *c = config_ref_copy(&base);
    CHECK(c != NULL && c->secret_count == 1);
    CHECK(config_ref_hold(c) == c);
    config_ref_drop(c);
    CHECK_STR(c->secrets[0].name, "default");   /* still held once */
    config_ref_drop(c);
    config_ref_drop(NULL);
}

/* simple-run sets its SECRET without a file: it is the one secret, "default". */
TEST(secrets_simple_run_secret_is_default)
{
    static tgf_config cfg;
    char *argv[] = { (char *)"simple-run", (char *)"127.0.0.1:443", (char *)HEX_B };
    cli_run_opts opts;
    CHECK_EQ_INT(cli_simple_run_parse(3, argv, &cfg, &opts), 0);
    CHECK_EQ_INT(cfg.secret_count, 1);
    CHECK_STR(cfg.secrets[0].name, "default");
    CHECK(memcmp(cfg.secret_keys[0], cfg.secret.key, SECRET_KEY_LEN) == 0);
    CHECK(cfg.secret_keys[0][15] == 0xff);
}
