/* config: mtg v2's TOML configuration, read strictly.
 *
 * Every key is declared once in `keys` below: table, name, type, bounds,
 * default and the handler that stores it. config_defaults applies the
 * defaults through the same handlers, so the table is the one place a
 * default lives. Loading walks the document in order; unknown keys and
 * tables, wrong types and out-of-range values are errors "file:line: ...".
 * Keys mtg has but tgfront does not act on are either accepted with a
 * warning (when ignoring them is harmless) or rejected (when ignoring them
 * would silently change security or routing, e.g. SOCKS5 upstreams). */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto.h"
#include "log.h"
#include "toml.h"

#define CONFIG_FILE_MAX (1u << 20)

#define SEC 1000ull
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define KIB 1024ull
#define GIB (KIB * KIB * KIB)

typedef enum {
    K_BOOL,
    K_INT,        /* min..max */
    K_FLOAT,      /* an integer is accepted too; bounds checked by handler */
    K_STRING,
    K_DURATION,   /* string -> ms, 0..max */
    K_BYTES,      /* string -> bytes, min..max */
    K_STRLIST     /* array of strings */
} key_kind;

typedef struct {
    int b;
    int64_t i;
    uint64_t u;        /* K_DURATION (ms), K_BYTES */
    double f;
    const char *s;
    const toml_value *arr;
} key_val;

typedef struct load_ctx load_ctx;
typedef struct key_def key_def;
typedef int (*key_handler)(load_ctx *c, const key_def *k, const key_val *v, int line);

struct key_def {
    const char *table;   /* "" = top level */
    const char *name;    /* "*" = any key of the table */
    key_kind kind;
    int64_t min, max;
    const char *def;     /* default, as TOML-ish text; NULL = zero/unset */
    key_handler set;
    size_t off;          /* field for the generic handlers */
};

struct load_ctx {
    tgf_config *cfg;
    int loading;              /* 0 while applying defaults: no warnings */
    const char *name;         /* file name for messages */
    char *err;
    size_t err_cap;
    const char *cur_key;      /* display name of the key being applied */

    int secret_line, bind_line;
    /* [domain-fronting] and its deprecated top-level spellings; merged in
     * finish() because either may come first in the file. */
    char front_host[CONFIG_HOST_MAX + 1];
    char front_ip[INET6_ADDRSTRLEN];
    char legacy_ip[INET6_ADDRSTRLEN];
    int front_host_line, front_ip_line, front_port_line;
    uint16_t legacy_port;
    int legacy_pp;
    int prom_enabled_line, prom_bind_line;
};

/* ---- messages -------------------------------------------------------- */

__attribute__((format(printf, 3, 4)))
static int cfail(load_ctx *c, int line, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->err != NULL && c->err_cap > 0)
        snprintf(c->err, c->err_cap, "%s:%d: %s", c->name, line, msg);
    return -1;
}

__attribute__((format(printf, 3, 4)))
static void cwarn(load_ctx *c, int line, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    if (!c->loading)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_warn("config", "%s:%d: %s", c->name, line, msg);
}

static void fmt_duration(uint64_t ms, char *out, size_t cap)
{
    if (ms != 0 && ms % HOUR == 0)
        snprintf(out, cap, "%lluh", (unsigned long long)(ms / HOUR));
    else if (ms != 0 && ms % MIN == 0)
        snprintf(out, cap, "%llum", (unsigned long long)(ms / MIN));
    else if (ms % SEC == 0)
        snprintf(out, cap, "%llus", (unsigned long long)(ms / SEC));
    else
        snprintf(out, cap, "%llums", (unsigned long long)ms);
}

static void fmt_bytes(uint64_t b, char *out, size_t cap)
{
    static const char *units[] = { "b", "kib", "mib", "gib", "tib" };
    size_t u = 0;
    while (u + 1 < sizeof units / sizeof units[0] && b != 0 && b % KIB == 0) {
        b /= KIB;
        u++;
    }
    snprintf(out, cap, "%llu%s", (unsigned long long)b, units[u]);
}

/* ---- value parsers --------------------------------------------------- */

/* Lowercases and drops spaces, as mtg does before parsing. */
static int normalise(const char *text, char *out, size_t cap)
{
    size_t n = 0;
    for (; *text; text++) {
        if (*text == ' ' || *text == '\t')
            continue;
        if (n + 1 >= cap)
            return -1;
        out[n++] = (char)tolower((unsigned char)*text);
    }
    out[n] = '\0';
    return n ? 0 : -1;
}

/* Reads "123" or "1.5" at *s: whole part and fraction scaled by `scale`
 * (the unit), rounding the fraction down. */
