#include "unit.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "log.h"

#define SECRET_HEX "eed1f7eb92b30576b129fb49069ca45dfc6578616d706c652e636f6d"  /* example.com */
#define TOP "secret = \"" SECRET_HEX "\"\nbind-to = \"0.0.0.0:443\"\n"

/* Warnings are expected in these tests; keep the output readable. */
static int load(const char *text, tgf_config *cfg, char *err, size_t cap)
{
    log_level old = log_get_level();
    log_set_level(LOG_ERROR);
    int rc = config_load_string(text, strlen(text), "t.toml", cfg, err, cap);
    log_set_level(old);
    return rc;
}

static void expect_ok(const char *text, tgf_config *cfg, int src_line)
{
    char err[512] = "";
    unit_check(load(text, cfg, err, sizeof err) == 0, __FILE__, src_line, "load failed: %s", err);
}
#define EXPECT_OK(text, cfg) expect_ok(text, cfg, __LINE__)

/* The error must start with "t.toml:<line>: " and contain `what`. */
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

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    dc_format_addr((const struct sockaddr *)ss, out, cap);
}

/* Shaped like mtg's example.config.toml (every section, the example's
 * values), with the blocklist switched per test. */
static const char example_head[] =
    "# mtg example configuration\n"
    "debug = true\n"
    "secret = \"ee367a189aee18fa31c190054efd4a8e9573746f726167652e676f6f676c65617069732e636f6d\"\n"
    "bind-to = \"0.0.0.0:3128\"\n"
    "concurrency = 8192\n"
    "prefer-ip = \"prefer-ipv6\"\n"
    "auto-update = false\n"
    "tolerate-time-skewness = \"5s\"\n"
    "allow-fallback-on-unknown-dc = false\n"
    "\n"
    "[domain-fronting]\n"
    "port = 443\n"
    "proxy-protocol = false\n"
    "\n"
    "[network]\n"
    "dns = \"https://1.1.1.1\"\n"
    "proxies = [\n"
    "    # \"socks5://user:password@host:port?open_threshold=5&half_open_timeout=1m\",\n"
    "]\n"
    "\n"
    "[network.timeout]\n"
    "tcp = \"5s\"\n"
    "http = \"10s\"\n"
    "idle = \"5m\"\n"
    "handshake = \"10s\"\n"
    "\n"
    "[network.keep-alive]\n"
    "disabled = false\n"
    "idle = \"15s\"\n"
    "interval = \"15s\"\n"
    "count = 9\n"
    "\n"
    "[defense.anti-replay]\n"
    "enabled = true\n"
    "max-size = \"1mib\"\n"
    "error-rate = 0.001\n"
    "\n"
    "[defense.blocklist]\n";                                       /* line 38 */
static const char example_tail[] =
    "download-concurrency = 2\n"                                   /* line 40 */
    "urls = [\n"
    "    \"https://iplists.firehol.org/files/firehol_level1.netset\",\n"
    "]\n"
    "update-each = \"24h\"\n"
    "\n"
    "[defense.allowlist]\n"
    "enabled = false\n"
    "download-concurrency = 2\n"
    "urls = []\n"
    "update-each = \"24h\"\n"
    "\n"
    "[defense.doppelganger]\n"
    "urls = [\"https://example.com/\"]\n"
    "repeats-per-raid = 10\n"
    "raid-each = \"6h\"\n"
    "drs = false\n"
    "\n"
    "[stats.statsd]\n"
    "enabled = false\n"
    "address = \"127.0.0.1:8888\"\n"
    "metric-prefix = \"mtg\"\n"
    "tag-format = \"datadog\"\n"
    "\n"
    "[stats.prometheus]\n"
    "enabled = true\n"
    "bind-to = \"127.0.0.1:3129\"\n"
    "http-path = \"/\"\n"
    "metric-prefix = \"mtg\"\n";

static char *example(const char *blocklist_enabled)
{
    size_t cap = sizeof example_head + sizeof example_tail + 64;
    char *s = malloc(cap);
    if (s != NULL)
        snprintf(s, cap, "%s%s%s", example_head, blocklist_enabled, example_tail);
    return s;
}

TEST(config_example_blocklist_enabled_loads)
{
    static tgf_config cfg;
    char *text = example("enabled = true\n");
    CHECK(text != NULL);
    if (text != NULL) {
        EXPECT_OK(text, &cfg);
        CHECK(cfg.blocklist.enabled);
        CHECK_EQ_INT(cfg.blocklist.url_count, 1);
        CHECK(strcmp(cfg.blocklist.urls[0],
                     "https://iplists.firehol.org/files/firehol_level1.netset") == 0);
        CHECK_EQ_INT(cfg.blocklist.update_each_ms, 24 * 3600 * 1000);
        CHECK_EQ_INT(cfg.blocklist.download_concurrency, 2);
        CHECK(!cfg.allowlist.enabled);
    }
    free(text);
}

TEST(config_example_loads)
{
    static tgf_config cfg;
    char buf[64];
    char *text = example("enabled = false\n");
    CHECK(text != NULL);
    if (text == NULL)
        return;
    EXPECT_OK(text, &cfg);
    free(text);
    CHECK_EQ_INT(cfg.debug, 1);
    CHECK_STR(cfg.secret.host, "storage.googleapis.com");
    addr_text(&cfg.bind_addr, buf, sizeof buf);
    CHECK_STR(buf, "0.0.0.0:3128");
    CHECK_EQ_INT(cfg.concurrency, 8192);
    CHECK_EQ_INT(cfg.tolerate_skew_ms, 5000);
    CHECK_EQ_INT(cfg.timeout_tcp_ms, 5000);
    CHECK_EQ_INT(cfg.timeout_idle_ms, 300000);
    CHECK_EQ_INT(cfg.timeout_handshake_ms, 10000);
    CHECK_EQ_INT(cfg.antireplay_enabled, 1);
    CHECK_EQ_INT(cfg.antireplay_max_size, 1 << 20);
    CHECK_EQ_INT(cfg.prometheus_enabled, 1);
    addr_text(&cfg.prometheus_bind, buf, sizeof buf);
    CHECK_STR(buf, "127.0.0.1:3129");
    CHECK_STR(cfg.prometheus_path, "/");
    CHECK_STR(cfg.prometheus_prefix, "mtg");
    CHECK_STR(cfg.fronting_host, "");
    CHECK_EQ_INT(cfg.fronting_port, 443);
}

/* /work/shared/reference/seed-setup-without-sni-router.txt, with a real
 * secret in place of ${MTG_SECRET}. */
