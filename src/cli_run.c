/* cli_run: `run CONFIG` and `simple-run BIND SECRET`, plus dropping root
 * after the listeners are open. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"
#include "server.h"

/* --user NAME or UID[:GID]: switch after binding so :443 needs root only at
 * start. Returns 0 or -1 with a message printed. */
static int drop_privileges(const char *user)
{
    uid_t uid;
    gid_t gid;
    char *end;
    unsigned long n = strtoul(user, &end, 10);
    if (end != user && (*end == '\0' || *end == ':')) {
        uid = (uid_t)n;
        gid = (gid_t)n;
        if (*end == ':') {
            const char *g = end + 1;
            n = strtoul(g, &end, 10);
            if (end == g || *end) {
                fprintf(stderr, "tgfront: --user: bad group in '%s'\n", user);
                return -1;
            }
            gid = (gid_t)n;
        }
    } else {
        struct passwd *pw = getpwnam(user);
        if (!pw) {
            fprintf(stderr, "tgfront: --user: no such user '%s'\n", user);
            return -1;
        }
        uid = pw->pw_uid;
        gid = pw->pw_gid;
    }
    if (setgroups(0, NULL) < 0 && errno != EPERM) {
        fprintf(stderr, "tgfront: setgroups: %s\n", strerror(errno));
        return -1;
    }
    if (setgid(gid) < 0 || setuid(uid) < 0) {
        fprintf(stderr, "tgfront: cannot switch to user '%s': %s\n", user, strerror(errno));
        return -1;
    }
    if (uid != 0 && setuid(0) == 0) {
        fprintf(stderr, "tgfront: could regain root after dropping privileges; refusing to run\n");
        return -1;
    }
    return 0;
}

static int run_server(const tgf_config *cfg, const char *user)
{
    log_set_level(cfg->debug ? LOG_DEBUG : LOG_INFO);
    static server s;   /* large; static keeps it off the stack */
    char err[512];
    if (server_init(&s, cfg, err, sizeof err) < 0) {
        fprintf(stderr, "tgfront: %s\n", err);
        server_destroy(&s);
        return CLI_EXIT_USAGE;
    }
    if (user && drop_privileges(user) < 0) {
        server_destroy(&s);
        return CLI_EXIT_USAGE;
    }
    int rc = server_run(&s);
    server_destroy(&s);
    return rc;
}

int cli_run(int argc, char **argv)
{
    const char *path = NULL, *user = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--user") || !strcmp(argv[i], "-u")) {
            if (++i == argc)
                return cli_usage_error("run: --user needs a value");
            user = argv[i];
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            puts("Usage: tgfront run CONFIG [--user USER]");
            return CLI_EXIT_OK;
        } else if (argv[i][0] == '-') {
            return cli_usage_error("run: unknown flag '%s'", argv[i]);
        } else if (path) {
            return cli_usage_error("run: one CONFIG path expected, got '%s' too", argv[i]);
        } else {
            path = argv[i];
        }
    }
    if (!path)
        return cli_usage_error("run: missing CONFIG path");
    static tgf_config cfg;
    if (cli_load_config(path, &cfg) < 0)
        return CLI_EXIT_USAGE;
    return run_server(&cfg, user);
}

static const char simple_usage[] =
    "Usage: tgfront simple-run BIND-TO SECRET [FLAGS]\n"
    "  -d, --debug                      debug logging\n"
    "  -c, --concurrency N              connection limit (default 8192)\n"
    "  -i, --prefer-ip MODE             prefer-ipv6 (default), prefer-ipv4, only-ipv6, only-ipv4\n"
    "  -p, --domain-fronting-port N     fronting port (default 443)\n"
    "      --domain-fronting-ip IP      fronting address (default: the secret's hostname)\n"
    "  -t, --timeout DURATION           tcp and idle timeout (default 10s, as mtg)\n"
    "  -a, --antireplay-cache-size SIZE anti-replay filter size (default 1MiB)\n"
    "  -u, --user USER                  drop root after binding\n";

