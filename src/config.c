/* config: mtg v2's TOML configuration, read strictly.
 *
 * Every key is declared once in `keys` below: table, name, type, bounds,
 * default and the handler that stores it. config_defaults applies the
 * defaults through the same handlers, so the table is the one place a
 * default lives. Loading walks the document in order; unknown keys and
 * tables, wrong types and out-of-range values are errors "file:line: ...".
 * Keys mtg has but tgfront does not act on are either accepted with a
 * warning (when ignoring them is harmless) or rejected (when ignoring them
 * would silently change security or routing, e.g. StatsD being on). */
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

#include "config_secrets.h"
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
    K_FLOAT,      /* an integer is accepted too; bounds checked by a handler */
    K_STRING,
    K_DURATION,   /* string -> ms; a non-zero value must be within min..max */
    K_BYTES,      /* string -> bytes, min..max */
    K_STRLIST     /* array of strings */
} key_kind;

/* How a checked value reaches its field. Each store writes exactly one C
 * type, and the AT_* entry macros below do not compile when the field has
 * another, so a table line cannot write a uint16_t through a uint32_t. */
typedef enum {
    S_NONE,       /* the key's handler does all the work */
    S_BOOL,       /* int, 0 or 1, from K_BOOL */
    S_U16,        /* uint16_t from K_INT */
    S_U32,        /* uint32_t from K_INT */
    S_MS,         /* uint32_t milliseconds from K_DURATION */
    S_SECS,       /* uint32_t whole seconds from K_DURATION, rounded up as Go
                   * does (TCP keep-alive options take seconds) */
    S_U64,        /* uint64_t from K_BYTES */
    S_DOUBLE      /* double from K_FLOAT */
} key_store;

/* What happens when a file uses both a key's name and its deprecated
 * spelling (mtg's rules for its three domain-fronting-* keys). */
typedef enum {
    MERGE_NAME_WINS,   /* the current name wins, in either order */
    MERGE_OR           /* a boolean is true when either spelling says so */
} key_merge;

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
/* Validates a converted value (and stores what no S_* store can); line is
 * 0 while defaults are applied. 0 or -1 after cfail. */
typedef int (*key_handler)(load_ctx *c, const key_def *k, const key_val *v, int line);

struct key_def {
    const char *table;   /* "" = top level */
    const char *name;    /* "*" = any key of the table */
    key_kind kind;
    key_store store;
    int has_field;       /* off names the field this key writes, through its */
    size_t off;          /* store or its handler (keys sharing one conflict) */
    int64_t min, max;    /* K_INT, K_DURATION (ms), K_BYTES */
    int has_def;
    key_val def;         /* typed default, applied like a value from a file */
    key_handler check;   /* optional, runs before the store */
    const char *alias;   /* deprecated spelling: "name" (top level) or "table.name" */
    key_merge merge;
};

#define CONFIG_MAX_KEYS 80