TEST(config_seed_deployment)
{
    static tgf_config cfg;
    EXPECT_OK(
        "secret = \"" SECRET_HEX "\"\n"
        "\n"
        "# mtg owns host :443 directly.  [::] binds both IPv4 and IPv6.\n"
        "bind-to = \"[::]:443\"\n"
        "\n"
        "# No proxy-protocol-listener: clients connect to mtg directly, so it\n"
        "# already sees their real addresses.\n"
        "\n"
        "[domain-fronting]\n"
        "host = \"127.0.0.1\"\n"
        "port = 8443\n"
        "proxy-protocol = true\n"
        "\n"
        "[defense.anti-replay]\n"
        "enabled = true\n"
        "max-size = \"1mib\"\n"
        "error-rate = 0.001\n", &cfg);
    char buf[64];
    addr_text(&cfg.bind_addr, buf, sizeof buf);
    CHECK_STR(buf, "[::]:443");
    CHECK_EQ_INT(cfg.bind_addr.ss_family, AF_INET6);
    CHECK_STR(cfg.secret.host, "example.com");
    CHECK_STR(cfg.fronting_host, "127.0.0.1");
    CHECK_EQ_INT(cfg.fronting_port, 8443);
    CHECK_EQ_INT(cfg.fronting_proxy_protocol, 1);
    CHECK_EQ_INT(cfg.proxy_protocol_listener, 0);
    CHECK_EQ_INT(cfg.antireplay_enabled, 1);
    CHECK_EQ_INT(cfg.antireplay_max_size, 1048576);
    CHECK(cfg.antireplay_error_rate == 0.001);
}

static void check_defaults(const tgf_config *cfg)
{
    CHECK_EQ_INT(cfg->debug, 0);
    CHECK_EQ_INT(cfg->proxy_protocol_listener, 0);
    CHECK_EQ_INT(cfg->concurrency, 4096);
    CHECK_EQ_INT(cfg->dcs.prefer, DC_PREFER_IPV6);
    CHECK_EQ_INT(cfg->dcs.allow_fallback, 0);
    CHECK_EQ_INT(cfg->dcs.override_count, 0);
    CHECK_EQ_INT(cfg->have_public_ipv4, 0);
    CHECK_EQ_INT(cfg->have_public_ipv6, 0);
    CHECK_EQ_INT(cfg->tolerate_skew_ms, 3000);
    CHECK_STR(cfg->fronting_host, "");
    CHECK_EQ_INT(cfg->fronting_port, 443);
    CHECK_EQ_INT(cfg->fronting_proxy_protocol, 0);
    CHECK_EQ_INT(cfg->timeout_tcp_ms, 0);
    CHECK_EQ_INT(cfg->timeout_idle_ms, 300000);
    CHECK_EQ_INT(cfg->timeout_handshake_ms, 10000);
    CHECK_EQ_INT(cfg->keepalive_disabled, 0);
    CHECK_EQ_INT(cfg->keepalive_idle_s, 15);
    CHECK_EQ_INT(cfg->keepalive_interval_s, 15);
    CHECK_EQ_INT(cfg->keepalive_count, 9);
    CHECK_EQ_INT(cfg->antireplay_enabled, 1);          /* tgfront: on by default */
    CHECK_EQ_INT(cfg->antireplay_max_size, 1048576);
    CHECK(cfg->antireplay_error_rate == 0.001);
    CHECK_EQ_INT(cfg->prometheus_enabled, 0);
    CHECK_STR(cfg->prometheus_path, "/");
    CHECK_STR(cfg->prometheus_prefix, "mtg");
}

TEST(config_defaults_match_mtg)
{
    static tgf_config cfg;
    memset(&cfg, 0xa5, sizeof cfg);
    config_defaults(&cfg);
    check_defaults(&cfg);
    /* A minimal file leaves every default in place. */
    memset(&cfg, 0xa5, sizeof cfg);
    EXPECT_OK(TOP, &cfg);
    check_defaults(&cfg);
    /* mtg: an explicit zero duration means "unset". */
    EXPECT_OK(TOP "tolerate-time-skewness = \"0s\"\n[network.timeout]\nidle = \"0\"\n"
              "[network.keep-alive]\nidle = \"0s\"\n", &cfg);
    CHECK_EQ_INT(cfg.tolerate_skew_ms, 3000);
    CHECK_EQ_INT(cfg.timeout_idle_ms, 300000);
    CHECK_EQ_INT(cfg.keepalive_idle_s, 15);
}

/* mtg drops 0, 0.0 and "" for every key except secret, bind-to and
 * proxy-protocol-listener (json omitempty), so they mean "use the default".
 * A templated config with an empty variable must load the same way. */
