/* cli_run: `run CONFIG` and `simple-run BIND SECRET`, plus dropping root
 * after the listeners are open and reporting readiness (--ready-fd). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"
#include "server.h"
#include "site_probe.h"
#include "workers.h"

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

/* The listeners are open: tell the supervisor (s6's readiness protocol, a
 * newline on a descriptor it passes, then close). A failure is logged and
 * changes nothing else: the proxy works either way. */
static void report_ready(int fd)
{
    if (fd < 0)
        return;
    ssize_t n;
    do
        n = write(fd, "\n", 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        log_warn("main", "--ready-fd %d: cannot report readiness: %s", fd,
                 n < 0 ? strerror(errno) : "short write");
    close(fd);
}

/* --ready-fd N: a descriptor this process inherited, not stdio. */
static int parse_ready_fd(const char *cmd, const char *v, int *fd)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (end == v || *end != '\0' || errno != 0 || n < 3 || n > INT_MAX)
        return cli_usage_error("%s: --ready-fd must be a descriptor number of 3 or more, got '%s'",
                               cmd, v);
    if (fcntl((int)n, F_GETFD) < 0)
        return cli_usage_error("%s: --ready-fd %ld is not an open descriptor", cmd, n);
    *fd = (int)n;
    return 0;
}

/* The site's TLS answer is learned in the background (site_probe.h); until
 * then, and without it, the answer has the default shape. cfg: the
 * caller's, which outlives the prober (the target keeps no pointer into it
 * either). */
static void start_site_profile(const tgf_config *cfg, const server_shared *sh,
                               site_prober *prober)
{
    if (sh->site == NULL) {
        log_info("site", "site-profile disabled: the FakeTLS answer keeps the default shape");
        return;
    }
    log_info("site", "learning the site's TLS answer; until then it is sized for a Let's "
                     "Encrypt ECDSA chain");
    site_target t;
    site_target_init(&t, cfg, sh->front_addrs, sh->front_count);
    if (site_prober_start(prober, sh->site, &t, cfg->site_refresh_s, cfg->site_check_s) < 0)
        log_warn("site", "cannot start the site prober: %s", strerror(errno));
}

typedef struct {
    const tgf_config *cfg;
    const cli_run_opts *opts;
    site_prober prober;
} run_ctx;

/* Runs once the listeners are open, before any connection is served. */
static int after_listening(void *ctx, const server_shared *sh)
{
    run_ctx *rc = ctx;
    if (rc->opts->user && drop_privileges(rc->opts->user) < 0)
        return -1;
    /* Ready once the listeners are open and root is dropped: a supervisor
     * that starts dependents on readiness never sees a start that then
     * fails. */
    report_ready(rc->opts->ready_fd);
    start_site_profile(rc->cfg, sh, &rc->prober);
    return 0;
}

/* path: the file SIGHUP re-reads (NULL for simple-run). */
static int run_server(const tgf_config *cfg, const cli_run_opts *opts, const char *path)
{
    log_set_level(cfg->debug ? LOG_DEBUG : LOG_INFO);
    log_set_format(cfg->log_json ? LOG_JSON : LOG_TEXT);
    static site_store site;
    static run_ctx ctx;
    ctx.cfg = cfg;
    ctx.opts = opts;
    ctx.prober = (site_prober){ .started = 0 };
    workers_opts wo = { .after_init = after_listening, .ctx = &ctx, .usage_rc = CLI_EXIT_USAGE,
                        .config_path = path, .site = NULL };
    if (cfg->site_profile_enabled && site_store_init(&site) == 0)
        wo.site = &site;
    int rc = workers_run(cfg, &wo);
    site_prober_stop(&ctx.prober);
    return rc;
}

int cli_run(int argc, char **argv)
{
    const char *path = NULL;
    cli_run_opts opts = { NULL, -1 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--user") || !strcmp(a, "-u") || !strcmp(a, "--ready-fd")) {
            if (++i == argc)
                return cli_usage_error("run: %s needs a value", a);
            if (strcmp(a, "--ready-fd") != 0)
                opts.user = argv[i];
            else if (parse_ready_fd("run", argv[i], &opts.ready_fd) != 0)
                return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            puts("Usage: tgfront run CONFIG [--user USER] [--ready-fd N]");
            return CLI_EXIT_OK;
        } else if (a[0] == '-') {
            return cli_usage_error("run: unknown flag '%s'", a);
        } else if (path) {
            return cli_usage_error("run: one CONFIG path expected, got '%s' too", a);
        } else {
            path = a;
        }
    }
    if (!path)
        return cli_usage_error("run: missing CONFIG path");
    static tgf_config cfg;
    if (cli_load_config(path, &cfg) < 0)
        return CLI_EXIT_USAGE;
    return run_server(&cfg, &opts, path);
}

static const char simple_usage[] =
    "Usage: tgfront simple-run BIND-TO SECRET [FLAGS]\n"
    "  -d, --debug                      debug logging\n"
    "  -c, --concurrency N              connection limit, 1..65535 (default 8192)\n"
    "      --workers N                  event loops, 0..256 (default 0: one per CPU)\n"
    "  -i, --prefer-ip MODE             prefer-ipv6 (default), prefer-ipv4, only-ipv6, only-ipv4\n"
    "  -p, --domain-fronting-port N     fronting port (default 443)\n"
    "      --domain-fronting-ip IP      fronting address (default: the secret's hostname)\n"
    "  -t, --timeout DURATION           tcp and idle timeout, 1s..1h (default 10s, as mtg)\n"
    "  -a, --antireplay-cache-size SIZE anti-replay filter size, 1kib..1gib (default 1mib)\n"
    "  -u, --user USER                  drop root after binding\n"
    "      --ready-fd N                 write a newline to descriptor N once listening\n";