static int number_times_unit(const char **s, const char *(*unit_of)(const char *, uint64_t *),
                             uint64_t *out)
{
    const char *p = *s;
    uint64_t whole = 0, frac = 0, frac_div = 1;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
        if (whole > (UINT64_MAX - 9) / 10)
            return -1;
        whole = whole * 10 + (uint64_t)(*p++ - '0');
        digits++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (frac_div <= UINT64_MAX / 10 / 10) {   /* extra digits just truncate */
                frac = frac * 10 + (uint64_t)(*p - '0');
                frac_div *= 10;
            }
            p++;
            digits++;
        }
    }
    if (digits == 0)
        return -1;
    uint64_t unit;
    const char *after = unit_of(p, &unit);
    if (after == NULL)
        return -1;
    if (whole != 0 && unit > UINT64_MAX / whole)
        return -1;
    uint64_t v = whole * unit;
    /* frac/frac_div * unit without overflow: units are at most 2^60 and
     * frac_div at most 10^18, so split the multiplication. */
    long double part = (long double)frac / (long double)frac_div * (long double)unit;
    if ((long double)(UINT64_MAX - v) < part)
        return -1;
    *out = v + (uint64_t)part;
    *s = after;
    return 0;
}

/* Units in nanoseconds, longest spelling first so "ms" is not read as "m". */
static const char *duration_unit(const char *p, uint64_t *ns)
{
    static const struct { const char *u; uint64_t ns; } units[] = {
        { "ns", 1 }, { "us", 1000 }, { "\xc2\xb5s", 1000 }, { "\xce\xbcs", 1000 },
        { "ms", 1000000 }, { "s", 1000000000ull }, { "m", 60000000000ull },
        { "h", 3600000000000ull },
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        size_t n = strlen(units[i].u);
        if (strncmp(p, units[i].u, n) == 0) {
            *ns = units[i].ns;
            return p + n;
        }
    }
    return NULL;
}

int config_parse_duration(const char *text, uint64_t *ms)
{
    char buf[64];
    if (text == NULL || normalise(text, buf, sizeof buf) < 0)
        return -1;
    const char *s = buf;
    if (*s == '+')
        s++;
    if (strcmp(s, "0") == 0) {     /* Go accepts a bare zero */
        *ms = 0;
        return 0;
    }
    if (*s == '\0')
        return -1;
    uint64_t total = 0;
    while (*s) {
        uint64_t part;
        if (number_times_unit(&s, duration_unit, &part) < 0 || UINT64_MAX - total < part)
            return -1;
        total += part;
    }
    /* Round up so a tiny non-zero duration does not become "unset". */
    *ms = total / 1000000 + (total % 1000000 != 0);
    return 0;
}

static const char *bytes_unit(const char *p, uint64_t *mult)
{
    static const struct { const char *u; uint64_t m; } units[] = {
        { "kib", KIB }, { "kb", KIB }, { "k", KIB },
        { "mib", KIB * KIB }, { "mb", KIB * KIB }, { "m", KIB * KIB },
        { "gib", GIB }, { "gb", GIB }, { "g", GIB },
        { "tib", GIB * KIB }, { "tb", GIB * KIB }, { "t", GIB * KIB },
        { "b", 1 },
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        size_t n = strlen(units[i].u);
        if (strncmp(p, units[i].u, n) == 0) {
            *mult = units[i].m;
            return p + n;
        }
    }
    return NULL;
}

int config_parse_bytes(const char *text, uint64_t *bytes)
{
    char buf[64];
    if (text == NULL || normalise(text, buf, sizeof buf) < 0)
        return -1;
    const char *s = buf;
    uint64_t v;
    /* One number and one unit; a bare number is rejected like mtg does. */
    if (number_times_unit(&s, bytes_unit, &v) < 0 || *s != '\0')
        return -1;
    *bytes = v;
    return 0;
}

static int parse_ip(const char *text, int family, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof *out);
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)out;
        if (inet_pton(AF_INET, text, &sin->sin_addr) != 1)
            return -1;
        sin->sin_family = AF_INET;
        return 0;
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET6, text, &sin6->sin6_addr) != 1)
        return -1;
    sin6->sin6_family = AF_INET6;
    return 0;
}

static int is_ip_literal(const char *text)
{
    struct sockaddr_storage ss;
    return parse_ip(text, AF_INET, &ss) == 0 || parse_ip(text, AF_INET6, &ss) == 0;
}

/* A DNS name as the resolver will take it: dot-separated labels of letters,
 * digits, '-' and '_' (1..63 bytes, no '-' at either end), optional final
 * dot. All-numeric names are refused: getaddrinfo would read "127.1" as an
 * IPv4 address. */
static int is_hostname(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > CONFIG_HOST_MAX)
        return 0;
    if (s[len - 1] == '.')
        len--;
    size_t label = 0;
    int alpha = 0;
    for (size_t i = 0; i <= len; i++) {
        char ch = i < len ? s[i] : '.';
        if (ch == '.') {
            if (label == 0 || label > 63 || s[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        if (!isalnum((unsigned char)ch) && ch != '-' && ch != '_')
            return 0;
        if (label == 0 && ch == '-')
            return 0;
        if (!isdigit((unsigned char)ch))
            alpha = 1;
        label++;
    }
    return alpha;
}

/* ---- generic handlers ------------------------------------------------ */

#define FIELD(c, k, type) ((type *)((char *)(c)->cfg + (k)->off))

static int set_bool(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)line;
    *FIELD(c, k, int) = v->b;
    return 0;
}

static int set_unsigned(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)line;
    *FIELD(c, k, unsigned) = (unsigned)v->i;
    return 0;
}

static int set_u32(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)line;
    *FIELD(c, k, uint32_t) = (uint32_t)v->i;
    return 0;
}

static int set_u64(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)line;
    *FIELD(c, k, uint64_t) = v->u;
    return 0;
}