TEST(config_zero_and_empty_mean_default)
{
    static tgf_config cfg;
    memset(&cfg, 0xa5, sizeof cfg);
    EXPECT_OK(TOP
              "concurrency = 0\n"
              "prefer-ip = \"\"\n"
              "public-ipv4 = \"\"\n"
              "public-ipv6 = \"\"\n"
              "domain-fronting-ip = \"\"\n"
              "domain-fronting-port = 0\n"
              "tolerate-time-skewness = \"\"\n"
              "[domain-fronting]\n"
              "host = \"\"\n"
              "ip = \"\"\n"
              "port = 0\n"
              "[network]\n"
              "dns = \"\"\n"
              "doh-ip = \"\"\n"
              "[network.timeout]\n"
              "tcp = \"\"\n"
              "http = \"\"\n"
              "idle = \"\"\n"
              "handshake = \"\"\n"
              "[network.keep-alive]\n"
              "idle = \"\"\n"
              "interval = \"\"\n"
              "count = 0\n"
              "[defense.anti-replay]\n"
              "max-size = \"\"\n"
              "error-rate = 0.0\n"
              "[defense.blocklist]\n"
              "download-concurrency = 0\n"
              "update-each = \"\"\n"
              "[defense.doppelganger]\n"
              "repeats-per-raid = 0\n"
              "raid-each = \"\"\n"
              "[stats.statsd]\n"
              "address = \"\"\n"
              "metric-prefix = \"\"\n"
              "tag-format = \"\"\n"
              "[stats.prometheus]\n"
              "bind-to = \"\"\n"
              "http-path = \"\"\n"
              "metric-prefix = \"\"\n", &cfg);
    check_defaults(&cfg);
    /* An integer 0 for the float key, and -0.0, are zero too. */
    EXPECT_OK(TOP "[defense.anti-replay]\nerror-rate = 0\n", &cfg);
    CHECK(cfg.antireplay_error_rate == 0.001);
    EXPECT_OK(TOP "[defense.anti-replay]\nerror-rate = -0.0\n", &cfg);
    CHECK(cfg.antireplay_error_rate == 0.001);

    /* An unset [domain-fronting] value lets the legacy key through, and an
     * empty host next to an ip is not "both set". */
    EXPECT_OK(TOP "domain-fronting-port = 8443\ndomain-fronting-ip = \"10.0.0.1\"\n"
              "[domain-fronting]\nhost = \"\"\nip = \"\"\nport = 0\n", &cfg);
    CHECK_STR(cfg.fronting_host, "10.0.0.1");
    CHECK_EQ_INT(cfg.fronting_port, 8443);
    EXPECT_OK(TOP "[domain-fronting]\nhost = \"\"\nip = \"10.0.0.2\"\n", &cfg);
    CHECK_STR(cfg.fronting_host, "10.0.0.2");

    /* Prometheus on with an empty bind-to is still incomplete. */
    EXPECT_FAIL(TOP "[stats.prometheus]\nenabled = true\nbind-to = \"\"\n", 4, "needs bind-to");
    /* The required keys stay strict, and so does every non-zero bad value. */
    EXPECT_FAIL("secret = \"\"\nbind-to = \"0.0.0.0:443\"\n", 1, "key 'secret' is invalid");
    EXPECT_FAIL("secret = \"" SECRET_HEX "\"\nbind-to = \"\"\n", 2, "key 'bind-to' must be IP:PORT");
    EXPECT_FAIL(TOP "concurrency = \"\"\n", 3, "must be an integer, not a string");
    EXPECT_FAIL(TOP "prefer-ip = 0\n", 3, "must be a string, not an integer");
    EXPECT_FAIL(TOP "prefer-ip = \" \"\n", 3, "must be one of prefer-ipv6");
    EXPECT_FAIL(TOP "public-ipv4 = \" \"\n", 3, "must be an IPv4 address");
    EXPECT_FAIL(TOP "concurrency = -1\n", 3, "between 1 and 65535");
    EXPECT_FAIL(TOP "[domain-fronting]\nport = 65536\n", 4, "between 1 and 65535");
    EXPECT_FAIL(TOP "[defense.anti-replay]\nerror-rate = -0.5\n", 4, "probability");
    EXPECT_FAIL(TOP "[defense.anti-replay]\nerror-rate = \"\"\n", 4, "must be a number");
    EXPECT_FAIL(TOP "[defense.anti-replay]\nmax-size = \" \"\n", 4, "size string");
    EXPECT_FAIL(TOP "[network.keep-alive]\ncount = -3\n", 4, "between 1 and 127");
    EXPECT_FAIL(TOP "[datacenters]\n2 = []\n", 4, "1 to 8 addresses");
}

TEST(config_values)
{
    static tgf_config cfg;
    char buf[64];
    EXPECT_OK(TOP
              "debug = true\n"
              "proxy-protocol-listener = true\n"
              "concurrency = 1\n"
              "prefer-ip = \"ONLY-IPV4\"\n"
              "public-ipv4 = \"203.0.113.7\"\n"
              "public-ipv6 = \"2001:db8::7\"\n"
              "allow-fallback-on-unknown-dc = true\n"
              "[network.timeout]\n"
              "tcp = \"1m30s\"\n"
              "idle = \"1h\"\n"
              "handshake = \"250ms\"\n"
              "[network.keep-alive]\n"
              "disabled = true\n"
              "idle = \"1500ms\"\n"
              "interval = \"2 S\"\n"
              "count = 3\n"
              "[defense.anti-replay]\n"
              "enabled = false\n"
              "max-size = \"512kib\"\n"
              "error-rate = 0.5\n"
              "[stats.prometheus]\n"
              "enabled = true\n"
              "bind-to = \"[::1]:9100\"\n"
              "http-path = \"//metrics/\"\n"
              "metric-prefix = \"tg_front\"\n", &cfg);
    CHECK_EQ_INT(cfg.debug, 1);
    CHECK_EQ_INT(cfg.proxy_protocol_listener, 1);
    CHECK_EQ_INT(cfg.concurrency, 1);
    CHECK_EQ_INT(cfg.dcs.prefer, DC_ONLY_IPV4);
    CHECK_EQ_INT(cfg.have_public_ipv4, 1);
    CHECK_EQ_INT(cfg.have_public_ipv6, 1);
    CHECK_EQ_INT(cfg.public_ipv4.ss_family, AF_INET);
    CHECK_EQ_INT(cfg.public_ipv6.ss_family, AF_INET6);
    CHECK_EQ_INT(cfg.dcs.allow_fallback, 1);
    CHECK_EQ_INT(cfg.timeout_tcp_ms, 90000);
    CHECK_EQ_INT(cfg.timeout_idle_ms, 3600000);
    CHECK_EQ_INT(cfg.timeout_handshake_ms, 250);
    CHECK_EQ_INT(cfg.keepalive_disabled, 1);
    CHECK_EQ_INT(cfg.keepalive_idle_s, 2);
    CHECK_EQ_INT(cfg.keepalive_interval_s, 2);
    CHECK_EQ_INT(cfg.keepalive_count, 3);
    CHECK_EQ_INT(cfg.antireplay_enabled, 0);
    CHECK_EQ_INT(cfg.antireplay_max_size, 512 * 1024);
    CHECK(cfg.antireplay_error_rate == 0.5);
    CHECK_EQ_INT(cfg.prometheus_enabled, 1);
    addr_text(&cfg.prometheus_bind, buf, sizeof buf);
    CHECK_STR(buf, "[::1]:9100");
    CHECK_STR(cfg.prometheus_path, "/metrics");
    CHECK_STR(cfg.prometheus_prefix, "tg_front");

    /* Dotted keys reach the same tables. */
    EXPECT_OK(TOP "network.timeout.idle = \"2m\"\n[defense]\nanti-replay.enabled = false\n", &cfg);
    CHECK_EQ_INT(cfg.timeout_idle_ms, 120000);
    CHECK_EQ_INT(cfg.antireplay_enabled, 0);
}

TEST(config_duplicates_unknowns_types)
{
    EXPECT_FAIL(TOP "debug = true\ndebug = false\n", 4, "duplicate key 'debug'");
    EXPECT_FAIL(TOP "[network]\n[network.timeout]\nidle = \"1m\"\n[network]\n", 6,
                "duplicate table [network]");
    EXPECT_FAIL(TOP "colour = 1\n", 3, "unknown key 'colour' at the top level");
    EXPECT_FAIL(TOP "concurency = 10\n", 3, "did you mean 'concurrency'?");
    EXPECT_FAIL(TOP "[network.timeout]\nidel = \"1m\"\n", 4,
                "unknown key 'idel' in [network.timeout] (did you mean 'idle'?)");
    EXPECT_FAIL(TOP "[domain-fronting]\nport = 8443\nconcurrency = 5\n", 5,
                "'concurrency' belongs at the top");
    EXPECT_FAIL(TOP "[network]\nhandshake = \"5s\"\n", 4, "belongs in [network.timeout]");
    EXPECT_FAIL(TOP "[stats.promethus]\n", 3, "unknown table [stats.promethus] (did you mean [stats.prometheus]?)");
    EXPECT_FAIL(TOP "[nope]\nx = 1\n", 3, "unknown table [nope]");
    EXPECT_FAIL(TOP "nope.x = 1\n", 3, "unknown table [nope]");
    EXPECT_FAIL(TOP "concurrency = \"10\"\n", 3, "key 'concurrency' must be an integer, not a string");
    EXPECT_FAIL(TOP "debug = 1\n", 3, "key 'debug' must be a boolean");
    EXPECT_FAIL(TOP "[network.timeout]\nidle = 300\n", 4,
                "key 'network.timeout.idle' must be a duration string");
    EXPECT_FAIL(TOP "[network]\nproxies = [1]\n", 4, "array with non-string items");
    EXPECT_FAIL(TOP "[defense.anti-replay]\nerror-rate = \"0.1\"\n", 4, "must be a number");
}