int cli_simple_run(int argc, char **argv)
{
    static tgf_config cfg;
    config_defaults(&cfg);
    /* simple-run's own defaults, as mtg's. */
    cfg.concurrency = 8192;
    cfg.antireplay_enabled = 1;
    cfg.dcs.allow_fallback = 1;
    cfg.timeout_tcp_ms = cfg.timeout_idle_ms = 10000;
    const char *pos[2] = { NULL, NULL };
    int npos = 0;
    const char *user = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define FLAG(s, l) (!strcmp(a, s) || !strcmp(a, l))
        if (FLAG("-h", "--help")) {
            fputs(simple_usage, stdout);
            return CLI_EXIT_OK;
        } else if (FLAG("-d", "--debug")) {
            cfg.debug = 1;
        } else if (a[0] == '-' && !v) {
            return cli_usage_error("simple-run: %s needs a value", a);
        } else if (FLAG("-c", "--concurrency")) {
            char *end;
            unsigned long n = strtoul(v, &end, 10);
            if (*end || n == 0 || n > 65535)
                return cli_usage_error("simple-run: --concurrency must be 1..65535, got '%s'", v);
            cfg.concurrency = (unsigned)n;
            i++;
        } else if (FLAG("-i", "--prefer-ip")) {
            if (dc_prefer_parse(v, &cfg.dcs.prefer) < 0)
                return cli_usage_error("simple-run: bad --prefer-ip '%s'", v);
            i++;
        } else if (FLAG("-p", "--domain-fronting-port")) {
            char *end;
            unsigned long n = strtoul(v, &end, 10);
            if (*end || n == 0 || n > 65535)
                return cli_usage_error("simple-run: --domain-fronting-port must be 1..65535");
            cfg.fronting_port = (uint16_t)n;
            i++;
        } else if (!strcmp(a, "--domain-fronting-ip")) {
            dc_addr tmp;
            char hp[300];
            snprintf(hp, sizeof hp, strchr(v, ':') ? "[%s]:1" : "%s:1", v);
            if (dc_parse_hostport(hp, &tmp) < 0 || strlen(v) >= sizeof cfg.fronting_host)
                return cli_usage_error("simple-run: --domain-fronting-ip must be an IP, got '%s'", v);
            snprintf(cfg.fronting_host, sizeof cfg.fronting_host, "%s", v);
            i++;
        } else if (FLAG("-t", "--timeout")) {
            uint64_t ms;
            if (config_parse_duration(v, &ms) < 0 || ms > 86400000u)
                return cli_usage_error("simple-run: bad --timeout '%s'", v);
            cfg.timeout_tcp_ms = cfg.timeout_idle_ms = (uint32_t)ms;
            i++;
        } else if (FLAG("-a", "--antireplay-cache-size")) {
            if (config_parse_bytes(v, &cfg.antireplay_max_size) < 0)
                return cli_usage_error("simple-run: bad --antireplay-cache-size '%s'", v);
            i++;
        } else if (FLAG("-u", "--user")) {
            user = v;
            i++;
        } else if (FLAG("-s", "--socks5-proxy")) {
            return cli_usage_error("simple-run: SOCKS5 upstreams are not implemented yet by tgfront");
        } else if (FLAG("-n", "--doh-ip") || FLAG("-b", "--tcp-buffer")) {
            fprintf(stderr, "tgfront: simple-run: %s is accepted for mtg compatibility and ignored\n", a);
            i++;
        } else if (a[0] == '-') {
            return cli_usage_error("simple-run: unknown flag '%s'", a);
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            return cli_usage_error("simple-run: unexpected argument '%s'", a);
        }
#undef FLAG
    }
    if (npos < 2)
        return cli_usage_error("simple-run: expected BIND-TO and SECRET");
    dc_addr bind;
    if (dc_parse_hostport(pos[0], &bind) < 0)
        return cli_usage_error("simple-run: BIND-TO must be IP:PORT (or [IPv6]:PORT), got '%s'", pos[0]);
    cfg.bind_addr = bind.addr;
    cfg.bind_len = bind.len;
    secret_status st = secret_parse(pos[1], strlen(pos[1]), &cfg.secret);
    if (st != SECRET_OK)
        return cli_usage_error("simple-run: bad SECRET: %s", secret_status_str(st));
    return run_server(&cfg, user);
}