/* Durations stored in ms. As in mtg, an explicit zero means "unset", so
 * the default applies. */
static int set_ms(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)line;
    uint64_t ms = v->u;
    if (ms == 0 && k->def != NULL && config_parse_duration(k->def, &ms) < 0)
        return -1;
    *FIELD(c, k, uint32_t) = (uint32_t)ms;
    return 0;
}

/* TCP keep-alive takes whole seconds; round up like Go does. */
static int set_secs(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)line;
    uint64_t ms = v->u;
    if (ms == 0 && k->def != NULL && config_parse_duration(k->def, &ms) < 0)
        return -1;
    *FIELD(c, k, uint32_t) = (uint32_t)((ms + SEC - 1) / SEC);
    return 0;
}

/* ---- top level ------------------------------------------------------- */

static int set_secret(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    secret_status st = secret_parse(v->s, strlen(v->s), &c->cfg->secret);
    if (st != SECRET_OK)
        return cfail(c, line, "key 'secret' is invalid: %s (generate one with "
                     "'tgfront generate-secret HOSTNAME')", secret_status_str(st));
    c->secret_line = line;
    return 0;
}

static int set_bind(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    dc_addr a;
    if (dc_parse_hostport(v->s, &a) < 0)
        return cfail(c, line, "key 'bind-to' must be IP:PORT with a literal IP, like "
                     "\"0.0.0.0:443\" or \"[::]:443\" (got '%s')", v->s);
    c->cfg->bind_addr = a.addr;
    c->cfg->bind_len = a.len;
    c->bind_line = line;
    return 0;
}

static int set_prefer(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    if (dc_prefer_parse(v->s, &c->cfg->dcs.prefer) < 0)
        return cfail(c, line, "key 'prefer-ip' must be one of prefer-ipv6, prefer-ipv4, "
                     "only-ipv6, only-ipv4 (got '%s')", v->s);
    return 0;
}

static int set_public_ip(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    int v6 = strcmp(k->name, "public-ipv6") == 0;
    struct sockaddr_storage *ss = v6 ? &c->cfg->public_ipv6 : &c->cfg->public_ipv4;
    if (parse_ip(v->s, v6 ? AF_INET6 : AF_INET, ss) < 0)
        return cfail(c, line, "key '%s' must be an %s address (got '%s')", k->name,
                     v6 ? "IPv6" : "IPv4", v->s);
    *(v6 ? &c->cfg->have_public_ipv6 : &c->cfg->have_public_ipv4) = 1;
    return 0;
}

static int set_auto_update(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    if (v->b)
        cwarn(c, line, "auto-update = true has no effect: tgfront does not fetch Telegram's "
              "proxy config; it uses the built-in DC table and [datacenters]");
    return 0;
}

static int set_legacy_port(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    cwarn(c, line, "'domain-fronting-port' is deprecated; use port in [domain-fronting]");
    c->legacy_port = (uint16_t)v->i;
    return 0;
}

static int set_legacy_ip(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    cwarn(c, line, "'domain-fronting-ip' is deprecated; use host (or ip) in [domain-fronting]");
    if (!is_ip_literal(v->s))
        return cfail(c, line, "key 'domain-fronting-ip' must be an IP address (got '%s')", v->s);
    snprintf(c->legacy_ip, sizeof c->legacy_ip, "%s", v->s);
    return 0;
}

static int set_legacy_pp(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    cwarn(c, line, "'domain-fronting-proxy-protocol' is deprecated; use proxy-protocol "
          "in [domain-fronting]");
    c->legacy_pp = v->b;
    return 0;
}

/* ---- [domain-fronting] ----------------------------------------------- */

static int set_front_host(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    if (!is_ip_literal(v->s) && !is_hostname(v->s))
        return cfail(c, line, "key 'domain-fronting.host' must be a hostname or an IP address "
                     "without brackets or port (got '%s')", v->s);
    snprintf(c->front_host, sizeof c->front_host, "%s", v->s);
    c->front_host_line = line;
    return 0;
}

static int set_front_ip(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    if (!is_ip_literal(v->s))
        return cfail(c, line, "key 'domain-fronting.ip' must be an IP address "
                     "(use host for a hostname) (got '%s')", v->s);
    snprintf(c->front_ip, sizeof c->front_ip, "%s", v->s);
    c->front_ip_line = line;
    return 0;
}

static int set_front_port(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    c->cfg->fronting_port = (uint16_t)v->i;
    c->front_port_line = line;
    return 0;
}

/* ---- [network] and keys accepted without effect --------------------- */

static int set_resolver(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)v;
    cwarn(c, line, "'network.%s' has no effect: tgfront uses the system resolver%s", k->name,
          strcmp(k->name, "doh-ip") == 0 ? " (and doh-ip is deprecated in mtg)" : "");
    return 0;
}

static int set_proxies(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    if (v->arr->count > 0)
        return cfail(c, line, "SOCKS5 upstreams (network.proxies) are not implemented yet by "
                     "tgfront; remove them or use an empty list (connections would otherwise "
                     "go out directly)");
    return 0;
}

static int warn_http(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    (void)v;
    cwarn(c, line, "'network.timeout.http' is not used: tgfront makes no HTTP requests");
    return 0;
}