struct load_ctx {
    tgf_config *cfg;
    int loading;              /* 0 while applying defaults: no warnings */
    int no_lines;             /* command-line flags: "name: message" */
    const char *name;         /* file name (or flag) for messages */
    char *err;
    size_t err_cap;
    const char *cur_key;      /* display name of the key being applied */
    /* Where each keys[] entry was set under its name and under its alias
     * (0 = not set): required keys, spelling merges, messages. */
    int line[CONFIG_MAX_KEYS];
    int alias_line[CONFIG_MAX_KEYS];
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
    if (c->err == NULL || c->err_cap == 0)
        return -1;
    if (c->no_lines)
        snprintf(c->err, c->err_cap, "%s: %s", c->name, msg);
    else
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

/* Reads "123" or "1.5" and its unit at *s (unit_of matches the unit and
 * gives its multiplier): number times multiplier, the fraction's share
 * rounded down. Advances *s past the unit. 0, or -1 on no digits, an
 * unknown unit or overflow. */
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
    /* The fraction's share, frac / frac_div * unit, in long double: frac
     * times unit can overflow 64 bits (units reach 2^60 and frac 10^18),
     * and the 64-bit mantissa keeps every result the config allows exact
     * enough for a value rounded down anyway. */
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

/* ---- the generic store ------------------------------------------------ */

/* Writes a checked value through the key's store: the one place a field is
 * written without a handler. The AT_* macros checked the field's type. */
static void store_value(load_ctx *c, const key_def *k, const key_val *v)
{
    void *f = (char *)c->cfg + k->off;
    switch (k->store) {
    case S_NONE: return;
    case S_BOOL: *(int *)f = v->b != 0; return;
    case S_U16: *(uint16_t *)f = (uint16_t)v->i; return;
    case S_U32: *(uint32_t *)f = (uint32_t)v->i; return;
    case S_MS: *(uint32_t *)f = (uint32_t)v->u; return;
    case S_SECS: *(uint32_t *)f = (uint32_t)((v->u + SEC - 1) / SEC); return;
    case S_U64: *(uint64_t *)f = v->u; return;
    case S_DOUBLE: *(double *)f = v->f; return;
    }
}

/* ---- top level ------------------------------------------------------- */

static int set_secret(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    secret_status st = secret_parse(v->s, strlen(v->s), &c->cfg->secret);
    if (st != SECRET_OK)
        return cfail(c, line, "key 'secret' is invalid: %s (generate one with "
                     "'tgfront generate-secret HOSTNAME')", secret_status_str(st));
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

/* ---- [domain-fronting] ----------------------------------------------- */

/* host and ip write the same field, so setting both is refused when the
 * second arrives (merge_spellings); the deprecated top-level
 * domain-fronting-ip is ip's alias and loses to either. */
static int set_front_host(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    if (!is_ip_literal(v->s) && !is_hostname(v->s))
        return cfail(c, line, "key '%s' must be a hostname or an IP address without "
                     "brackets or port (got '%s')", c->cur_key, v->s);
    snprintf(c->cfg->fronting_host, sizeof c->cfg->fronting_host, "%s", v->s);
    return 0;
}

static int set_front_ip(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    if (!is_ip_literal(v->s))
        return cfail(c, line, "key '%s' must be an IP address (use host for a hostname) "
                     "(got '%s')", c->cur_key, v->s);
    snprintf(c->cfg->fronting_host, sizeof c->cfg->fronting_host, "%s", v->s);
    return 0;
}

/* ---- [network] and keys accepted without effect --------------------- */

static int set_resolver(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    (void)v;
    cwarn(c, line, "'%s' has no effect: tgfront uses the system resolver", c->cur_key);
    return 0;
}

static int warn_http(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    (void)v;
    cwarn(c, line, "'network.timeout.http' is not used: list downloads have a 30 s timeout of their "
          "own");
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
    return 0;
}

/* ---- [stats.prometheus] ---------------------------------------------- */

static int set_prom_bind(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    dc_addr a;
    if (dc_parse_hostport(v->s, &a) < 0)
        return cfail(c, line, "key 'stats.prometheus.bind-to' must be IP:PORT with a literal "
                     "IP, like \"127.0.0.1:3129\" (got '%s')", v->s);
    c->cfg->prometheus_bind = a.addr;
    c->cfg->prometheus_bind_len = a.len;
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

/* ---- operations: log-format, access lists, upstreams, CA file ------- */

static int set_log_format(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    log_format f;
    if (log_format_parse(v->s, &f) < 0)
        return cfail(c, line, "key 'log-format' must be \"text\" or \"json\" (got '%s')", v->s);
    c->cfg->log_json = f == LOG_JSON;
    return 0;
}

static config_iplist *list_of(load_ctx *c, const key_def *k)
{
    return strstr(k->table, "allow") ? &c->cfg->allowlist : &c->cfg->blocklist;
}

static int set_list_enabled(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)line;
    list_of(c, k)->enabled = v->b != 0;
    return 0;
}

static int set_list_concurrency(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)line;
    list_of(c, k)->download_concurrency = (uint32_t)v->i;
    return 0;
}

static int set_list_update(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)line;
    list_of(c, k)->update_each_ms = (uint32_t)v->u;
    return 0;
}

/* mtg: http(s) URLs or readable files; relative paths become absolute (the
 * refresh runs later, from wherever). Plain http is refused: a list that
 * decides who reaches Telegram must not be rewritable on the way. */
static int set_list_urls(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    config_iplist *l = list_of(c, k);
    const toml_value *arr = v->arr;
    if (arr->count > CONFIG_LIST_URLS)
        return cfail(c, line, "key '%s' lists %zu sources; at most %d", c->cur_key, arr->count,
                     CONFIG_LIST_URLS);
    l->url_count = 0;
    for (size_t i = 0; i < arr->count; i++) {
        const char *u = arr->items[i].str;
        int ln = arr->items[i].line;
        char *dst = l->urls[i];
        if (strncmp(u, "http://", 7) == 0)
            return cfail(c, ln, "key '%s': '%s': plain http is not accepted; use https:// "
                         "(the certificate is verified) or a local file", c->cur_key, u);
        if (strncmp(u, "https://", 8) == 0) {
            if (strlen(u) >= CONFIG_PATH_MAX)
                return cfail(c, ln, "key '%s': URL longer than %d bytes", c->cur_key,
                             CONFIG_PATH_MAX - 1);
            snprintf(dst, CONFIG_PATH_MAX, "%s", u);
        } else if (strstr(u, "://") != NULL || u[0] == '\0') {
            return cfail(c, ln, "key '%s': '%s' is neither an https:// URL nor a file path",
                         c->cur_key, u);
        } else if (u[0] == '/') {
            if (strlen(u) >= CONFIG_PATH_MAX)
                return cfail(c, ln, "key '%s': path longer than %d bytes", c->cur_key,
                             CONFIG_PATH_MAX - 1);
            snprintf(dst, CONFIG_PATH_MAX, "%s", u);
        } else {
            char cwd[CONFIG_PATH_MAX];
            if (getcwd(cwd, sizeof cwd) == NULL ||
                (size_t)snprintf(dst, CONFIG_PATH_MAX, "%s/%s", cwd, u) >= CONFIG_PATH_MAX)
                return cfail(c, ln, "key '%s': cannot make '%s' an absolute path", c->cur_key, u);
        }
        l->url_count++;
    }
    return 0;
}

