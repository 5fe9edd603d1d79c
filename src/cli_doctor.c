/* cli_doctor: `doctor [CONFIG]` finds why "the website works but Telegram
 * doesn't", one line per check:
 *
 *   OK   name: what was found
 *   WARN name: what may be wrong, and what to do
 *   FAIL name: what is wrong, and what to do
 *
 * Exit 1 when a check fails, 0 otherwise (warnings included). Each check is
 * a small function in `checks` below; a check may read what an earlier one
 * found (the fronting target's addresses, its Date header) from the
 * doctor struct. Also `healthcheck HOST:PORT...` (the image's HEALTHCHECK).
 *
 * It connects to the fronting target, the DCs (or their [datacenters]
 * overrides, through [network] proxies when set) and resolves the secret's
 * hostname: real network traffic, never run it in tests outside a
 * loopback-only namespace. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "fdlimit.h"
#include "https.h"
#include "netutil.h"
#include "proxyproto.h"
#include "server.h"
#include "site_doctor.h"
#include "socks5.h"
#include "tlstrust.h"

#define DOCTOR_TIMEOUT_MS 10000
#define HEALTH_TIMEOUT_MS 2000
/* The image's defaults, so `docker exec tgfront tgfront doctor` needs no
 * argument: its rendered config, and Caddy's local CA when TLS=internal. */
#define DOCTOR_IMAGE_CONFIG "/run/tgfront/config.toml"
#define DOCTOR_IMAGE_CADDY_ROOT "/data/caddy/pki/authorities/local/root.crt"
#define DOCTOR_MAX_CA_FILES 8

typedef enum { D_OK, D_WARN, D_FAIL } doctor_level;

typedef struct {
    const char *config_path;
    tgf_config *cfg;
    const char *ca_files[DOCTOR_MAX_CA_FILES];
    size_t ca_count;
    const char *ipv4, *ipv6;         /* --ipv4/--ipv6, else the config's */
    unsigned timeout_ms;
    int failed, warned;

    /* Found by earlier checks. */
    dc_addr front[SERVER_MAX_FRONT_ADDRS];
    int front_count;                 /* -1: not resolved */
    const dc_addr *front_up;         /* an address that accepted TCP */
    int tls_done;                    /* a TLS handshake completed */
    time_t front_date;               /* its HTTP Date; 0 if none */
    time_t date_seen_at;
} doctor;

__attribute__((format(printf, 4, 5)))
static void report(doctor *d, doctor_level lvl, const char *check, const char *fmt, ...)
{
    static const char *const words[] = { "OK  ", "WARN", "FAIL" };
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("%s %s: %s\n", words[lvl], check, msg);
    fflush(stdout);
    d->failed |= lvl == D_FAIL;
    d->warned |= lvl == D_WARN;
}

static const char *front_host(const tgf_config *cfg)
{
    return cfg->fronting_host[0] ? cfg->fronting_host : cfg->secret.host;
}