static int set_list_enabled(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    if (v->b)
        return cfail(c, line, "[%s] enabled = true: IP %s are not implemented yet by tgfront; "
                     "set enabled = false or remove the table", k->table,
                     strstr(k->table, "allow") ? "allowlists" : "blocklists");
    return 0;
}

static int warn_list(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)v;
    cwarn(c, line, "'%s.%s' has no effect: IP block/allow lists are not implemented yet "
          "by tgfront", k->table, k->name);
    return 0;
}

static int warn_doppel(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)v;
    cwarn(c, line, "'%s.%s' is not implemented yet (tgfront sizes its records like the Go TLS stack of Caddy)",
          k->table, k->name);
    return 0;
}

static int set_statsd_enabled(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    if (v->b)
        return cfail(c, line, "[stats.statsd] enabled = true: StatsD is not implemented yet by "
                     "tgfront; use [stats.prometheus] or set enabled = false");
    return 0;
}

static int warn_statsd(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)v;
    cwarn(c, line, "'stats.statsd.%s' has no effect: StatsD is not implemented yet by tgfront",
          k->name);
    return 0;
}

/* ---- [defense.anti-replay] ------------------------------------------- */

static int set_error_rate(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    /* mtg takes 0 < x < 100, but a Bloom filter's false-positive rate is a
     * probability: anything >= 1 would accept every replay. */
    if (!(v->f > 0.0 && v->f < 1.0))
        return cfail(c, line, "key 'defense.anti-replay.error-rate' must be a probability "
                     "between 0 and 1, exclusive, like 0.001 (got %g)", v->f);
    c->cfg->antireplay_error_rate = v->f;
    return 0;
}

/* ---- [stats.prometheus] ---------------------------------------------- */

static int set_prom_enabled(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    c->cfg->prometheus_enabled = v->b;
    c->prom_enabled_line = line;
    return 0;
}

static int set_prom_bind(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    dc_addr a;
    if (dc_parse_hostport(v->s, &a) < 0)
        return cfail(c, line, "key 'stats.prometheus.bind-to' must be IP:PORT with a literal "
                     "IP, like \"127.0.0.1:3129\" (got '%s')", v->s);
    c->cfg->prometheus_bind = a.addr;
    c->cfg->prometheus_bind_len = a.len;
    c->prom_bind_line = line;
    return 0;
}

/* mtg: "/" plus the path without surrounding slashes. */
static int set_prom_path(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    const char *s = v->s;
    size_t n = strlen(s);
    while (n > 0 && *s == '/') {
        s++;
        n--;
    }
    while (n > 0 && s[n - 1] == '/')
        n--;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '?' || ch == '#' || ch == '%')
            return cfail(c, line, "key 'stats.prometheus.http-path' may contain only printable "
                         "characters without spaces, '?', '#' or '%%' (got '%s')", v->s);
    }
    if (n + 2 > sizeof c->cfg->prometheus_path)
        return cfail(c, line, "key 'stats.prometheus.http-path' is too long (max %zu bytes)",
                     sizeof c->cfg->prometheus_path - 2);
    snprintf(c->cfg->prometheus_path, sizeof c->cfg->prometheus_path, "/%.*s", (int)n, s);
    return 0;
}

static int set_prom_prefix(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    const char *s = v->s;
    size_t n = strlen(s);
    int ok = n > 0 && n < sizeof c->cfg->prometheus_prefix && !isdigit((unsigned char)s[0]);
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)s[i]) || s[i] == '_';
    if (!ok)
        return cfail(c, line, "key 'stats.prometheus.metric-prefix' must be a Prometheus name: "
                     "letters, digits and '_', not starting with a digit, at most %zu bytes "
                     "(got '%s')", sizeof c->cfg->prometheus_prefix - 1, s);
    memcpy(c->cfg->prometheus_prefix, s, n + 1);
    return 0;
}

/* ---- [datacenters] --------------------------------------------------- */

static int set_datacenter(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    const char *key = c->cur_key;
    const char *num = key + strlen(k->table) + 1;
    char *end;
    long dc = strtol(num, &end, 10);
    if (!isdigit((unsigned char)num[0]) || num[0] == '0' || *end != '\0' || dc < 1 || dc > 32767)
        return cfail(c, line, "key '%s': [datacenters] keys must be DC numbers 1..32767, "
                     "like \"2\" or \"203\"", key);
    dc_table *t = &c->cfg->dcs;
    if (t->override_count == DC_MAX_OVERRIDES)
        return cfail(c, line, "too many [datacenters] entries (max %d)", DC_MAX_OVERRIDES);
    const toml_value *arr = v->arr;
    if (arr->count == 0 || arr->count > DC_MAX_ADDRS)
        return cfail(c, line, "key '%s' must list 1 to %d addresses", key, DC_MAX_ADDRS);
    dc_override *o = &t->overrides[t->override_count];
    memset(o, 0, sizeof *o);
    o->dc = (int)dc;
    for (size_t i = 0; i < arr->count; i++) {
        if (dc_parse_hostport(arr->items[i].str, &o->addrs[i]) < 0)
            return cfail(c, arr->items[i].line, "key '%s': '%s' is not IP:PORT with a literal "
                         "IP (IPv6 as \"[2001:db8::1]:443\")", key, arr->items[i].str);
    }
    o->count = arr->count;
    t->override_count++;
    return 0;
}