static int set_proxies(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    const toml_value *arr = v->arr;
    if (arr->count > CONFIG_MAX_PROXIES)
        return cfail(c, line, "key 'network.proxies' lists %zu proxies; at most %d", arr->count,
                     CONFIG_MAX_PROXIES);
    c->cfg->proxy_count = 0;
    for (size_t i = 0; i < arr->count; i++) {
        const char *why = "";
        if (socks5_parse_url(arr->items[i].str, &c->cfg->proxies[i], &why) < 0)
            /* The URL may hold a password: name the entry, not its text. */
            return cfail(c, arr->items[i].line, "key 'network.proxies': entry %zu: %s (expected "
                         "socks5://[user:password@]host[:port] or socks5h://...)", i + 1, why);
        c->cfg->proxy_count++;
    }
    return 0;
}

static int set_ca_file(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    if (strlen(v->s) >= sizeof c->cfg->ca_file)
        return cfail(c, line, "key 'network.ca-file' is longer than %zu bytes",
                     sizeof c->cfg->ca_file - 1);
    if (access(v->s, R_OK) != 0)
        return cfail(c, line, "key 'network.ca-file': cannot read '%s': %s", v->s,
                     strerror(errno));
    snprintf(c->cfg->ca_file, sizeof c->cfg->ca_file, "%s", v->s);
    return 0;
}

/* ---- [web] (tgfront's own) ------------------------------------------- */

/* Only Caddy, on this machine, may reach the WEB listener: it trusts the
 * X-Forwarded-For Caddy sets, and it answers everything the site should
 * answer with a marker only Caddy turns into the site's page. */
static int set_web_bind(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    dc_addr a;
    if (dc_parse_hostport(v->s, &a) < 0)
        return cfail(c, line, "key 'web.bind-to' must be IP:PORT with a literal IP, like "
                     "\"127.0.0.1:8081\" (got '%s')", v->s);
    const struct sockaddr *sa = (const struct sockaddr *)&a.addr;
    int loopback = sa->sa_family == AF_INET
                       ? (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127
                       : IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    if (!loopback)
        return cfail(c, line, "key 'web.bind-to' must be a loopback address (127.0.0.0/8 or "
                     "[::1]): only the local Caddy may reach it (got '%s')", v->s);
    c->cfg->web.bind_addr = a.addr;
    c->cfg->web.bind_len = a.len;
    return 0;
}

/* A DNS name in its ACE, lower-case form: what the client hashes. */
static int set_web_host(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    const char *s = v->s;
    size_t n = strlen(s), label = 0;
    int ok = n > 0 && n <= WEB_HOST_MAX && strchr(s, '.') != NULL && s[n - 1] != '.';
    for (size_t i = 0; ok && i < n; i++) {
        char ch = s[i];
        if (ch == '.') {
            ok = label > 0 && s[i - 1] != '-';
            label = 0;
        } else {
            ok = ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                  (ch == '-' && label > 0)) && ++label <= 63;
        }
    }
    if (!ok)
        return cfail(c, line, "key 'web.host' must be a lower-case DNS name with a dot, in its "
                     "ACE (xn--) form, like \"proxy.example.com\" (got '%s')", s);
    memcpy(c->cfg->web.host, s, n + 1);
    return 0;
}