TEST(config_ranges)
{
    EXPECT_FAIL(TOP "concurrency = 65536\n", 3, "must be between 1 and 65535 (got 65536)");
    EXPECT_FAIL(TOP "concurrency = -1\n", 3, "between 1 and 65535");
    EXPECT_FAIL(TOP "[network.keep-alive]\ncount = 128\n", 4, "between 1 and 127");
    EXPECT_FAIL(TOP "[network.timeout]\nidle = \"5\"\n", 4, "duration");
    EXPECT_FAIL(TOP "[network.timeout]\nidle = \"-5s\"\n", 4, "not negative");
    EXPECT_FAIL(TOP "[network.timeout]\nidle = \"5 minutes\"\n", 4, "duration");
    EXPECT_FAIL(TOP "[network.timeout]\nidle = \"25h\"\n", 4, "at most 24h");
    EXPECT_FAIL(TOP "[network.keep-alive]\nidle = \"10h\"\n", 4, "at most 32767s");
    EXPECT_FAIL(TOP "[defense.anti-replay]\nmax-size = \"1\"\n", 4, "a bare number is not accepted");
    EXPECT_FAIL(TOP "[defense.anti-replay]\nmax-size = \"1mib2\"\n", 4, "size string");
    EXPECT_FAIL(TOP "[defense.anti-replay]\nmax-size = \"512b\"\n", 4, "between 1kib and 1gib");
    EXPECT_FAIL(TOP "[defense.anti-replay]\nmax-size = \"2gb\"\n", 4, "between 1kib and 1gib");
    EXPECT_FAIL(TOP "[defense.anti-replay]\nerror-rate = 1.0\n", 4, "between 0 and 1");
    EXPECT_FAIL(TOP "[defense.anti-replay]\nerror-rate = 50\n", 4, "probability");
    EXPECT_FAIL(TOP "[defense.anti-replay]\nerror-rate = nan\n", 4, "probability");
    EXPECT_FAIL(TOP "prefer-ip = \"ipv4\"\n", 3, "prefer-ipv6, prefer-ipv4");
    EXPECT_FAIL(TOP "public-ipv4 = \"::1\"\n", 3, "must be an IPv4 address");
    EXPECT_FAIL(TOP "public-ipv6 = \"1.2.3.4\"\n", 3, "must be an IPv6 address");
    EXPECT_FAIL(TOP "[stats.prometheus]\nmetric-prefix = \"mtg.x\"\n", 4, "Prometheus name");
    EXPECT_FAIL(TOP "[stats.prometheus]\nhttp-path = \"/a b\"\n", 4, "http-path");
}

TEST(config_required_and_secret)
{
    EXPECT_FAIL("bind-to = \"0.0.0.0:443\"\n", 1, "missing required key 'secret'");
    EXPECT_FAIL("secret = \"" SECRET_HEX "\"\n", 1, "missing required key 'bind-to'");
    EXPECT_FAIL("# comment\nsecret = \"dd00112233445566778899aabbccddeeff\"\n"
                "bind-to = \"0.0.0.0:443\"\n", 2, "key 'secret' is invalid: ");
    EXPECT_FAIL("secret = \"\"\nbind-to = \"0.0.0.0:443\"\n", 1, "key 'secret' is invalid");
    EXPECT_FAIL("secret = \"" SECRET_HEX "\"\nbind-to = \"example.com:443\"\n", 2,
                "key 'bind-to' must be IP:PORT");
    EXPECT_FAIL("secret = \"" SECRET_HEX "\"\nbind-to = \"::443\"\n", 2, "bind-to");
    EXPECT_FAIL("secret = \"" SECRET_HEX "\"\nbind-to = \"0.0.0.0:0\"\n", 2, "bind-to");
    /* The secret itself never appears in messages. */
    static tgf_config cfg;
    char err[512];
    const char *bad = "secret = \"ee00000000000000000000000000000000616263\"\n";
    CHECK(load(bad, &cfg, err, sizeof err) < 0);
    CHECK(strstr(err, "ee0000") == NULL);
}

TEST(config_domain_fronting)
{
    static tgf_config cfg;
    EXPECT_FAIL(TOP "[domain-fronting]\nhost = \"a.example\"\nip = \"10.0.0.1\"\n", 5,
                "sets both host and ip");
    EXPECT_FAIL(TOP "[domain-fronting]\nip = \"10.0.0.1\"\nhost = \"a.example\"\n", 5,
                "sets both host and ip");
    EXPECT_FAIL(TOP "[domain-fronting]\nhost = \"bad host\"\n", 4, "hostname or an IP");
    EXPECT_FAIL(TOP "[domain-fronting]\nhost = \"127.1\"\n", 4, "hostname or an IP");
    EXPECT_FAIL(TOP "[domain-fronting]\nhost = \"[::1]\"\n", 4, "hostname or an IP");
    EXPECT_FAIL(TOP "[domain-fronting]\nhost = \"-a.example\"\n", 4, "hostname or an IP");
    EXPECT_FAIL(TOP "[domain-fronting]\nip = \"a.example\"\n", 4, "must be an IP address");
    EXPECT_FAIL(TOP "domain-fronting-ip = \"a.example\"\n", 3, "must be an IP address");

    EXPECT_OK(TOP "[domain-fronting]\nhost = \"Web-1.example.com.\"\n", &cfg);
    CHECK_STR(cfg.fronting_host, "Web-1.example.com.");
    EXPECT_OK(TOP "[domain-fronting]\nhost = \"::1\"\n", &cfg);
    CHECK_STR(cfg.fronting_host, "::1");
    EXPECT_OK(TOP "[domain-fronting]\nip = \"10.0.0.2\"\nport = 8443\n", &cfg);
    CHECK_STR(cfg.fronting_host, "10.0.0.2");
    CHECK_EQ_INT(cfg.fronting_port, 8443);
}