/* ---- the key table --------------------------------------------------- */

#define OFF(field) offsetof(tgf_config, field)
#define PORT 1, 65535
#define U16 1, 65535
#define NOB 0, 0
#define DUR(max) 0, (int64_t)(max)
#define ANYDUR DUR(UINT32_MAX)

static const key_def keys[] = {
    /* table, name, kind, min, max, default, handler, field */
    { "", "debug", K_BOOL, NOB, "false", set_bool, OFF(debug) },
    { "", "secret", K_STRING, NOB, NULL, set_secret, 0 },
    { "", "bind-to", K_STRING, NOB, NULL, set_bind, 0 },
    { "", "proxy-protocol-listener", K_BOOL, NOB, "false", set_bool, OFF(proxy_protocol_listener) },
    { "", "concurrency", K_INT, U16, "4096", set_unsigned, OFF(concurrency) },
    { "", "prefer-ip", K_STRING, NOB, "prefer-ipv6", set_prefer, 0 },
    { "", "public-ipv4", K_STRING, NOB, NULL, set_public_ip, 0 },
    { "", "public-ipv6", K_STRING, NOB, NULL, set_public_ip, 0 },
    { "", "auto-update", K_BOOL, NOB, NULL, set_auto_update, 0 },
    { "", "domain-fronting-port", K_INT, PORT, NULL, set_legacy_port, 0 },
    { "", "domain-fronting-ip", K_STRING, NOB, NULL, set_legacy_ip, 0 },
    { "", "domain-fronting-proxy-protocol", K_BOOL, NOB, NULL, set_legacy_pp, 0 },
    { "", "tolerate-time-skewness", K_DURATION, DUR(24 * HOUR), "3s", set_ms, OFF(tolerate_skew_ms) },
    { "", "allow-fallback-on-unknown-dc", K_BOOL, NOB, "false", set_bool, OFF(dcs.allow_fallback) },

    { "domain-fronting", "host", K_STRING, NOB, NULL, set_front_host, 0 },
    { "domain-fronting", "ip", K_STRING, NOB, NULL, set_front_ip, 0 },
    { "domain-fronting", "port", K_INT, PORT, "443", set_front_port, 0 },
    { "domain-fronting", "proxy-protocol", K_BOOL, NOB, "false", set_bool, OFF(fronting_proxy_protocol) },

    { "network", "dns", K_STRING, NOB, NULL, set_resolver, 0 },
    { "network", "doh-ip", K_STRING, NOB, NULL, set_resolver, 0 },
    { "network", "proxies", K_STRLIST, NOB, NULL, set_proxies, 0 },

    { "network.timeout", "tcp", K_DURATION, DUR(HOUR), "0s", set_ms, OFF(timeout_tcp_ms) },
    { "network.timeout", "http", K_DURATION, ANYDUR, NULL, warn_http, 0 },
    { "network.timeout", "idle", K_DURATION, DUR(24 * HOUR), "5m", set_ms, OFF(timeout_idle_ms) },
    { "network.timeout", "handshake", K_DURATION, DUR(HOUR), "10s", set_ms, OFF(timeout_handshake_ms) },

    /* Linux caps TCP_KEEPIDLE/TCP_KEEPINTVL at 32767 s and TCP_KEEPCNT at
     * 127; larger values would fail every dial, so they are refused here. */
    { "network.keep-alive", "disabled", K_BOOL, NOB, "false", set_bool, OFF(keepalive_disabled) },
    { "network.keep-alive", "idle", K_DURATION, DUR(32767 * SEC), "15s", set_secs, OFF(keepalive_idle_s) },
    { "network.keep-alive", "interval", K_DURATION, DUR(32767 * SEC), "15s", set_secs, OFF(keepalive_interval_s) },
    { "network.keep-alive", "count", K_INT, 1, 127, "9", set_u32, OFF(keepalive_count) },

    /* Anti-replay is on unless disabled: safer than mtg's omitted = false. */
    { "defense.anti-replay", "enabled", K_BOOL, NOB, "true", set_bool, OFF(antireplay_enabled) },
    { "defense.anti-replay", "max-size", K_BYTES, (int64_t)KIB, (int64_t)GIB, "1mib", set_u64, OFF(antireplay_max_size) },
    { "defense.anti-replay", "error-rate", K_FLOAT, NOB, "0.001", set_error_rate, 0 },

    { "defense.blocklist", "enabled", K_BOOL, NOB, NULL, set_list_enabled, 0 },
    { "defense.blocklist", "download-concurrency", K_INT, U16, NULL, warn_list, 0 },
    { "defense.blocklist", "urls", K_STRLIST, NOB, NULL, warn_list, 0 },
    { "defense.blocklist", "update-each", K_DURATION, ANYDUR, NULL, warn_list, 0 },
    { "defense.allowlist", "enabled", K_BOOL, NOB, NULL, set_list_enabled, 0 },
    { "defense.allowlist", "download-concurrency", K_INT, U16, NULL, warn_list, 0 },
    { "defense.allowlist", "urls", K_STRLIST, NOB, NULL, warn_list, 0 },
    { "defense.allowlist", "update-each", K_DURATION, ANYDUR, NULL, warn_list, 0 },

    { "defense.doppelganger", "urls", K_STRLIST, NOB, NULL, warn_doppel, 0 },
    { "defense.doppelganger", "repeats-per-raid", K_INT, U16, NULL, warn_doppel, 0 },
    { "defense.doppelganger", "raid-each", K_DURATION, ANYDUR, NULL, warn_doppel, 0 },
    { "defense.doppelganger", "drs", K_BOOL, NOB, NULL, warn_doppel, 0 },

    { "stats.statsd", "enabled", K_BOOL, NOB, NULL, set_statsd_enabled, 0 },
    { "stats.statsd", "address", K_STRING, NOB, NULL, warn_statsd, 0 },
    { "stats.statsd", "metric-prefix", K_STRING, NOB, NULL, warn_statsd, 0 },
    { "stats.statsd", "tag-format", K_STRING, NOB, NULL, warn_statsd, 0 },

    { "stats.prometheus", "enabled", K_BOOL, NOB, "false", set_prom_enabled, 0 },
    { "stats.prometheus", "bind-to", K_STRING, NOB, NULL, set_prom_bind, 0 },
    { "stats.prometheus", "http-path", K_STRING, NOB, "/", set_prom_path, 0 },
    { "stats.prometheus", "metric-prefix", K_STRING, NOB, "mtg", set_prom_prefix, 0 },

    /* tgfront's own: DC number -> ["ip:port", ...], replacing the built-in
     * addresses for that DC (tests and private deployments). */
    { "datacenters", "*", K_STRLIST, NOB, NULL, set_datacenter, 0 },
};