static int set_web_path(load_ctx *c, const key_def *k, const key_val *v, int line)
{
    (void)k;
    const char *s = v->s;
    size_t n = strlen(s);
    int ok = n >= 2 && n <= WEB_PATH_MAX && s[0] == '/' && s[n - 1] != '/';
    for (size_t i = 1; ok && i < n; i++)
        ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
             (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' ||
             (s[i] == '/' && s[i - 1] != '/');
    if (!ok)
        return cfail(c, line, "key 'web.socket-path' must be an absolute path of letters, "
                     "digits, '-', '_' and single '/', not ending in '/', at most %d bytes, "
                     "like \"/api/v1/socket\" (got '%s')", WEB_PATH_MAX, s);
    memcpy(c->cfg->web.ws_path, s, n + 1);
    return 0;
}

/* ---- the key table --------------------------------------------------- */

/* A compile-time check usable inside an initializer (it adds 0). */
#define CHECKED(cond, msg) (0 * sizeof(struct { _Static_assert(cond, msg); int unused_; }))
/* The field's offset, only when the field has exactly this type. */
#define FIELD(type, fld) \
    .has_field = 1, .off = _Generic(((tgf_config *)0)->fld, type: offsetof(tgf_config, fld))
#define FITS(d, lo, hi, top) \
    CHECKED((lo) <= (hi) && (hi) <= (top) && (d) >= (lo) && (d) <= (hi), "bounds or default")
/* Durations: 0 is "unset" (the default applies), so a default may be 0. */
#define FITS_DUR(d, lo, hi) \
    CHECKED((lo) <= (hi) && (hi) <= UINT32_MAX && ((d) == 0 || ((d) >= (lo) && (d) <= (hi))), \
            "bounds or default")

#define KEY(t, n) .table = (t), .name = (n)
/* Keys stored by the generic store, with a typed default. */
#define AT_BOOL(fld, d) .kind = K_BOOL, .store = S_BOOL, FIELD(int, fld), .has_def = 1, .def.b = (d)
#define AT_U16(fld, lo, hi, d) .kind = K_INT, .store = S_U16, FIELD(uint16_t, fld), .min = (lo), \
    .max = (hi) + (int64_t)FITS(d, lo, hi, UINT16_MAX), .has_def = 1, .def.i = (d)
#define AT_U32(fld, lo, hi, d) .kind = K_INT, .store = S_U32, FIELD(uint32_t, fld), .min = (lo), \
    .max = (hi) + (int64_t)FITS(d, lo, hi, UINT32_MAX), .has_def = 1, .def.i = (d)
#define AT_MS(fld, lo, hi, d) .kind = K_DURATION, .store = S_MS, FIELD(uint32_t, fld), \
    .min = (int64_t)(lo), .max = (int64_t)(hi) + (int64_t)FITS_DUR(d, lo, hi), .has_def = 1, \
    .def.u = (d)
#define AT_SECS(fld, lo, hi, d) .kind = K_DURATION, .store = S_SECS, FIELD(uint32_t, fld), \
    .min = (int64_t)(lo), .max = (int64_t)(hi) + (int64_t)FITS_DUR(d, lo, hi), .has_def = 1, \
    .def.u = (d)
#define AT_BYTES(fld, lo, hi, d) .kind = K_BYTES, .store = S_U64, FIELD(uint64_t, fld), \
    .min = (int64_t)(lo), .max = (int64_t)(hi) + (int64_t)FITS(d, lo, hi, UINT64_MAX), \
    .has_def = 1, .def.u = (d)
#define AT_DOUBLE(fld, d) .kind = K_FLOAT, .store = S_DOUBLE, FIELD(double, fld), .has_def = 1, \
    .def.f = (d)
/* Keys whose handler does the work; WRITES names the field it writes. */
#define BY(kind_, fn) .kind = (kind_), .check = (fn)
#define WRITES(type, fld) FIELD(type, fld)
#define DEFAULT_TEXT(text) .has_def = 1, .def.s = (text)
#define BOUNDS(lo, hi) .min = (int64_t)(lo), .max = (int64_t)(hi)
/* A deprecated spelling: accepted with a warning, merged as m says. */
#define ALIAS(spelling, m) .alias = (spelling), .merge = (m)

/* Linux caps TCP_KEEPIDLE/TCP_KEEPINTVL at 32767 s and TCP_KEEPCNT at 127;
 * larger values would fail every setsockopt, so they are refused here. */
#define KEEPALIVE_S_MAX (32767 * SEC)

/* [network.client-keep-alive]: Telegram clients after a proven hello.
 * Telegram's own clients keep the connection alive themselves: tdlib
 * (SessionConnection.h) pings at least every 60 s (30 s when it may) while
 * in the background and far more often in the foreground, and asks the
 * server to drop the connection after 135 s without a ping
 * (ping_delay_disconnect). A live client is therefore never silent for 5
 * minutes, so an idle of 5 minutes sends no probe to a client that is
 * there (mtg's hard-coded 30 s wakes a phone's radio between its own
 * pings; users complain), and still frees the sockets of a client that
 * vanished without FIN or RST: 5 min + 4 x 30 s. */
#define CLIENT_KEEPALIVE_IDLE (5 * MIN)
#define CLIENT_KEEPALIVE_INTERVAL (30 * SEC)
#define CLIENT_KEEPALIVE_COUNT 4

static const key_def keys[] = {
    { KEY("", "debug"), AT_BOOL(debug, 0) },
    { KEY("", "secret"), BY(K_STRING, set_secret) },
    { KEY("", "bind-to"), BY(K_STRING, set_bind) },
    { KEY("", "proxy-protocol-listener"), AT_BOOL(proxy_protocol_listener, 0) },
    { KEY("", "concurrency"), AT_U32(concurrency, 1, 65535, 4096) },
    /* tgfront's own (mtg has none: Go uses every CPU): event loops sharing
     * the listener; 0 = one per CPU the process may run on. */
    { KEY("", "workers"), AT_U32(workers, 0, CONFIG_WORKERS_MAX, 0) },
    { KEY("", "prefer-ip"), BY(K_STRING, set_prefer), DEFAULT_TEXT("prefer-ipv6") },
    { KEY("", "public-ipv4"), BY(K_STRING, set_public_ip) },
    { KEY("", "public-ipv6"), BY(K_STRING, set_public_ip) },
    { KEY("", "auto-update"), BY(K_BOOL, set_auto_update) },
    /* Below 1 s an honest client with an ordinary clock drifts out. */
    { KEY("", "tolerate-time-skewness"), AT_MS(tolerate_skew_ms, SEC, 24 * HOUR, 3 * SEC) },
    { KEY("", "allow-fallback-on-unknown-dc"), AT_BOOL(dcs.allow_fallback, 0) },

    { KEY("domain-fronting", "host"), BY(K_STRING, set_front_host), WRITES(char *, fronting_host) },
    { KEY("domain-fronting", "ip"), BY(K_STRING, set_front_ip), WRITES(char *, fronting_host),
      ALIAS("domain-fronting-ip", MERGE_NAME_WINS) },
    { KEY("domain-fronting", "port"), AT_U16(fronting_port, 1, 65535, 443),
      ALIAS("domain-fronting-port", MERGE_NAME_WINS) },
    { KEY("domain-fronting", "proxy-protocol"), AT_BOOL(fronting_proxy_protocol, 0),
      ALIAS("domain-fronting-proxy-protocol", MERGE_OR) },

    { KEY("network", "dns"), BY(K_STRING, set_resolver), ALIAS("network.doh-ip", MERGE_NAME_WINS) },

    /* Lower bounds: a dial needs round trips to the other side of the
     * world (tcp), a handshake at least one client round trip, and the
     * idle timeout is checked with a granularity of about a second. */
    { KEY("network.timeout", "tcp"), AT_MS(timeout_tcp_ms, SEC, HOUR, 0) },
    { KEY("network.timeout", "http"), BY(K_DURATION, warn_http), BOUNDS(0, UINT32_MAX) },
    { KEY("network.timeout", "idle"), AT_MS(timeout_idle_ms, SEC, 24 * HOUR, 5 * MIN) },
    { KEY("network.timeout", "handshake"), AT_MS(timeout_handshake_ms, 100, HOUR, 10 * SEC) },

    { KEY("network.keep-alive", "disabled"), AT_BOOL(keepalive_disabled, 0) },
    { KEY("network.keep-alive", "idle"), AT_SECS(keepalive_idle_s, SEC, KEEPALIVE_S_MAX, 15 * SEC) },
    { KEY("network.keep-alive", "interval"),
      AT_SECS(keepalive_interval_s, SEC, KEEPALIVE_S_MAX, 15 * SEC) },
    { KEY("network.keep-alive", "count"), AT_U32(keepalive_count, 1, 127, 9) },

    { KEY("network.client-keep-alive", "disabled"), AT_BOOL(client_keepalive_disabled, 0) },
    { KEY("network.client-keep-alive", "idle"),
      AT_SECS(client_keepalive_idle_s, SEC, KEEPALIVE_S_MAX, CLIENT_KEEPALIVE_IDLE) },
    { KEY("network.client-keep-alive", "interval"),
      AT_SECS(client_keepalive_interval_s, SEC, KEEPALIVE_S_MAX, CLIENT_KEEPALIVE_INTERVAL) },
    { KEY("network.client-keep-alive", "count"),
      AT_U32(client_keepalive_count, 1, 127, CLIENT_KEEPALIVE_COUNT) },

    /* The site's TLS answer (site_probe.h): a check is one connection. */
    { KEY("site-profile", "enabled"), AT_BOOL(site_profile_enabled, 1) },
    { KEY("site-profile", "refresh"), AT_SECS(site_refresh_s, SEC, 7 * 24 * HOUR, 3 * HOUR) },
    { KEY("site-profile", "check"), AT_SECS(site_check_s, SEC, 24 * HOUR, 10 * MIN) },

    /* Anti-replay is on unless disabled: safer than mtg's omitted = false. */
    { KEY("defense.anti-replay", "enabled"), AT_BOOL(antireplay_enabled, 1) },
    { KEY("defense.anti-replay", "max-size"), AT_BYTES(antireplay_max_size, KIB, GIB, KIB * KIB) },
    { KEY("defense.anti-replay", "error-rate"), AT_DOUBLE(antireplay_error_rate, 0.001),
      .check = set_error_rate },

    /* Operations (one block): tgfront's log-format and ca-file; mtg's access
     * lists and SOCKS5 upstreams. */
    { KEY("", "log-format"), BY(K_STRING, set_log_format), DEFAULT_TEXT("text") },
    { KEY("network", "proxies"), BY(K_STRLIST, set_proxies) },
    { KEY("network", "ca-file"), BY(K_STRING, set_ca_file) },
    { KEY("defense.blocklist", "enabled"), BY(K_BOOL, set_list_enabled) },
    { KEY("defense.blocklist", "download-concurrency"), BY(K_INT, set_list_concurrency),
      BOUNDS(1, 65535), .has_def = 1, .def.i = 1 },
    { KEY("defense.blocklist", "urls"), BY(K_STRLIST, set_list_urls) },
    { KEY("defense.blocklist", "update-each"), BY(K_DURATION, set_list_update),
      BOUNDS(SEC, 30 * 24 * HOUR), .has_def = 1, .def.u = 6 * HOUR },
    { KEY("defense.allowlist", "enabled"), BY(K_BOOL, set_list_enabled) },
    { KEY("defense.allowlist", "download-concurrency"), BY(K_INT, set_list_concurrency),
      BOUNDS(1, 65535), .has_def = 1, .def.i = 1 },
    { KEY("defense.allowlist", "urls"), BY(K_STRLIST, set_list_urls) },
    { KEY("defense.allowlist", "update-each"), BY(K_DURATION, set_list_update),
      BOUNDS(SEC, 30 * 24 * HOUR), .has_def = 1, .def.u = 6 * HOUR },

    { KEY("defense.doppelganger", "urls"), BY(K_STRLIST, warn_doppel) },
    { KEY("defense.doppelganger", "repeats-per-raid"), BY(K_INT, warn_doppel), BOUNDS(1, 65535) },
    { KEY("defense.doppelganger", "raid-each"), BY(K_DURATION, warn_doppel), BOUNDS(0, UINT32_MAX) },
    { KEY("defense.doppelganger", "drs"), BY(K_BOOL, warn_doppel) },

    { KEY("stats.statsd", "enabled"), BY(K_BOOL, set_statsd_enabled) },
    { KEY("stats.statsd", "address"), BY(K_STRING, warn_statsd) },
    { KEY("stats.statsd", "metric-prefix"), BY(K_STRING, warn_statsd) },
    { KEY("stats.statsd", "tag-format"), BY(K_STRING, warn_statsd) },

    { KEY("stats.prometheus", "enabled"), AT_BOOL(prometheus_enabled, 0) },
    { KEY("stats.prometheus", "bind-to"), BY(K_STRING, set_prom_bind) },
    { KEY("stats.prometheus", "http-path"), BY(K_STRING, set_prom_path), DEFAULT_TEXT("/") },
    { KEY("stats.prometheus", "metric-prefix"), BY(K_STRING, set_prom_prefix),
      DEFAULT_TEXT("mtg") },

    /* tgfront's own: the WEB proxy mode (web_config.h; README "WEB proxy"). */
    { KEY("web", "enabled"), AT_BOOL(web.enabled, 0) },
    { KEY("web", "bind-to"), BY(K_STRING, set_web_bind), DEFAULT_TEXT("127.0.0.1:8081") },
    { KEY("web", "host"), BY(K_STRING, set_web_host), WRITES(char *, web.host) },
    { KEY("web", "socket-path"), BY(K_STRING, set_web_path), DEFAULT_TEXT("/api/v1/socket") },
    { KEY("web", "max-sessions"), AT_U32(web.max_sessions, 1, 65535, 256) },
    { KEY("web", "max-streams"), AT_U32(web.max_streams, 1, 1024, 64) },
    { KEY("web", "trust-forwarded-for"), AT_BOOL(web.trust_forwarded_for, 1) },

    /* tgfront's own: mtprotoproxy's FAST_MODE (mtg has none), off. */
    { KEY("relay", "fast-mode"), AT_BOOL(fast_mode, 0) },

    /* tgfront's own: DC number -> ["ip:port", ...], replacing the built-in
     * addresses for that DC (tests and private deployments). */
    { KEY("datacenters", "*"), BY(K_STRLIST, set_datacenter) },
};

#define NKEYS (sizeof keys / sizeof keys[0])
_Static_assert(NKEYS <= CONFIG_MAX_KEYS, "raise CONFIG_MAX_KEYS");

static size_t key_index(const key_def *k)
{
    return (size_t)(k - keys);
}

/* ---- lookup and suggestions ----------------------------------------- */

/* The key written as table/name (dotted: "table.name", or name at the top
 * level), under its name or, with *via_alias = 1, its deprecated spelling. */
static const key_def *find_key(const char *table, const char *name, const char *dotted,
                               int *via_alias)
{
    *via_alias = 0;
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].table, table) == 0 &&
            (strcmp(keys[i].name, name) == 0 || strcmp(keys[i].name, "*") == 0))
            return &keys[i];
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].alias != NULL && strcmp(keys[i].alias, dotted) == 0) {
            *via_alias = 1;
            return &keys[i];
        }
    return NULL;
}