TEST(config_deprecated_precedence)
{
    static tgf_config cfg;
    /* Only the legacy keys: they apply. */
    EXPECT_OK(TOP "domain-fronting-port = 8443\ndomain-fronting-ip = \"10.0.0.1\"\n"
              "domain-fronting-proxy-protocol = true\n", &cfg);
    CHECK_STR(cfg.fronting_host, "10.0.0.1");
    CHECK_EQ_INT(cfg.fronting_port, 8443);
    CHECK_EQ_INT(cfg.fronting_proxy_protocol, 1);

    /* [domain-fronting] wins for ip/host and port; proxy-protocol is OR. */
    EXPECT_OK(TOP "domain-fronting-port = 8443\ndomain-fronting-ip = \"10.0.0.1\"\n"
              "domain-fronting-proxy-protocol = true\n"
              "[domain-fronting]\nip = \"10.0.0.9\"\nport = 9443\nproxy-protocol = false\n", &cfg);
    CHECK_STR(cfg.fronting_host, "10.0.0.9");
    CHECK_EQ_INT(cfg.fronting_port, 9443);
    CHECK_EQ_INT(cfg.fronting_proxy_protocol, 1);

    EXPECT_OK(TOP "domain-fronting-ip = \"10.0.0.1\"\ndomain-fronting-port = 8443\n"
              "[domain-fronting]\nhost = \"127.0.0.1\"\nproxy-protocol = true\n", &cfg);
    CHECK_STR(cfg.fronting_host, "127.0.0.1");
    CHECK_EQ_INT(cfg.fronting_port, 8443);   /* no new port: the legacy one */
    CHECK_EQ_INT(cfg.fronting_proxy_protocol, 1);

    /* Legacy ip alongside new host is not "both set". */
    EXPECT_OK(TOP "domain-fronting-ip = \"10.0.0.1\"\n[domain-fronting]\nhost = \"web.example\"\n", &cfg);
    CHECK_STR(cfg.fronting_host, "web.example");
}

TEST(config_datacenters)
{
    static tgf_config cfg;
    char buf[64];
    EXPECT_OK(TOP "[datacenters]\n"
              "2 = [\"127.0.0.1:4430\", \"[::1]:4431\"]\n"
              "203 = [\n  \"10.1.2.3:443\",\n]\n", &cfg);
    CHECK_EQ_INT(cfg.dcs.override_count, 2);
    CHECK_EQ_INT(cfg.dcs.overrides[0].dc, 2);
    CHECK_EQ_INT(cfg.dcs.overrides[0].count, 2);
    addr_text(&cfg.dcs.overrides[0].addrs[1].addr, buf, sizeof buf);
    CHECK_STR(buf, "[::1]:4431");
    CHECK_EQ_INT(cfg.dcs.overrides[1].dc, 203);
    addr_text(&cfg.dcs.overrides[1].addrs[0].addr, buf, sizeof buf);
    CHECK_STR(buf, "10.1.2.3:443");
    /* Overrides feed dc_addresses. */
    dc_addr out[DC_MAX_ADDRS];
    cfg.dcs.prefer = DC_ONLY_IPV4;
    CHECK_EQ_INT(dc_addresses(&cfg.dcs, 2, 1, out, DC_MAX_ADDRS), 1);
    addr_text(&out[0].addr, buf, sizeof buf);
    CHECK_STR(buf, "127.0.0.1:4430");

    EXPECT_FAIL(TOP "[datacenters]\n0 = [\"1.2.3.4:443\"]\n", 4, "DC numbers 1..32767");
    EXPECT_FAIL(TOP "[datacenters]\n-2 = [\"1.2.3.4:443\"]\n", 4, "DC numbers 1..32767");
    EXPECT_FAIL(TOP "[datacenters]\n02 = [\"1.2.3.4:443\"]\n", 4, "DC numbers");
    EXPECT_FAIL(TOP "[datacenters]\n32768 = [\"1.2.3.4:443\"]\n", 4, "DC numbers");
    EXPECT_FAIL(TOP "[datacenters]\nx = [\"1.2.3.4:443\"]\n", 4, "DC numbers");
    EXPECT_FAIL(TOP "[datacenters]\n2 = []\n", 4, "1 to 8 addresses");
    EXPECT_FAIL(TOP "[datacenters]\n2 = \"1.2.3.4:443\"\n", 4, "array of strings");
    EXPECT_FAIL(TOP "[datacenters]\n2 = [\n\"1.2.3.4:443\",\n\"dc.example:443\",\n]\n", 6,
                "'dc.example:443' is not IP:PORT");
    EXPECT_FAIL(TOP "[datacenters]\n2 = [\"1.2.3.4\"]\n", 4, "not IP:PORT");
    EXPECT_FAIL(TOP "[datacenters]\n2 = [\"1.2.3.4:1\"]\n2 = [\"1.2.3.4:2\"]\n", 5, "duplicate key");
}

TEST(config_operations_keys)
{
    static tgf_config cfg;
    EXPECT_OK(TOP, &cfg);
    CHECK(!cfg.log_json);
    CHECK_EQ_INT(cfg.blocklist.update_each_ms, 6 * 3600 * 1000);
    CHECK_EQ_INT(cfg.blocklist.download_concurrency, 1);
    CHECK_EQ_INT(cfg.proxy_count, 0);
    EXPECT_OK(TOP "log-format = \"json\"\n[network]\nproxies = [\"socks5://u:p%40w@127.0.0.1:1081\", "
              "\"socks5h://[::1]\"]\n[defense.blocklist]\nenabled = true\n"
              "urls = [\"/etc/list.netset\", \"rel.netset\", \"https://l.example/x\"]\n"
              "update-each = \"2s\"\n", &cfg);
    CHECK(cfg.log_json);
    CHECK_EQ_INT(cfg.proxy_count, 2);
    CHECK(strcmp(cfg.proxies[0].host, "127.0.0.1") == 0 && cfg.proxies[0].port == 1081);
    CHECK(cfg.proxies[0].has_auth && strcmp(cfg.proxies[0].user, "u") == 0 &&
          strcmp(cfg.proxies[0].pass, "p@w") == 0);
    CHECK(strcmp(cfg.proxies[1].host, "::1") == 0 && cfg.proxies[1].port == 1080 &&
          cfg.proxies[1].remote_dns && !cfg.proxies[1].has_auth);
    CHECK_EQ_INT(cfg.blocklist.url_count, 3);
    CHECK(cfg.blocklist.urls[1][0] == '/' && strstr(cfg.blocklist.urls[1], "/rel.netset"));
    CHECK_EQ_INT(cfg.blocklist.update_each_ms, 2000);
    EXPECT_FAIL(TOP "log-format = \"xml\"\n", 3, "\"text\" or \"json\"");
    EXPECT_FAIL(TOP "[network]\nproxies = [\"http://127.0.0.1:1080\"]\n", 4,
                "entry 1: must start with socks5://");
    /* The password is never echoed. */
    EXPECT_FAIL(TOP "[network]\nproxies = [\"socks5://u:hunter2@h:99999\"]\n", 4,
                "entry 1: the port must be 1..65535");
    {
        char err[512];
        const char *t = TOP "[network]\nproxies = [\"socks5://u:hunter2@h:99999\"]\n";
        CHECK(load(t, &cfg, err, sizeof err) != 0);
        CHECK_MSG(strstr(err, "hunter2") == NULL, "password in the message: %s", err);
    }
    EXPECT_FAIL(TOP "[defense.blocklist]\nurls = [\"http://l.example/x\"]\n", 4,
                "plain http is not accepted");
    EXPECT_FAIL(TOP "[defense.blocklist]\nurls = [\"ftp://l.example/x\"]\n", 4,
                "neither an https:// URL nor a file path");
    EXPECT_FAIL(TOP "[defense.blocklist]\nupdate-each = \"10ms\"\n", 4, "at least 1s");
    EXPECT_FAIL(TOP "[network]\nca-file = \"/nonexistent/ca.pem\"\n", 4, "cannot read");
}