#define NKEYS (sizeof keys / sizeof keys[0])

/* ---- lookup and suggestions ----------------------------------------- */

static const key_def *find_key(const char *table, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].table, table) == 0 &&
            (strcmp(keys[i].name, name) == 0 || strcmp(keys[i].name, "*") == 0))
            return &keys[i];
    return NULL;
}

/* Known: a table of some key, or a parent of one ("defense", "stats"). */
static int table_known(const char *table)
{
    size_t n = strlen(table);
    for (size_t i = 0; i < NKEYS; i++) {
        const char *t = keys[i].table;
        if (strncmp(t, table, n) == 0 && (t[n] == '\0' || t[n] == '.'))
            return 1;
    }
    return 0;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static int close_enough(const char *typo, const char *known)
{
    size_t d = edit_distance(typo, known);
    return d <= 2 && d < strlen(known) / 2 + 1;
}

static void suggest_key(const char *table, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].table, table) == 0 && close_enough(name, keys[i].name)) {
            snprintf(out, cap, " (did you mean '%s'?)", keys[i].name);
            return;
        }
    /* Common mistake: a top-level key written after a [table] header. */
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0) {
            if (keys[i].table[0] == '\0')
                snprintf(out, cap, " ('%s' belongs at the top, before the first [table] header)", name);
            else
                snprintf(out, cap, " ('%s' belongs in [%s])", name, keys[i].table);
            return;
        }
}

static void suggest_table(const char *table, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < NKEYS; i++)
        if (close_enough(table, keys[i].table)) {
            snprintf(out, cap, " (did you mean [%s]?)", keys[i].table);
            return;
        }
}

/* ---- applying one value ---------------------------------------------- */

static const char *kind_text(key_kind kind)
{
    switch (kind) {
    case K_BOOL: return "a boolean (true or false)";
    case K_INT: return "an integer";
    case K_FLOAT: return "a number";
    case K_STRING: return "a string";
    case K_DURATION: return "a duration string like \"5s\", \"1m30s\" or \"250ms\"";
    case K_BYTES: return "a size string like \"1mib\" or \"512kib\"";
    case K_STRLIST: return "an array of strings";
    }
    return "a value";
}

/* mtg encodes every key except secret, bind-to and proxy-protocol-listener
 * with json omitempty, so 0, 0.0 and "" never reach its validators: the
 * default applies. Templated configs produce these when a variable is
 * empty. Booleans are left out: false is a real value here (it turns off
 * anti-replay, which defaults to true), and arrays keep their own checks. */
static int zero_means_default(const key_def *k, const toml_value *tv)
{
    if (k->set == set_secret || k->set == set_bind)
        return 0;
    switch (k->kind) {
    case K_INT:
        return tv->i == 0;
    case K_FLOAT:
        return tv->type == TOML_FLOAT ? tv->f == 0.0 : tv->i == 0;
    case K_STRING:
    case K_DURATION:
    case K_BYTES:
        return tv->str_len == 0;
    case K_BOOL:
    case K_STRLIST:
        return 0;
    }
    return 0;
}