/* Line where the key was set under its name, 0 when it was not. */
static int key_line(const load_ctx *c, const char *table, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].table, table) == 0 && strcmp(keys[i].name, name) == 0)
            return c->line[i];
    return 0;
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
    if (k->check == set_secret || k->check == set_bind)
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

/* -1 after cfail when the TOML type does not fit the key's kind. */
static int check_type(load_ctx *c, const key_def *k, const toml_value *tv)
{
    toml_type want = k->kind == K_BOOL ? TOML_BOOL : k->kind == K_INT ? TOML_INTEGER
                   : k->kind == K_FLOAT ? TOML_FLOAT : k->kind == K_STRLIST ? TOML_ARRAY
                   : TOML_STRING;
    int ok = tv->type == want || (k->kind == K_FLOAT && tv->type == TOML_INTEGER);
    if (ok && want == TOML_ARRAY)
        for (size_t i = 0; i < tv->count; i++)
            ok = ok && tv->items[i].type == TOML_STRING;
    if (ok)
        return 0;
    const char *got = tv->type == TOML_ARRAY ? (want == TOML_ARRAY ? "an array with "
                      "non-string items" : "an array")
                    : tv->type == TOML_INTEGER ? "an integer"
                    : tv->type == TOML_STRING ? "a string"
                    : tv->type == TOML_FLOAT ? "a float" : "a boolean";
    return cfail(c, tv->line, "key '%s' must be %s, not %s", c->cur_key, kind_text(k->kind),
                 got);
}