TEST(config_not_implemented)
{
    static tgf_config cfg;
    EXPECT_FAIL(TOP "[defense.allowlist]\nenabled = true\n", 4, "needs urls");
    EXPECT_FAIL(TOP "[stats.statsd]\nenabled = true\n", 4, "StatsD is not implemented yet");
    EXPECT_FAIL(TOP "[stats.prometheus]\nenabled = true\n", 4, "needs bind-to");
    EXPECT_FAIL(TOP "[stats.prometheus]\nenabled = true\nbind-to = \"0.0.0.0:443\"\n", 5,
                "same address as bind-to");
    EXPECT_FAIL(TOP "[stats.prometheus]\nbind-to = \"localhost:9100\"\n", 4, "literal IP");
    /* Accepted with warnings. */
    EXPECT_OK(TOP "auto-update = true\n[network]\ndns = \"https://1.1.1.1\"\ndoh-ip = \"1.1.1.1\"\n"
              "proxies = []\n[network.timeout]\nhttp = \"10s\"\n"
              "[defense.doppelganger]\nurls = [\"https://a.example/\"]\ndrs = true\n"
              "[stats.statsd]\naddress = \"127.0.0.1:8125\"\n", &cfg);
}

TEST(config_parse_duration_and_bytes)
{
    uint64_t v;
    CHECK(config_parse_duration("5s", &v) == 0 && v == 5000);
    CHECK(config_parse_duration("1m30s", &v) == 0 && v == 90000);
    CHECK(config_parse_duration("250ms", &v) == 0 && v == 250);
    CHECK(config_parse_duration("1h", &v) == 0 && v == 3600000);
    CHECK(config_parse_duration("1.5h", &v) == 0 && v == 5400000);
    CHECK(config_parse_duration(" 2 M ", &v) == 0 && v == 120000);
    CHECK(config_parse_duration("0", &v) == 0 && v == 0);
    CHECK(config_parse_duration("1us", &v) == 0 && v == 1);         /* rounded up */
    CHECK(config_parse_duration("1500000ns", &v) == 0 && v == 2);
    CHECK(config_parse_duration("+3s", &v) == 0 && v == 3000);
    CHECK(config_parse_duration("", &v) == -1);
    CHECK(config_parse_duration("5", &v) == -1);
    CHECK(config_parse_duration("-1s", &v) == -1);
    CHECK(config_parse_duration("s", &v) == -1);
    CHECK(config_parse_duration("5d", &v) == -1);
    CHECK(config_parse_duration("99999999999999999999h", &v) == -1);
    CHECK(config_parse_duration(NULL, &v) == -1);

    CHECK(config_parse_bytes("1mib", &v) == 0 && v == 1048576);
    CHECK(config_parse_bytes("1mb", &v) == 0 && v == 1048576);
    CHECK(config_parse_bytes("1KB", &v) == 0 && v == 1024);
    CHECK(config_parse_bytes("512kib", &v) == 0 && v == 524288);
    CHECK(config_parse_bytes("1gib", &v) == 0 && v == 1073741824ull);
    CHECK(config_parse_bytes("100b", &v) == 0 && v == 100);
    CHECK(config_parse_bytes("1.5 MiB", &v) == 0 && v == 1572864);
    CHECK(config_parse_bytes("1", &v) == -1);
    CHECK(config_parse_bytes("mib", &v) == -1);
    CHECK(config_parse_bytes("-1mib", &v) == -1);
    CHECK(config_parse_bytes("1mibx", &v) == -1);
    CHECK(config_parse_bytes("99999999999tib", &v) == -1);
}

TEST(config_load_file_errors)
{
    static tgf_config cfg;
    char err[512], path[] = "/tmp/tgf-config-test-XXXXXX";
    CHECK(config_load_file("/nonexistent/tgf.toml", &cfg, err, sizeof err) < 0);
    CHECK(strncmp(err, "/nonexistent/tgf.toml: cannot open", 34) == 0);
    CHECK(config_load_file("/tmp", &cfg, err, sizeof err) < 0);
    CHECK(strstr(err, "not a regular file") != NULL);

    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    const char good[] = TOP "concurrency = 7\n";
    CHECK(write(fd, good, sizeof good - 1) == (ssize_t)(sizeof good - 1));
    CHECK_EQ_INT(config_load_file(path, &cfg, err, sizeof err), 0);
    CHECK_EQ_INT(cfg.concurrency, 7);

    CHECK(write(fd, "x = \"\0\"\n", 8) == 8);
    CHECK(config_load_file(path, &cfg, err, sizeof err) < 0);
    CHECK(strstr(err, "NUL") != NULL && strncmp(err, path, strlen(path)) == 0);

    CHECK(ftruncate(fd, 0) == 0);
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    const char bad[] = TOP "concurrency = 65536\n";
    CHECK(write(fd, bad, sizeof bad - 1) == (ssize_t)(sizeof bad - 1));
    CHECK(config_load_file(path, &cfg, err, sizeof err) < 0);
    char want[128];
    snprintf(want, sizeof want, "%s:3: key 'concurrency'", path);
    CHECK(strncmp(err, want, strlen(want)) == 0);

    CHECK(ftruncate(fd, (1 << 20) + 1) == 0);
    CHECK(config_load_file(path, &cfg, err, sizeof err) < 0);
    CHECK(strstr(err, "larger than 1 MiB") != NULL);
    close(fd);
    unlink(path);
}

/* Durations have lower bounds too (a non-zero value below them is a
 * mistake such as "5ms" for "5s"); "0s" still means the default. */