/* Each flag is the config key it stands for, set through config_set so its
 * bounds and messages are the file's. */
static const struct {
    const char *s, *l;     /* short and long spelling (s may be NULL) */
    const char *keys[2];   /* keys it sets, NULL-terminated */
} simple_flags[] = {
    { "-c", "--concurrency", { "concurrency", NULL } },
    { NULL, "--workers", { "workers", NULL } },
    { "-i", "--prefer-ip", { "prefer-ip", NULL } },
    { "-p", "--domain-fronting-port", { "domain-fronting.port", NULL } },
    { NULL, "--domain-fronting-ip", { "domain-fronting.ip", NULL } },
    /* mtg: --timeout is the dial and the relay idle timeout at once. */
    { "-t", "--timeout", { "network.timeout.tcp", "network.timeout.idle" } },
    { "-a", "--antireplay-cache-size", { "defense.anti-replay.max-size", NULL } },
};

static int set_key(tgf_config *cfg, const char *key, const char *text, const char *origin)
{
    char err[512];
    if (config_set(cfg, key, text, origin, err, sizeof err) == 0)
        return 0;
    fprintf(stderr, "tgfront: simple-run: %s\n", err);
    return -1;
}

/* simple-run's own defaults, as mtg's: 8192 connections, 10 s timeouts,
 * anti-replay and the unknown-DC fallback on. */
static int simple_defaults(tgf_config *cfg)
{
    config_defaults(cfg);
    return set_key(cfg, "concurrency", "8192", "simple-run defaults") |
           set_key(cfg, "network.timeout.tcp", "10s", "simple-run defaults") |
           set_key(cfg, "network.timeout.idle", "10s", "simple-run defaults") |
           set_key(cfg, "defense.anti-replay.enabled", "true", "simple-run defaults") |
           set_key(cfg, "allow-fallback-on-unknown-dc", "true", "simple-run defaults");
}

/* One flag with a value at argv[*i]; *i moves past the value. 0, or -1
 * with the message printed. 1: not a table flag. */
static int simple_table_flag(tgf_config *cfg, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    for (size_t f = 0; f < sizeof simple_flags / sizeof simple_flags[0]; f++) {
        if (strcmp(a, simple_flags[f].l) != 0 &&
            (simple_flags[f].s == NULL || strcmp(a, simple_flags[f].s) != 0))
            continue;
        if (*i + 1 >= argc) {
            cli_usage_error("simple-run: %s needs a value", a);
            return -1;
        }
        const char *v = argv[++*i];
        for (size_t k = 0; k < 2 && simple_flags[f].keys[k] != NULL; k++)
            if (set_key(cfg, simple_flags[f].keys[k], v, simple_flags[f].l) < 0)
                return -1;
        return 0;
    }
    return 1;
}

int cli_simple_run_parse(int argc, char **argv, tgf_config *cfg, cli_run_opts *opts)
{
    const char *pos[2] = { NULL, NULL };
    int npos = 0;
    opts->user = NULL;
    opts->ready_fd = -1;
    if (simple_defaults(cfg) != 0)
        return -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = simple_table_flag(cfg, argc, argv, &i);
        if (rc <= 0) {
            if (rc < 0)
                return -1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(simple_usage, stdout);
            return 1;
        } else if (!strcmp(a, "-d") || !strcmp(a, "--debug")) {
            if (set_key(cfg, "debug", "true", a) < 0)
                return -1;
        } else if (a[0] == '-' && !v) {
            cli_usage_error("simple-run: %s needs a value", a);
            return -1;
        } else if (!strcmp(a, "-u") || !strcmp(a, "--user")) {
            opts->user = argv[++i];
        } else if (!strcmp(a, "--ready-fd")) {
            if (parse_ready_fd("simple-run", argv[++i], &opts->ready_fd) != 0)
                return -1;
        } else if (!strcmp(a, "-s") || !strcmp(a, "--socks5-proxy")) {
            cli_usage_error("simple-run: SOCKS5 upstreams are not implemented yet by tgfront");
            return -1;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--doh-ip") || !strcmp(a, "-b") ||
                   !strcmp(a, "--tcp-buffer")) {
            fprintf(stderr, "tgfront: simple-run: %s is accepted for mtg compatibility and ignored\n", a);
            i++;
        } else if (a[0] == '-') {
            cli_usage_error("simple-run: unknown flag '%s'", a);
            return -1;
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            cli_usage_error("simple-run: unexpected argument '%s'", a);
            return -1;
        }
    }
    if (npos < 2) {
        cli_usage_error("simple-run: expected BIND-TO and SECRET");
        return -1;
    }
    if (set_key(cfg, "bind-to", pos[0], "BIND-TO") < 0 || set_key(cfg, "secret", pos[1], "SECRET") < 0)
        return -1;
    return 0;
}

int cli_simple_run(int argc, char **argv)
{
    static tgf_config cfg;
    cli_run_opts opts;
    int rc = cli_simple_run_parse(argc, argv, &cfg, &opts);
    if (rc != 0) {
        secret_wipe(&cfg.secret);
        return rc > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    }
    return run_server(&cfg, &opts, NULL);
}
