/* cli_doctor: `doctor CONFIG` (mtg's checks that make sense offline-first)
 * and `healthcheck HOST:PORT...` (the container's HEALTHCHECK). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "netutil.h"
#include "server.h"
#include "site_doctor.h"

#define DOCTOR_TIMEOUT_MS 10000
#define HEALTH_TIMEOUT_MS 2000

static const int doctor_dcs[] = { 1, 2, 3, 4, 5, 203 };

static int check_dcs(const tgf_config *cfg)
{
    int failed = 0;
    unsigned timeout = cfg->timeout_tcp_ms ? cfg->timeout_tcp_ms : DOCTOR_TIMEOUT_MS;
    int list[sizeof doctor_dcs / sizeof doctor_dcs[0] + DC_MAX_OVERRIDES];
    size_t n = 0;
    for (size_t i = 0; i < sizeof doctor_dcs / sizeof doctor_dcs[0]; i++)
        list[n++] = doctor_dcs[i];
    for (size_t i = 0; i < cfg->dcs.override_count; i++) {
        int dc = cfg->dcs.overrides[i].dc, seen = 0;
        for (size_t j = 0; j < n; j++)
            seen |= list[j] == dc;
        if (!seen)
            list[n++] = dc;
    }
    for (size_t i = 0; i < n; i++) {
        dc_addr addrs[2 * DC_MAX_ADDRS];
        size_t count = dc_addresses(&cfg->dcs, list[i], 1, addrs, 2 * DC_MAX_ADDRS);
        int ok = 0;
        char last[200] = "no address for the configured prefer-ip";
        for (size_t j = 0; j < count && !ok; j++) {
            char a[80];
            dc_format_addr((const struct sockaddr *)&addrs[j].addr, a, sizeof a);
            if (net_probe_connect((const struct sockaddr *)&addrs[j].addr, addrs[j].len, timeout) == 0) {
                printf("  [ok]   DC %d: %s\n", list[i], a);
                ok = 1;
            } else {
                snprintf(last, sizeof last, "%s: %s", a, strerror(errno));
            }
        }
        if (!ok) {
            printf("  [FAIL] DC %d: %s\n", list[i], last);
            failed = 1;
        }
    }
    return failed;
}

static int check_fronting(const tgf_config *cfg)
{
    dc_addr addrs[SERVER_MAX_FRONT_ADDRS];
    char err[512];
    int n = server_resolve_fronting(cfg, addrs, SERVER_MAX_FRONT_ADDRS, err, sizeof err);
    if (n < 0) {
        printf("  [FAIL] %s\n", err);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        char a[80];
        dc_format_addr((const struct sockaddr *)&addrs[i].addr, a, sizeof a);
        if (net_probe_connect((const struct sockaddr *)&addrs[i].addr, addrs[i].len,
                              DOCTOR_TIMEOUT_MS) == 0) {
            printf("  [ok]   fronting target %s accepts connections\n", a);
            return 0;
        }
        printf("  [FAIL] fronting target %s: %s\n", a, strerror(errno));
    }
    return 1;
}

static int check_sni_dns(const tgf_config *cfg)
{
    if (!cfg->have_public_ipv4 && !cfg->have_public_ipv6) {
        printf("  [skip] set public-ipv4/public-ipv6 to compare them with %s's DNS records\n",
               cfg->secret.host);
        return 0;
    }
    dc_addr addrs[16];
    char err[300];
    int n = net_resolve(cfg->secret.host, 443, addrs, 16, err, sizeof err);
    if (n < 0) {
        printf("  [FAIL] %s\n", err);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        char got[64], want[64];
        net_format_ip((const struct sockaddr *)&addrs[i].addr, got, sizeof got);
        for (int f = 0; f < 2; f++) {
            if (!(f ? cfg->have_public_ipv6 : cfg->have_public_ipv4))
                continue;
            net_format_ip((const struct sockaddr *)(f ? &cfg->public_ipv6 : &cfg->public_ipv4),
                          want, sizeof want);
            if (!strcmp(got, want)) {
                printf("  [ok]   %s resolves to this server (%s)\n", cfg->secret.host, got);
                return 0;
            }
        }
    }
    printf("  [FAIL] %s does not resolve to public-ipv4/public-ipv6: DPI can see the SNI does not "
           "match the server\n", cfg->secret.host);
    return 1;
}

int cli_doctor(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
            puts("Usage: tgfront doctor CONFIG");
            return CLI_EXIT_OK;
        }
        return cli_usage_error("doctor: expected one CONFIG path");
    }
    static tgf_config cfg;
    printf("Configuration %s\n", argv[1]);
    if (cli_load_config(argv[1], &cfg) < 0) {
        printf("  [FAIL] see the error above\n");
        return CLI_EXIT_FAIL;
    }
    printf("  [ok]   valid (deprecated keys, if any, are listed above as warnings)\n");
    printf("Time\n  [skip] tgfront has no NTP client: keep the clock synced; the FakeTLS window "
           "is %u ms\n", cfg.tolerate_skew_ms);
    int failed = 0;
    printf("Telegram datacenters\n");
    failed |= check_dcs(&cfg);
    printf("Fronting target\n");
    failed |= check_fronting(&cfg);
    printf("Site's TLS answer (what the FakeTLS answer copies)\n");
    failed |= site_doctor(&cfg);
    printf("SNI and DNS\n");
    failed |= check_sni_dns(&cfg);
    secret_wipe(&cfg.secret);
    return failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

int cli_healthcheck(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("healthcheck: expected one or more HOST:PORT addresses");
    int failed = 0;
    for (int i = 1; i < argc; i++) {
        dc_addr a;
        if (dc_parse_hostport(argv[i], &a) < 0)
            return cli_usage_error("healthcheck: '%s' is not IP:PORT or [IPv6]:PORT", argv[i]);
        if (net_probe_connect((const struct sockaddr *)&a.addr, a.len, HEALTH_TIMEOUT_MS) < 0) {
            fprintf(stderr, "tgfront: healthcheck: %s: %s\n", argv[i], strerror(errno));
            failed = 1;
        }
    }
    return failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}