/* A blocking TCP connection with timeouts, or -1 (errno). */
static int dial(const dc_addr *a, unsigned timeout_ms)
{
    int fd = socket(a->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    https_set_timeouts(fd, timeout_ms);
    if (connect(fd, (const struct sockaddr *)&a->addr, a->len) < 0) {
        int e = errno == EINPROGRESS ? ETIMEDOUT : errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* ---- the checks ---------------------------------------------------------- */

static void check_fronting_loop(doctor *d)
{
    char err[600], rerr[300];
    const tgf_config *cfg = d->cfg;
    d->front_count = net_resolve(front_host(cfg), cfg->fronting_port, d->front,
                                 SERVER_MAX_FRONT_ADDRS, rerr, sizeof rerr);
    if (d->front_count < 0) {
        report(d, D_FAIL, "fronting target", "%s (set [domain-fronting] host or ip)", rerr);
        return;
    }
    if (server_check_fronting_loop(cfg, d->front, (size_t)d->front_count, err, sizeof err) < 0) {
        report(d, D_FAIL, "fronting loop", "%s", err);
        return;
    }
    report(d, D_OK, "fronting loop", "none: %s:%u is not this proxy's listener",
           front_host(cfg), (unsigned)cfg->fronting_port);
}

static void check_fronting_tcp(doctor *d)
{
    if (d->front_count < 0)
        return;
    char last[200] = "no address";
    for (int i = 0; i < d->front_count; i++) {
        char a[80];
        dc_format_addr((const struct sockaddr *)&d->front[i].addr, a, sizeof a);
        int fd = dial(&d->front[i], d->timeout_ms);
        if (fd >= 0) {
            close(fd);
            d->front_up = &d->front[i];
            report(d, D_OK, "fronting target", "%s accepts connections", a);
            return;
        }
        snprintf(last, sizeof last, "%s: %s", a, strerror(errno));
    }
    report(d, D_FAIL, "fronting target", "%s: every visitor and prober gets a reset; start the "
           "web server or fix [domain-fronting] host/port", last);
}

/* Loads the CA files, or the system bundle (plus the image's Caddy root). */
static int load_trust(doctor *d, tlstrust *t, char *note, size_t cap)
{
    char err[300];
    size_t n = 0;
    const char *files[DOCTOR_MAX_CA_FILES + 2];
    for (size_t i = 0; i < d->ca_count; i++)
        files[n++] = d->ca_files[i];
    if (n == 0 && d->cfg->ca_file[0])
        files[n++] = d->cfg->ca_file;
    if (n == 0) {
        files[n++] = TLSTRUST_SYSTEM_BUNDLE;
        if (access(DOCTOR_IMAGE_CADDY_ROOT, R_OK) == 0)
            files[n++] = DOCTOR_IMAGE_CADDY_ROOT;
    }
    note[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (tlstrust_add_file(t, files[i], err, sizeof err) < 0) {
            report(d, D_FAIL, "certificate", "cannot load CA certificates: %s", err);
            return -1;
        }
        size_t len = strlen(note);
        snprintf(note + len, cap - len, "%s%s", i ? ", " : "", files[i]);
    }
    return 0;
}

/* One TLS connection as a client would make it (after our PROXY header when
 * the target expects one), SNI and certificate name = the secret's hostname,
 * then HEAD / for the Date the clock check compares with. */
static void check_fronting_tls(doctor *d)
{
    if (!d->front_up)
        return;
    const tgf_config *cfg = d->cfg;
    tlstrust t;
    char note[600], err[300];
    tlstrust_init(&t);
    if (load_trust(d, &t, note, sizeof note) < 0) {
        tlstrust_free(&t);
        return;
    }
    int fd = dial(d->front_up, d->timeout_ms);
    if (fd < 0) {
        report(d, D_FAIL, "fronting TLS", "cannot connect again: %s", strerror(errno));
        tlstrust_free(&t);
        return;
    }
    if (cfg->fronting_proxy_protocol) {
        struct sockaddr_storage self;
        socklen_t len = sizeof self;
        uint8_t hdr[PROXYPROTO_V2_TCP6_LEN];
        size_t n = 0;
        if (getsockname(fd, (struct sockaddr *)&self, &len) == 0)
            n = proxyproto_v2_build(hdr, sizeof hdr, (struct sockaddr *)&self,
                                    (const struct sockaddr *)&d->front_up->addr);
        if (n == 0 || send(fd, hdr, n, MSG_NOSIGNAL) != (ssize_t)n) {
            report(d, D_FAIL, "fronting TLS", "cannot send the PROXY header");
            close(fd);
            tlstrust_free(&t);
            return;
        }
    }
    char req[400];
    snprintf(req, sizeof req, "HEAD / HTTP/1.0\r\nHost: %s\r\nUser-Agent: tgfront-doctor\r\n"
             "Connection: close\r\n\r\n", cfg->secret.host);
    https_response r;
    https_status st = https_exchange(fd, cfg->secret.host, &t, req, 0, &r, err, sizeof err);
    close(fd);
    tlstrust_free(&t);
    switch (st) {
    case HTTPS_E_CONNECT:
    case HTTPS_E_TLS:
        report(d, D_FAIL, "fronting TLS", "%s does not answer TLS for %s: %s%s", front_host(cfg),
               cfg->secret.host, err, cfg->fronting_proxy_protocol ? " (a PROXY v2 header was "
               "sent first, as proxy-protocol = true says)" : " (does it expect a PROXY header? "
               "then set [domain-fronting] proxy-protocol = true)");
        report(d, D_FAIL, "certificate", "not checked: no TLS handshake");
        return;
    case HTTPS_E_CERT:
        d->tls_done = 1;
        report(d, D_OK, "fronting TLS", "%s answers TLS for %s", front_host(cfg),
               cfg->secret.host);
        report(d, D_FAIL, "certificate", "%s for %s (trusted: %s); clients and probers compare "
               "it with what a browser would accept: fix the site's certificate, or pass "
               "--ca-file for a private CA", err, cfg->secret.host, note);
        return;
    case HTTPS_E_HTTP:
    case HTTPS_OK:
        break;
    }
    d->tls_done = 1;
    d->front_date = r.date;
    d->date_seen_at = time(NULL);
    report(d, D_OK, "fronting TLS", "%s answers TLS for %s", front_host(cfg), cfg->secret.host);
    report(d, D_OK, "certificate", "valid for %s (trusted: %s)", cfg->secret.host, note);
}

/* Telegram clients stamp their hello with their clock; we compare it with
 * ours. A prober compares our site's Date with its own clock. */
static void check_clock(doctor *d)
{
    if (!d->tls_done)
        return;
    if (!d->front_date) {
        report(d, D_WARN, "clock", "the fronting target sent no HTTP Date header to compare "
               "with; keep the clock synced (NTP): hellos more than %u ms off are refused",
               d->cfg->tolerate_skew_ms);
        return;
    }
    long long skew = (long long)d->date_seen_at - (long long)d->front_date;
    long long abs_skew = skew < 0 ? -skew : skew;
    long long window_s = (long long)d->cfg->tolerate_skew_ms / 1000;
    if (abs_skew >= window_s && abs_skew > 1)
        report(d, D_FAIL, "clock", "this host's clock is %lld s %s the fronting target's Date; "
               "Telegram clients with a correct clock are refused beyond %lld s "
               "(tolerate-time-skewness): sync the clock (NTP) on whichever is wrong",
               abs_skew, skew > 0 ? "ahead of" : "behind", window_s);
    else if (abs_skew > 2 && abs_skew * 2 >= window_s)
        report(d, D_WARN, "clock", "%lld s off the fronting target's Date, near the %lld s "
               "window; sync the clock (NTP)", skew, window_s);
    else
        report(d, D_OK, "clock", "within %lld s of the fronting target's Date (window %lld s)",
               abs_skew, window_s);
}

static void check_sni_dns(doctor *d)
{
    const tgf_config *cfg = d->cfg;
    struct sockaddr_storage want[2];
    int have[2] = { 0, 0 };
    const char *flags[2] = { d->ipv4, d->ipv6 };
    for (int f = 0; f < 2; f++) {
        if (flags[f]) {
            dc_addr a;
            char text[80];
            snprintf(text, sizeof text, f ? "[%s]:1" : "%s:1", flags[f]);
            if (dc_parse_hostport(text, &a) < 0 || (a.addr.ss_family == AF_INET6) != f) {
                report(d, D_FAIL, "hostname", "--ipv%d '%s' is not an IPv%d address", f ? 6 : 4,
                       flags[f], f ? 6 : 4);
                return;
            }
            want[f] = a.addr;
            have[f] = 1;
        } else if (f ? cfg->have_public_ipv6 : cfg->have_public_ipv4) {
            want[f] = f ? cfg->public_ipv6 : cfg->public_ipv4;
            have[f] = 1;
        }
    }
    if (!have[0] && !have[1]) {
        report(d, D_WARN, "hostname", "this host's public address is unknown: pass --ipv4/--ipv6 "
               "or set public-ipv4/public-ipv6 to check that %s resolves here", cfg->secret.host);
        return;
    }
    dc_addr addrs[16];
    char err[300];
    int n = net_resolve(cfg->secret.host, 443, addrs, 16, err, sizeof err);
    if (n < 0) {
        report(d, D_FAIL, "hostname", "%s; the secret's hostname must resolve to this host "
               "(a DPI box compares the SNI with the address)", err);
        return;
    }
    char got[400] = "";
    for (int i = 0; i < n; i++) {
        char ip[64];
        net_format_ip((const struct sockaddr *)&addrs[i].addr, ip, sizeof ip);
        for (int f = 0; f < 2; f++)
            if (have[f] && net_same_ip((const struct sockaddr *)&addrs[i].addr,
                                       (const struct sockaddr *)&want[f])) {
                report(d, D_OK, "hostname", "%s resolves to this host (%s)", cfg->secret.host, ip);
                return;
            }
        size_t len = strlen(got);
        snprintf(got + len, sizeof got - len, "%s%s", i ? ", " : "", ip);
    }
    char mine[140] = "";
    for (int f = 0; f < 2; f++)
        if (have[f]) {
            char ip[64];
            size_t len = strlen(mine);
            net_format_ip((const struct sockaddr *)&want[f], ip, sizeof ip);
            snprintf(mine + len, sizeof mine - len, "%s%s", len ? ", " : "", ip);
        }
    report(d, D_FAIL, "hostname", "%s resolves to %s, not to this host (%s): a DPI box sees "
           "an SNI that does not belong to the server; fix the DNS records", cfg->secret.host,
           got, mine);
}

/* A SOCKS5 CONNECT through up (at proxy) to target, blocking. 0 or -1 with
 * why set. */
static int socks_dial(const dc_addr *proxy, const socks5_upstream *up, const dc_addr *target,
                      unsigned timeout_ms, char *why, size_t cap)
{
    int fd = dial(proxy, timeout_ms);
    if (fd < 0) {
        snprintf(why, cap, "proxy: %s", strerror(errno));
        return -1;
    }
    socks5_client s;
    socks5_begin(&s, up, (const struct sockaddr *)&target->addr);
    socks5_result r = SOCKS5_NEED_MORE;
    while (r == SOCKS5_NEED_MORE) {
        size_t len;
        const uint8_t *out = socks5_pending(&s, &len);
        if (out) {
            ssize_t n = send(fd, out, len, MSG_NOSIGNAL);
            if (n <= 0)
                break;
            socks5_sent(&s, (size_t)n);
            continue;
        }
        uint8_t in[300];
        size_t want = socks5_want(&s);
        ssize_t n = read(fd, in, want < sizeof in ? want : sizeof in);
        if (n <= 0)
            break;
        r = socks5_input(&s, in, (size_t)n);
    }
    socks5_wipe(&s);
    close(fd);
    if (r == SOCKS5_DONE)
        return 0;
    if (r == SOCKS5_FAIL && s.error == SOCKS5_E_REFUSED)
        snprintf(why, cap, "%s: %s", socks5_error_str(s.error), socks5_rep_str(s.rep));
    else if (r == SOCKS5_FAIL)
        snprintf(why, cap, "%s", socks5_error_str(s.error));
    else
        snprintf(why, cap, "the proxy closed the connection");
    return -1;
}

static const int doctor_dcs[] = { 1, 2, 3, 4, 5, 203 };

/* One DC: the first address (in dial order) that answers, directly or
 * through the proxy at index px (-1: direct). */
static void check_one_dc(doctor *d, int dc, int px, const dc_addr *proxy)
{
    const tgf_config *cfg = d->cfg;
    dc_addr addrs[2 * DC_MAX_ADDRS];
    size_t count = dc_addresses(&cfg->dcs, dc, 1, addrs, 2 * DC_MAX_ADDRS);
    char via[120] = "", last[400] = "no address for the configured prefer-ip";
    if (px >= 0) {
        char pa[80];
        dc_format_addr((const struct sockaddr *)&proxy->addr, pa, sizeof pa);
        snprintf(via, sizeof via, " via SOCKS5 %s", pa);
    }
    for (size_t j = 0; j < count; j++) {
        char a[80], why[300];
        dc_format_addr((const struct sockaddr *)&addrs[j].addr, a, sizeof a);
        int ok;
        if (px >= 0) {
            ok = socks_dial(proxy, &cfg->proxies[px], &addrs[j], d->timeout_ms, why,
                            sizeof why) == 0;
        } else {
            ok = net_probe_connect((const struct sockaddr *)&addrs[j].addr, addrs[j].len,
                                   d->timeout_ms) == 0;
            snprintf(why, sizeof why, "%s", strerror(errno));
        }
        if (ok) {
            report(d, D_OK, "telegram", "DC %d reachable at %s%s", dc, a, via);
            return;
        }
        snprintf(last, sizeof last, "%s: %s", a, why);
    }
    report(d, D_FAIL, "telegram", "DC %d unreachable%s (%s): clients asking for it get no "
           "service; check the firewall, [datacenters] and prefer-ip", dc, via, last);
}

static void check_dcs(doctor *d)
{
    const tgf_config *cfg = d->cfg;
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
    dc_addr proxies[CONFIG_MAX_PROXIES];
    for (size_t p = 0; p < cfg->proxy_count; p++) {
        char err[300];
        if (net_resolve(cfg->proxies[p].host, cfg->proxies[p].port, &proxies[p], 1, err,
                        sizeof err) < 1) {
            report(d, D_FAIL, "telegram", "SOCKS5 proxy %zu: %s", p + 1, err);
            return;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (cfg->proxy_count == 0)
            check_one_dc(d, list[i], -1, NULL);
        for (size_t p = 0; p < cfg->proxy_count; p++)
            check_one_dc(d, list[i], (int)p, &proxies[p]);
    }
}

/* The same arithmetic as the server's (two descriptors a connection). */
static void check_descriptors(doctor *d)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        report(d, D_WARN, "descriptors", "cannot read RLIMIT_NOFILE: %s", strerror(errno));
        return;
    }
    uint64_t hard = rl.rlim_max == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_max;
    uint64_t reserve = hard / 4 < SERVER_FD_RESERVE ? hard / 4 : SERVER_FD_RESERVE;
    uint64_t cap = hard > reserve + 2 ? (hard - reserve) / 2 : 1;
    unsigned conc = d->cfg->concurrency;
    if (cap < conc)
        report(d, D_FAIL, "descriptors", "the hard limit %llu carries %llu connections, fewer "
               "than concurrency %u: raise it (docker run --ulimit nofile=%u:%u, LimitNOFILE= "
               "under systemd) or lower concurrency", (unsigned long long)hard,
               (unsigned long long)cap, conc, 2 * conc + SERVER_FD_RESERVE,
               2 * conc + SERVER_FD_RESERVE);
    else if (hard == UINT64_MAX)
        report(d, D_OK, "descriptors", "no hard limit (concurrency %u)", conc);
    else
        report(d, D_OK, "descriptors", "the hard limit %llu carries %llu connections "
               "(concurrency %u)", (unsigned long long)hard, (unsigned long long)cap, conc);
}

/* The site's TLS answer, probed as the daemon learns it (site_doctor.c
 * prints its own lines). */
static void check_site_profile(doctor *d)
{
    fflush(stdout);
    d->failed |= site_doctor(d->cfg) != 0;
    fflush(stdout);
}

/* In order; later checks read what earlier ones found. */
static void (*const checks[])(doctor *d) = {
    check_fronting_loop,
    check_fronting_tcp,
    check_fronting_tls,     /* also the certificate */
    check_clock,            /* needs the TLS check's Date */
    check_sni_dns,
    check_dcs,
    check_descriptors,
    check_site_profile,     /* the answer the FakeTLS answer copies */
};

static int usage(void)
{
    puts("Usage: tgfront doctor [CONFIG] [--ca-file FILE]... [--ipv4 IP] [--ipv6 IP]\n"
         "  CONFIG     default " DOCTOR_IMAGE_CONFIG " (the image's)\n"
         "  --ca-file  CA certificates (PEM) the site's certificate must chain to; default\n"
         "             [network] ca-file, else " TLSTRUST_SYSTEM_BUNDLE "\n"
         "             (plus " DOCTOR_IMAGE_CADDY_ROOT " when it exists)\n"
         "  --ipv4/--ipv6  this host's public address (default public-ipv4/public-ipv6)\n"
         "Prints OK, WARN or FAIL per check; exit 1 when a check fails.");
    return CLI_EXIT_OK;
}

int cli_doctor(int argc, char **argv)
{
    static tgf_config cfg;
    doctor d;
    memset(&d, 0, sizeof d);
    d.cfg = &cfg;
    d.front_count = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return usage();
        if (!strcmp(a, "--ca-file") || !strcmp(a, "--ipv4") || !strcmp(a, "--ipv6")) {
            if (i + 1 >= argc)
                return cli_usage_error("doctor: %s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--ipv4"))
                d.ipv4 = v;
            else if (!strcmp(a, "--ipv6"))
                d.ipv6 = v;
            else if (d.ca_count == DOCTOR_MAX_CA_FILES)
                return cli_usage_error("doctor: at most %d --ca-file", DOCTOR_MAX_CA_FILES);
            else
                d.ca_files[d.ca_count++] = v;
        } else if (a[0] == '-') {
            return cli_usage_error("doctor: unknown option '%s' (see doctor --help)", a);
        } else if (d.config_path) {
            return cli_usage_error("doctor: expected one CONFIG path");
        } else {
            d.config_path = a;
        }
    }
    if (!d.config_path)
        d.config_path = DOCTOR_IMAGE_CONFIG;

    char err[600];
    if (config_load_file(d.config_path, &cfg, err, sizeof err) < 0) {
        report(&d, D_FAIL, "config", "%s", err);
        return CLI_EXIT_FAIL;
    }
    report(&d, D_OK, "config", "%s is valid (warnings, if any, are above)", d.config_path);
    d.timeout_ms = cfg.timeout_tcp_ms ? cfg.timeout_tcp_ms : DOCTOR_TIMEOUT_MS;
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        checks[i](&d);
    secret_wipe(&cfg.secret);
    for (size_t p = 0; p < cfg.proxy_count; p++)
        memset(cfg.proxies[p].pass, 0, sizeof cfg.proxies[p].pass);
    return d.failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
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