TEST(config_duration_minimums)
{
    static tgf_config cfg;
    EXPECT_FAIL(TOP "tolerate-time-skewness = \"500ms\"\n", 3,
                "key 'tolerate-time-skewness' must be at least 1s, or \"0s\" for the default");
    EXPECT_FAIL(TOP "[network.timeout]\ntcp = \"999ms\"\n", 4, "must be at least 1s");
    EXPECT_FAIL(TOP "[network.timeout]\nidle = \"10ms\"\n", 4, "must be at least 1s");
    EXPECT_FAIL(TOP "[network.timeout]\nhandshake = \"99ms\"\n", 4, "must be at least 100ms");
    EXPECT_FAIL(TOP "[network.keep-alive]\nidle = \"500ms\"\n", 4, "must be at least 1s");
    EXPECT_FAIL(TOP "[network.keep-alive]\ninterval = \"1ns\"\n", 4, "must be at least 1s");
    EXPECT_FAIL(TOP "[network.client-keep-alive]\nidle = \"999ms\"\n", 4, "must be at least 1s");
    EXPECT_FAIL(TOP "[network.timeout]\ntcp = \"61m\"\n", 4, "must be at most 1h");
    /* The bounds themselves are accepted. */
    EXPECT_OK(TOP "tolerate-time-skewness = \"1s\"\n[network.timeout]\ntcp = \"1s\"\n"
              "idle = \"24h\"\nhandshake = \"100ms\"\n[network.keep-alive]\nidle = \"1s\"\n"
              "interval = \"32767s\"\n", &cfg);
    CHECK_EQ_INT(cfg.tolerate_skew_ms, 1000);
    CHECK_EQ_INT(cfg.timeout_tcp_ms, 1000);
    CHECK_EQ_INT(cfg.timeout_idle_ms, 24 * 3600 * 1000);
    CHECK_EQ_INT(cfg.timeout_handshake_ms, 100);
    CHECK_EQ_INT(cfg.keepalive_idle_s, 1);
    CHECK_EQ_INT(cfg.keepalive_interval_s, 32767);
}

TEST(config_client_keepalive)
{
    static tgf_config cfg;
    /* Default: battery-friendly, far above tdlib's 60 s background pings. */
    config_defaults(&cfg);
    CHECK_EQ_INT(cfg.client_keepalive_disabled, 0);
    CHECK_EQ_INT(cfg.client_keepalive_idle_s, 300);
    CHECK_EQ_INT(cfg.client_keepalive_interval_s, 30);
    CHECK_EQ_INT(cfg.client_keepalive_count, 4);
    CHECK(cfg.client_keepalive_idle_s > 135);   /* tdlib's ping_disconnect_delay */
    EXPECT_OK(TOP "[network.client-keep-alive]\ndisabled = true\nidle = \"10m\"\n"
              "interval = \"1m30s\"\ncount = 2\n", &cfg);
    CHECK_EQ_INT(cfg.client_keepalive_disabled, 1);
    CHECK_EQ_INT(cfg.client_keepalive_idle_s, 600);
    CHECK_EQ_INT(cfg.client_keepalive_interval_s, 90);
    CHECK_EQ_INT(cfg.client_keepalive_count, 2);
    /* It is its own table: [network.keep-alive] leaves it alone. */
    CHECK_EQ_INT(cfg.keepalive_idle_s, 15);
    EXPECT_OK(TOP "[network.keep-alive]\nidle = \"1m\"\ndisabled = true\n", &cfg);
    CHECK_EQ_INT(cfg.client_keepalive_idle_s, 300);
    CHECK_EQ_INT(cfg.client_keepalive_disabled, 0);
    /* Zero and empty mean the default, as everywhere. */
    EXPECT_OK(TOP "[network.client-keep-alive]\nidle = \"0s\"\ninterval = \"\"\ncount = 0\n", &cfg);
    CHECK_EQ_INT(cfg.client_keepalive_idle_s, 300);
    CHECK_EQ_INT(cfg.client_keepalive_interval_s, 30);
    CHECK_EQ_INT(cfg.client_keepalive_count, 4);
    EXPECT_FAIL(TOP "[network.client-keep-alive]\ncount = 128\n", 4, "between 1 and 127");
    EXPECT_FAIL(TOP "[network.client-keep-alive]\nidle = \"10h\"\n", 4, "at most 32767s");
    EXPECT_FAIL(TOP "[network.client-keep-alive]\nidle = 300\n", 4, "must be a duration string");
    EXPECT_FAIL(TOP "[network.client-keep-alive]\nidel = \"5m\"\n", 4, "did you mean 'idle'?");
}

/* The three domain-fronting-* keys are aliases: the current name wins in
 * either order, proxy-protocol is OR-ed, and ip's alias loses to host. */
TEST(config_aliases_either_order)
{
    static tgf_config cfg;
    /* The current name first (a dotted key), the alias after it. */
    EXPECT_OK(TOP "domain-fronting.port = 9443\ndomain-fronting.host = \"web.example\"\n"
              "domain-fronting.proxy-protocol = false\n"
              "domain-fronting-port = 1\ndomain-fronting-ip = \"10.0.0.1\"\n"
              "domain-fronting-proxy-protocol = true\n", &cfg);
    CHECK_EQ_INT(cfg.fronting_port, 9443);
    CHECK_STR(cfg.fronting_host, "web.example");
    CHECK_EQ_INT(cfg.fronting_proxy_protocol, 1);
    /* The alias first. */
    EXPECT_OK(TOP "domain-fronting-ip = \"10.0.0.1\"\n[domain-fronting]\nip = \"10.0.0.2\"\n", &cfg);
    CHECK_STR(cfg.fronting_host, "10.0.0.2");
    EXPECT_OK(TOP "domain-fronting-proxy-protocol = false\n[domain-fronting]\n"
              "proxy-protocol = true\n", &cfg);
    CHECK_EQ_INT(cfg.fronting_proxy_protocol, 1);
    EXPECT_OK(TOP "domain-fronting-proxy-protocol = false\n[domain-fronting]\n"
              "proxy-protocol = false\n", &cfg);
    CHECK_EQ_INT(cfg.fronting_proxy_protocol, 0);
    /* An alias value is checked like the key it stands for. */
    EXPECT_FAIL(TOP "domain-fronting-port = 70000\n", 3,
                "key 'domain-fronting-port' must be between 1 and 65535");
    EXPECT_FAIL(TOP "domain-fronting-proxy-protocol = 1\n", 3, "must be a boolean");
    /* network.doh-ip is dns's alias; both are accepted without effect. */
    EXPECT_OK(TOP "[network]\ndoh-ip = \"1.1.1.1\"\ndns = \"https://1.1.1.1\"\n", &cfg);
}

