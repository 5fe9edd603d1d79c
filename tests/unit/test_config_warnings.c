/* config: the keys tgfront accepts without acting on them load, and each
 * one says so in one warning line naming its file:line (README, "W"). */
#include "unit.h"

#include "config.h"
#include "log.h"

#define SECRET_HEX "eed1f7eb92b30576b129fb49069ca45dfc6578616d706c652e636f6d"  /* example.com */
#define TOP "secret = \"" SECRET_HEX "\"\nbind-to = \"0.0.0.0:443\"\n"

/* Loads text at LOG_WARN and returns 0 with the log it wrote, or -1. */
static int load_logged(const char *text, const char **log, char *err, size_t cap)
{
    static tgf_config cfg;
    log_level old = log_get_level();
    log_set_level(LOG_WARN);
    unit_stderr_begin();
    int rc = config_load_string(text, strlen(text), "t.toml", &cfg, err, cap);
    *log = unit_stderr_end();
    log_set_level(old);
    return *log == NULL ? -1 : rc;
}

static int count_lines(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* Each wanted "warn config: t.toml:<line>: <text>" is in the log exactly
 * once, and the log has no other line. */
static void expect_warnings(const char *text, const char *const *want, size_t nwant)
{
    char err[512] = "";
    const char *log = NULL;
    int rc = load_logged(text, &log, err, sizeof err);
    CHECK_MSG(rc == 0, "load failed: %s", err);
    if (log == NULL)
        return;
    for (size_t i = 0; i < nwant; i++) {
        char line[600];
        snprintf(line, sizeof line, " warn config: t.toml:%s\n", want[i]);
        CHECK_MSG(count_lines(log, line) == 1, "warning %s missing (or repeated) in:\n%s",
                  want[i], log);
    }
    CHECK_MSG(count_lines(log, "\n") == (int)nwant, "%d log lines, want %zu:\n%s",
              count_lines(log, "\n"), nwant, log);
}

TEST(config_accepted_with_warnings)
{
    static const char *const want[] = {
        "3: auto-update = true has no effect: tgfront does not fetch Telegram's proxy config; "
        "it uses the built-in DC table and [datacenters]",
        "5: 'network.dns' has no effect: tgfront uses the system resolver",
        "6: 'network.doh-ip' is deprecated; use dns in [network]",
        "6: 'network.doh-ip' has no effect: tgfront uses the system resolver",
        "9: 'network.timeout.http' is not used: list downloads have a 30 s timeout of their own",
        "11: 'defense.doppelganger.urls' is not implemented yet (tgfront sizes its records "
        "like the Go TLS stack of Caddy)",
        "12: 'defense.doppelganger.drs' is not implemented yet (tgfront sizes its records "
        "like the Go TLS stack of Caddy)",
        "14: 'stats.statsd.address' has no effect: StatsD is not implemented yet by tgfront",
    };
    /* The same keys as test_config.c's config_not_implemented; line 7's
     * empty proxies list is fine and says nothing. */
    expect_warnings(TOP "auto-update = true\n[network]\ndns = \"https://1.1.1.1\"\n"
                    "doh-ip = \"1.1.1.1\"\nproxies = []\n[network.timeout]\nhttp = \"10s\"\n"
                    "[defense.doppelganger]\nurls = [\"https://a.example/\"]\ndrs = true\n"
                    "[stats.statsd]\naddress = \"127.0.0.1:8125\"\n",
                    want, sizeof want / sizeof want[0]);
}

TEST(config_other_warned_keys)
{
    static const char *const want[] = {
        "3: 'domain-fronting-port' is deprecated; use port in [domain-fronting]",
        "4: 'domain-fronting-ip' is deprecated; use ip in [domain-fronting]",
        "5: 'domain-fronting-proxy-protocol' is deprecated; use proxy-protocol in "
        "[domain-fronting]",
        "11: 'defense.doppelganger.repeats-per-raid' is not implemented yet (tgfront sizes its "
        "records like the Go TLS stack of Caddy)",
        "12: 'defense.doppelganger.raid-each' is not implemented yet (tgfront sizes its "
        "records like the Go TLS stack of Caddy)",
        "14: 'stats.statsd.metric-prefix' has no effect: StatsD is not implemented yet by "
        "tgfront",
        "15: 'stats.statsd.tag-format' has no effect: StatsD is not implemented yet by tgfront",
    };
    expect_warnings(TOP "domain-fronting-port = 8443\ndomain-fronting-ip = \"127.0.0.1\"\n"
                    "domain-fronting-proxy-protocol = true\n"
                    "[defense.blocklist]\ndownload-concurrency = 2\n"
                    "urls = [\"https://b.example/list\"]\nupdate-each = \"24h\"\n"
                    "[defense.doppelganger]\nrepeats-per-raid = 10\nraid-each = \"6h\"\n"
                    "[stats.statsd]\nmetric-prefix = \"mtg\"\ntag-format = \"datadog\"\n",
                    want, sizeof want / sizeof want[0]);
}

TEST(config_without_warned_keys_is_quiet)
{
    char err[512] = "";
    const char *log = NULL;
    CHECK_EQ_INT(load_logged(TOP "auto-update = false\n", &log, err, sizeof err), 0);
    CHECK_MSG(log != NULL && log[0] == '\0', "unexpected log: %s", log ? log : "(none)");
}