/* 0: *v holds the value; 1: a zero value, keep the default; -1: error. */
static int convert(load_ctx *c, const key_def *k, const toml_value *tv, key_val *v)
{
    const char *name = c->cur_key;
    int line = tv->line;
    toml_type want = k->kind == K_BOOL ? TOML_BOOL : k->kind == K_INT ? TOML_INTEGER
                   : k->kind == K_FLOAT ? TOML_FLOAT : k->kind == K_STRLIST ? TOML_ARRAY
                   : TOML_STRING;
    int ok = tv->type == want || (k->kind == K_FLOAT && tv->type == TOML_INTEGER);
    if (ok && want == TOML_ARRAY)
        for (size_t i = 0; i < tv->count; i++)
            ok = ok && tv->items[i].type == TOML_STRING;
    if (!ok) {
        const char *got = tv->type == TOML_ARRAY ? (want == TOML_ARRAY ? "an array with "
                          "non-string items" : "an array")
                        : tv->type == TOML_INTEGER ? "an integer"
                        : tv->type == TOML_STRING ? "a string"
                        : tv->type == TOML_FLOAT ? "a float" : "a boolean";
        return cfail(c, line, "key '%s' must be %s, not %s", name, kind_text(k->kind), got);
    }
    if (zero_means_default(k, tv))
        return 1;

    char lo[32], hi[32];
    memset(v, 0, sizeof *v);
    switch (k->kind) {
    case K_BOOL:
        v->b = tv->b;
        return 0;
    case K_INT:
        if (tv->i < k->min || tv->i > k->max)
            return cfail(c, line, "key '%s' must be between %lld and %lld (got %lld)", name,
                         (long long)k->min, (long long)k->max, (long long)tv->i);
        v->i = tv->i;
        return 0;
    case K_FLOAT:
        v->f = tv->type == TOML_FLOAT ? tv->f : (double)tv->i;
        return 0;
    case K_STRING:
        v->s = tv->str;
        return 0;
    case K_STRLIST:
        v->arr = tv;
        return 0;
    case K_DURATION:
        if (config_parse_duration(tv->str, &v->u) < 0)
            return cfail(c, line, "key '%s' must be %s, not negative (got '%s')", name,
                         kind_text(k->kind), tv->str);
        if (v->u > (uint64_t)k->max) {
            fmt_duration((uint64_t)k->max, hi, sizeof hi);
            return cfail(c, line, "key '%s' must be at most %s (got '%s')", name, hi, tv->str);
        }
        return 0;
    case K_BYTES:
        if (config_parse_bytes(tv->str, &v->u) < 0)
            return cfail(c, line, "key '%s' must be %s; a bare number is not accepted "
                         "(got '%s')", name, kind_text(k->kind), tv->str);
        if (v->u < (uint64_t)k->min || v->u > (uint64_t)k->max) {
            fmt_bytes((uint64_t)k->min, lo, sizeof lo);
            fmt_bytes((uint64_t)k->max, hi, sizeof hi);
            return cfail(c, line, "key '%s' must be between %s and %s (got '%s')", name, lo,
                         hi, tv->str);
        }
        return 0;
    }
    return -1;
}

static int apply_entry(load_ctx *c, const toml_entry *e)
{
    char display[600], hint[200];
    if (e->table[0])
        snprintf(display, sizeof display, "%s.%s", e->table, e->key);
    else
        snprintf(display, sizeof display, "%s", e->key);
    c->cur_key = display;

    if (!table_known(e->table)) {
        suggest_table(e->table, hint, sizeof hint);
        return cfail(c, e->line, "unknown table [%s]%s", e->table, hint);
    }
    const key_def *k = find_key(e->table, e->key);
    if (k == NULL) {
        suggest_key(e->table, e->key, hint, sizeof hint);
        if (e->table[0])
            return cfail(c, e->line, "unknown key '%s' in [%s]%s", e->key, e->table, hint);
        return cfail(c, e->line, "unknown key '%s' at the top level%s", e->key, hint);
    }
    key_val v;
    int rc = convert(c, k, &e->value, &v);
    if (rc < 0)
        return -1;
    if (rc > 0) {
        /* Defaults are already in place and a key occurs once, so leaving
         * the value alone is "unset" (a legacy key can still apply). */
        log_debug("config", "%s:%d: '%s' is empty or zero: using the default", c->name,
                  e->line, display);
        return 0;
    }
    return k->set(c, k, &v, e->line);
}

/* Defaults go through the same handlers as file values. */
static int apply_default(load_ctx *c, const key_def *k)
{
    key_val v;
    memset(&v, 0, sizeof v);
    c->cur_key = k->name;
    switch (k->kind) {
    case K_BOOL: v.b = strcmp(k->def, "true") == 0; break;
    case K_INT: v.i = strtoll(k->def, NULL, 10); break;
    case K_FLOAT: v.f = strtod(k->def, NULL); break;
    case K_STRING: v.s = k->def; break;
    case K_DURATION:
        if (config_parse_duration(k->def, &v.u) < 0)
            return -1;
        break;
    case K_BYTES:
        if (config_parse_bytes(k->def, &v.u) < 0)
            return -1;
        break;
    case K_STRLIST: return -1;
    }
    return k->set(c, k, &v, 0);
}

void config_defaults(tgf_config *cfg)
{
    char err[200];
    load_ctx c;
    memset(cfg, 0, sizeof *cfg);
    memset(&c, 0, sizeof c);
    c.cfg = cfg;
    c.name = "(defaults)";
    c.err = err;
    c.err_cap = sizeof err;
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].def != NULL)
            (void)apply_default(&c, &keys[i]);   /* covered by unit tests */
    /* [network.client-keep-alive] until the key table declares it. */
    cfg->client_keepalive_idle_s = 120;
    cfg->client_keepalive_interval_s = 30;
    cfg->client_keepalive_count = 5;
}