/* The bounds of a converted K_INT, K_DURATION or K_BYTES value. */
static int check_range(load_ctx *c, const key_def *k, const key_val *v, const toml_value *tv)
{
    char lo[32], hi[32];
    const char *name = c->cur_key;
    switch (k->kind) {
    case K_INT:
        if (v->i < k->min || v->i > k->max)
            return cfail(c, tv->line, "key '%s' must be between %lld and %lld (got %lld)", name,
                         (long long)k->min, (long long)k->max, (long long)v->i);
        return 0;
    case K_DURATION:
        fmt_duration((uint64_t)k->min, lo, sizeof lo);
        fmt_duration((uint64_t)k->max, hi, sizeof hi);
        if (v->u > (uint64_t)k->max)
            return cfail(c, tv->line, "key '%s' must be at most %s (got '%s')", name, hi,
                         tv->str);
        if (v->u < (uint64_t)k->min)
            return cfail(c, tv->line, "key '%s' must be at least %s, or \"0s\" for the "
                         "default (got '%s')", name, lo, tv->str);
        return 0;
    case K_BYTES:
        fmt_bytes((uint64_t)k->min, lo, sizeof lo);
        fmt_bytes((uint64_t)k->max, hi, sizeof hi);
        if (v->u < (uint64_t)k->min || v->u > (uint64_t)k->max)
            return cfail(c, tv->line, "key '%s' must be between %s and %s (got '%s')", name, lo,
                         hi, tv->str);
        return 0;
    default:
        return 0;
    }
}