static int simple_parse(tgf_config *cfg, const char *const *args, int n)
{
    char *argv[16];
    argv[0] = (char *)"simple-run";
    for (int i = 0; i < n && i < 15; i++)
        argv[i + 1] = (char *)args[i];
    cli_run_opts opts;
    /* Messages and --help are expected: keep the test output readable. */
    int out = dup(1), errfd = dup(2), null = open("/dev/null", O_WRONLY);
    fflush(stdout);
    dup2(null, 1);
    dup2(null, 2);
    int rc = cli_simple_run_parse(n + 1, argv, cfg, &opts);
    fflush(stdout);
    dup2(out, 1);
    dup2(errfd, 2);
    close(out);
    close(errfd);
    close(null);
    return rc;
}
#define SIMPLE(cfg, ...) simple_parse(cfg, (const char *const[]){ __VA_ARGS__ }, \
    (int)(sizeof (const char *const[]){ __VA_ARGS__ } / sizeof(const char *)))

/* simple-run's flags go through the config table, so their bounds are the
 * file's: -t at most 1h (the tcp key), -a 1kib..1gib, -c 1..65535. */
TEST(config_simple_run_flags_use_table_bounds)
{
    static tgf_config cfg;
    CHECK_EQ_INT(SIMPLE(&cfg, "127.0.0.1:443", SECRET_HEX), 0);
    CHECK_EQ_INT(cfg.concurrency, 8192);
    CHECK_EQ_INT(cfg.timeout_tcp_ms, 10000);
    CHECK_EQ_INT(cfg.timeout_idle_ms, 10000);
    CHECK_EQ_INT(cfg.antireplay_enabled, 1);
    CHECK_EQ_INT(cfg.dcs.allow_fallback, 1);
    CHECK_EQ_INT(cfg.antireplay_max_size, 1 << 20);
    CHECK_STR(cfg.secret.host, "example.com");

    CHECK_EQ_INT(SIMPLE(&cfg, "-t", "1h", "-a", "1gib", "-c", "65535", "-p", "8443",
                        "--domain-fronting-ip", "::1", "-i", "only-ipv4", "-d",
                        "[::1]:443", SECRET_HEX), 0);
    CHECK_EQ_INT(cfg.timeout_tcp_ms, 3600000);
    CHECK_EQ_INT(cfg.timeout_idle_ms, 3600000);
    CHECK_EQ_INT(cfg.antireplay_max_size, 1 << 30);
    CHECK_EQ_INT(cfg.concurrency, 65535);
    CHECK_EQ_INT(cfg.fronting_port, 8443);
    CHECK_STR(cfg.fronting_host, "::1");
    CHECK_EQ_INT(cfg.dcs.prefer, DC_ONLY_IPV4);
    CHECK_EQ_INT(cfg.debug, 1);
    CHECK_EQ_INT(cfg.bind_addr.ss_family, AF_INET6);
    /* "0" keeps simple-run's own default, as a zero does in a file. */
    CHECK_EQ_INT(SIMPLE(&cfg, "-t", "0", "127.0.0.1:443", SECRET_HEX), 0);
    CHECK_EQ_INT(cfg.timeout_idle_ms, 10000);

    CHECK_EQ_INT(SIMPLE(&cfg, "-t", "2h", "127.0.0.1:443", SECRET_HEX), -1);   /* was 24 h */
    CHECK_EQ_INT(SIMPLE(&cfg, "-t", "500ms", "127.0.0.1:443", SECRET_HEX), -1);
    CHECK_EQ_INT(SIMPLE(&cfg, "-a", "2gib", "127.0.0.1:443", SECRET_HEX), -1);  /* was unbounded */
    CHECK_EQ_INT(SIMPLE(&cfg, "-a", "512b", "127.0.0.1:443", SECRET_HEX), -1);
    CHECK_EQ_INT(SIMPLE(&cfg, "-a", "1", "127.0.0.1:443", SECRET_HEX), -1);
    CHECK_EQ_INT(SIMPLE(&cfg, "-c", "65536", "127.0.0.1:443", SECRET_HEX), -1);
    CHECK_EQ_INT(SIMPLE(&cfg, "-c", "12x", "127.0.0.1:443", SECRET_HEX), -1);
    CHECK_EQ_INT(SIMPLE(&cfg, "-p", "0x1", "127.0.0.1:443", SECRET_HEX), -1);
    CHECK_EQ_INT(SIMPLE(&cfg, "--domain-fronting-ip", "a.example", "127.0.0.1:443", SECRET_HEX), -1);
    CHECK_EQ_INT(SIMPLE(&cfg, "-i", "ipv4", "127.0.0.1:443", SECRET_HEX), -1);
    CHECK_EQ_INT(SIMPLE(&cfg, "--ready-fd", "2", "127.0.0.1:443", SECRET_HEX), -1);
    CHECK_EQ_INT(SIMPLE(&cfg, "127.0.0.1:443", "dd00"), -1);
    CHECK_EQ_INT(SIMPLE(&cfg, "localhost:443", SECRET_HEX), -1);
    CHECK_EQ_INT(SIMPLE(&cfg, "127.0.0.1:443"), -1);
    CHECK_EQ_INT(SIMPLE(&cfg, "-t"), -1);
    CHECK_EQ_INT(SIMPLE(&cfg, "--help"), 1);
}

/* config_set reports errors in the flag's name, with the key it stands for. */
TEST(config_set_messages)
{
    static tgf_config cfg;
    char err[200];
    config_defaults(&cfg);
    CHECK_EQ_INT(config_set(&cfg, "network.timeout.idle", "2m", "--x", err, sizeof err), 0);
    CHECK_EQ_INT(cfg.timeout_idle_ms, 120000);
    CHECK_EQ_INT(config_set(&cfg, "network.timeout.idle", "25h", "--timeout", err, sizeof err), -1);
    CHECK_STR(err, "--timeout: key 'network.timeout.idle' must be at most 24h (got '25h')");
    CHECK_EQ_INT(config_set(&cfg, "debug", "yes", "-d", err, sizeof err), -1);
    CHECK_STR(err, "-d: key 'debug' must be true or false (got 'yes')");
    CHECK_EQ_INT(config_set(&cfg, "no.such", "1", "--x", err, sizeof err), -1);
    CHECK_EQ_INT(config_set(&cfg, "network.proxies", "x", "--x", err, sizeof err), -1);
    CHECK_EQ_INT(config_set(&cfg, "datacenters.2", "1.2.3.4:1", "--x", err, sizeof err), -1);
    /* A deprecated spelling works here too. */
    CHECK_EQ_INT(config_set(&cfg, "domain-fronting-port", "8443", "--x", err, sizeof err), 0);
    CHECK_EQ_INT(cfg.fronting_port, 8443);
}