/* ---- whole-document checks ------------------------------------------ */

static int check_table_header(load_ctx *c, const toml_table *t)
{
    char hint[200];
    if (table_known(t->name))
        return 0;
    suggest_table(t->name, hint, sizeof hint);
    return cfail(c, t->line, "unknown table [%s]%s", t->name, hint);
}

static int finish(load_ctx *c)
{
    tgf_config *cfg = c->cfg;
    if (c->secret_line == 0)
        return cfail(c, 1, "missing required key 'secret' (at the top, before any [table]; "
                     "generate one with 'tgfront generate-secret HOSTNAME')");
    if (c->bind_line == 0)
        return cfail(c, 1, "missing required key 'bind-to' (at the top, before any [table]; "
                     "e.g. bind-to = \"0.0.0.0:443\")");

    /* [domain-fronting] wins over the deprecated top-level keys; host and
     * ip name the same thing, so both at once is ambiguous. */
    if (c->front_host_line && c->front_ip_line)
        return cfail(c, c->front_host_line > c->front_ip_line ? c->front_host_line
                                                               : c->front_ip_line,
                     "[domain-fronting] sets both host and ip; keep only one");
    const char *front = c->front_host_line ? c->front_host
                      : c->front_ip_line ? c->front_ip : c->legacy_ip;
    snprintf(cfg->fronting_host, sizeof cfg->fronting_host, "%s", front);
    if (c->front_port_line == 0 && c->legacy_port != 0)
        cfg->fronting_port = c->legacy_port;
    cfg->fronting_proxy_protocol = cfg->fronting_proxy_protocol || c->legacy_pp;

    if (cfg->prometheus_enabled) {
        if (c->prom_bind_line == 0)
            return cfail(c, c->prom_enabled_line, "[stats.prometheus] enabled = true needs "
                         "bind-to, e.g. bind-to = \"127.0.0.1:3129\"");
        if (cfg->prometheus_bind_len == cfg->bind_len &&
            memcmp(&cfg->prometheus_bind, &cfg->bind_addr, cfg->bind_len) == 0)
            return cfail(c, c->prom_bind_line, "key 'stats.prometheus.bind-to' is the same "
                         "address as bind-to");
    }
    return 0;
}

static int walk(load_ctx *c, const toml_doc *doc)
{
    const toml_entry *e = toml_entries(doc);
    const toml_table *t = toml_tables(doc);
    /* Merge both lists by line so the first problem in the file is the one
     * reported. */
    while (e != NULL || t != NULL) {
        if (t != NULL && (e == NULL || t->line <= e->line)) {
            if (check_table_header(c, t) < 0)
                return -1;
            t = t->next;
        } else {
            if (apply_entry(c, e) < 0)
                return -1;
            e = e->next;
        }
    }
    return finish(c);
}

int config_load_string(const char *text, size_t len, const char *name,
                       tgf_config *cfg, char *err, size_t err_cap)
{
    load_ctx c;
    memset(&c, 0, sizeof c);
    c.cfg = cfg;
    c.loading = 1;
    c.name = name != NULL ? name : "(config)";
    c.err = err;
    c.err_cap = err_cap;
    if (err != NULL && err_cap > 0)
        err[0] = '\0';

    config_defaults(cfg);
    toml_error terr;
    toml_doc *doc = toml_parse(text, len, &terr);
    if (doc == NULL)
        return cfail(&c, terr.line, "%s", terr.msg);
    int rc = walk(&c, doc);
    toml_free(doc);
    if (rc < 0) {
        secret_wipe(&cfg->secret);
        return -1;
    }
    return 0;
}

static int fail_path(char *err, size_t cap, const char *path, const char *what)
{
    if (err != NULL && cap > 0)
        snprintf(err, cap, "%s: %s", path, what);
    return -1;
}

int config_load_file(const char *path, tgf_config *cfg, char *err, size_t err_cap)
{
    char why[160];
    config_defaults(cfg);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, sizeof why, "cannot open: %s", strerror(errno));
        return fail_path(err, err_cap, path, why);
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fail_path(err, err_cap, path, "not a regular file");
    }
    /* Read up to one byte past the cap so a file that grew is noticed too. */
    char *buf = malloc(CONFIG_FILE_MAX + 1);
    if (buf == NULL) {
        close(fd);
        return fail_path(err, err_cap, path, "out of memory");
    }
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, CONFIG_FILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(why, sizeof why, "cannot read: %s", strerror(errno));
            close(fd);
            free(buf);
            return fail_path(err, err_cap, path, why);
        }
        if (n == 0 || (len += (size_t)n) > CONFIG_FILE_MAX)
            break;
    }
    close(fd);
    int rc;
    if (len > CONFIG_FILE_MAX)
        rc = fail_path(err, err_cap, path, "file is larger than 1 MiB; is this the config?");
    else if (memchr(buf, '\0', len) != NULL)
        rc = fail_path(err, err_cap, path, "file contains NUL bytes; is this a text file?");
    else
        rc = config_load_string(buf, len, path, cfg, err, err_cap);
    crypto_wipe(buf, len);   /* the text holds the secret */
    free(buf);
    return rc;
}