/* 0: *v holds the value; 1: a zero value, keep what is set; -1: error. */
static int convert(load_ctx *c, const key_def *k, const toml_value *tv, key_val *v)
{
    if (check_type(c, k, tv) < 0)
        return -1;
    if (zero_means_default(k, tv))
        return 1;
    memset(v, 0, sizeof *v);
    switch (k->kind) {
    case K_BOOL: v->b = tv->b; break;
    case K_INT: v->i = tv->i; break;
    case K_FLOAT: v->f = tv->type == TOML_FLOAT ? tv->f : (double)tv->i; break;
    case K_STRING: v->s = tv->str; break;
    case K_STRLIST: v->arr = tv; break;
    case K_DURATION:
        if (config_parse_duration(tv->str, &v->u) < 0)
            return cfail(c, tv->line, "key '%s' must be %s, not negative (got '%s')", c->cur_key,
                         kind_text(k->kind), tv->str);
        if (v->u == 0)
            return 1;   /* mtg: an explicit zero duration ("0s") is unset too */
        break;
    case K_BYTES:
        if (config_parse_bytes(tv->str, &v->u) < 0)
            return cfail(c, tv->line, "key '%s' must be %s; a bare number is not accepted "
                         "(got '%s')", c->cur_key, kind_text(k->kind), tv->str);
        break;
    }
    return check_range(c, k, v, tv);
}

static int same_field(const key_def *a, const key_def *b)
{
    return a->has_field && b->has_field && a->off == b->off;
}

/* Settles a key met under its name or its deprecated alias against what
 * the file already set. 0: apply *v (possibly merged); 1: skip it, the
 * current name already set this field; -1: two current names of one
 * setting (host and ip). */
static int merge_spellings(load_ctx *c, const key_def *k, key_val *v, int via_alias, int line)
{
    size_t idx = key_index(k);
    if (k->merge == MERGE_OR) {
        if (via_alias ? c->line[idx] : c->alias_line[idx])
            v->b = v->b || *(const int *)((const char *)c->cfg + k->off);
        return 0;
    }
    for (size_t i = 0; i < NKEYS; i++) {
        if (c->line[i] == 0 || !same_field(&keys[i], k) || (!via_alias && i == idx))
            continue;
        if (via_alias) {
            log_debug("config", "%s:%d: '%s' is overridden by %s", c->name, line, c->cur_key,
                      keys[i].name);
            return 1;
        }
        const key_def *first = i < idx ? &keys[i] : k, *second = i < idx ? k : &keys[i];
        return cfail(c, line, "[%s] sets both %s and %s; keep only one", k->table,
                     first->name, second->name);
    }
    return 0;
}

/* Applies a converted value met at line (0: a default) under the key's
 * name or its alias: merge, handler, store, and the line is recorded. */
static int apply_value(load_ctx *c, const key_def *k, key_val *v, int via_alias, int line)
{
    if (line != 0) {
        int rc = merge_spellings(c, k, v, via_alias, line);
        if (rc != 0)
            return rc < 0 ? -1 : 0;
    }
    if (k->check != NULL && k->check(c, k, v, line) < 0)
        return -1;
    store_value(c, k, v);
    if (line != 0)
        *(via_alias ? &c->alias_line[key_index(k)] : &c->line[key_index(k)]) = line;
    return 0;
}

static void warn_deprecated(load_ctx *c, const key_def *k, int line)
{
    if (k->table[0])
        cwarn(c, line, "'%s' is deprecated; use %s in [%s]", c->cur_key, k->name, k->table);
    else
        cwarn(c, line, "'%s' is deprecated; use %s at the top level", c->cur_key, k->name);
}

static int apply_entry(load_ctx *c, const toml_entry *e)
{
    char display[600], hint[200];
    if (e->table[0])
        snprintf(display, sizeof display, "%s.%s", e->table, e->key);
    else
        snprintf(display, sizeof display, "%s", e->key);
    c->cur_key = display;

    /* [secrets] and [secret-limits.NAME]: config_secrets.c */
    char own_msg[400];
    int own = config_secrets_entry(c->cfg, e, own_msg, sizeof own_msg);
    if (own != 0)
        return own < 0 ? cfail(c, e->line, "%s", own_msg) : 0;

    if (!table_known(e->table)) {
        suggest_table(e->table, hint, sizeof hint);
        return cfail(c, e->line, "unknown table [%s]%s", e->table, hint);
    }
    int via_alias;
    const key_def *k = find_key(e->table, e->key, display, &via_alias);
    if (k == NULL) {
        suggest_key(e->table, e->key, hint, sizeof hint);
        if (e->table[0])
            return cfail(c, e->line, "unknown key '%s' in [%s]%s", e->key, e->table, hint);
        return cfail(c, e->line, "unknown key '%s' at the top level%s", e->key, hint);
    }
    if (via_alias)
        warn_deprecated(c, k, e->line);
    key_val v;
    int rc = convert(c, k, &e->value, &v);
    if (rc < 0)
        return -1;
    if (rc > 0) {
        /* Defaults are already in place and a key occurs once, so leaving
         * the value alone is "unset" (a deprecated spelling can still apply). */
        log_debug("config", "%s:%d: '%s' is empty or zero: using the default", c->name,
                  e->line, display);
        return 0;
    }
    return apply_value(c, k, &v, via_alias, e->line);
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
    /* Typed values whose bounds the AT_* macros checked at compile time;
     * the few that go through a handler (prefer-ip, http-path,
     * metric-prefix) are covered by the unit tests. */
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].has_def) {
            key_val v = keys[i].def;
            c.cur_key = keys[i].name;
            (void)apply_value(&c, &keys[i], &v, 0, 0);
        }
}

/* Command-line text as the TOML value a file would hold for key k. */
static int text_value(load_ctx *c, const key_def *k, const char *text, toml_value *tv)
{
    char *end;
    memset(tv, 0, sizeof *tv);
    tv->line = 1;
    switch (k->kind) {
    case K_BOOL:
        tv->type = TOML_BOOL;
        tv->b = strcmp(text, "true") == 0;
        if (!tv->b && strcmp(text, "false") != 0)
            return cfail(c, 0, "key '%s' must be true or false (got '%s')", c->cur_key, text);
        return 0;
    case K_INT:
        tv->type = TOML_INTEGER;
        errno = 0;
        tv->i = strtoll(text, &end, 10);
        if (end == text || *end != '\0' || errno != 0)
            return cfail(c, 0, "key '%s' must be an integer (got '%s')", c->cur_key, text);
        return 0;
    case K_FLOAT:
        tv->type = TOML_FLOAT;
        tv->f = strtod(text, &end);
        if (end == text || *end != '\0')
            return cfail(c, 0, "key '%s' must be a number (got '%s')", c->cur_key, text);
        return 0;
    default:
        tv->type = TOML_STRING;
        tv->str = text;
        tv->str_len = strlen(text);
        return 0;
    }
}

int config_set(tgf_config *cfg, const char *key, const char *text, const char *origin,
               char *err, size_t err_cap)
{
    load_ctx c;
    memset(&c, 0, sizeof c);
    c.cfg = cfg;
    c.loading = 1;
    c.no_lines = 1;
    c.name = origin;
    c.err = err;
    c.err_cap = err_cap;
    c.cur_key = key;
    char table[64] = "";
    const char *name = key, *dot = strrchr(key, '.');
    if (dot != NULL) {
        snprintf(table, sizeof table, "%.*s", (int)(dot - key), key);
        name = dot + 1;
    }
    int via_alias;
    const key_def *k = find_key(table, name, key, &via_alias);
    if (k == NULL || k->kind == K_STRLIST || strcmp(k->name, "*") == 0)
        return cfail(&c, 0, "'%s' is not a key that takes one value", key);
    toml_value tv;
    key_val v;
    if (text_value(&c, k, text, &tv) < 0)
        return -1;
    int rc = convert(&c, k, &tv, &v);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    if (apply_value(&c, k, &v, via_alias, 1) < 0)
        return -1;
    if (k->check == set_secret)
        config_secrets_single(cfg);   /* simple-run: the one secret is "default" */
    return 0;
}

/* ---- whole-document checks ------------------------------------------ */

static int check_table_header(load_ctx *c, const toml_table *t)
{
    char hint[200];
    if (table_known(t->name) || config_secrets_table(t->name))
        return 0;
    suggest_table(t->name, hint, sizeof hint);
    return cfail(c, t->line, "unknown table [%s]%s", t->name, hint);
}

static int finish(load_ctx *c)
{
    tgf_config *cfg = c->cfg;
    char own_msg[400];
    int own_line;
    if (config_secrets_finish(cfg, key_line(c, "", "secret"), own_msg, sizeof own_msg,
                              &own_line) < 0)
        return cfail(c, own_line, "%s", own_msg);
    if (key_line(c, "", "bind-to") == 0)
        return cfail(c, 1, "missing required key 'bind-to' (at the top, before any [table]; "
                     "e.g. bind-to = \"0.0.0.0:443\")");
    for (int a = 0; a < 2; a++) {
        const config_iplist *l = a ? &cfg->allowlist : &cfg->blocklist;
        const char *t = a ? "defense.allowlist" : "defense.blocklist";
        if (l->enabled && l->url_count == 0)
            return cfail(c, key_line(c, t, "enabled"), "[%s] enabled = true needs urls: "
                         "https:// URLs or files in FireHOL netset format", t);
    }
    if (cfg->prometheus_enabled) {
        int bind_line = key_line(c, "stats.prometheus", "bind-to");
        if (bind_line == 0)
            return cfail(c, key_line(c, "stats.prometheus", "enabled"), "[stats.prometheus] "
                         "enabled = true needs bind-to, e.g. bind-to = \"127.0.0.1:3129\"");
        if (cfg->prometheus_bind_len == cfg->bind_len &&
            memcmp(&cfg->prometheus_bind, &cfg->bind_addr, cfg->bind_len) == 0)
            return cfail(c, bind_line, "key 'stats.prometheus.bind-to' is the same "
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
        config_secrets_wipe(cfg);
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
