/* config_secrets: [secrets] and [secret-limits.NAME] (see the header).
 *
 * Secrets are collected in file order; a limits table met before its
 * secret reserves the entry by name, and the finish step checks that a
 * key arrived for it. The table names are dynamic, so these keys live here
 * rather than in config.c's static key table. */
#include "config_secrets.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "crypto.h"

#define LIMITS "secret-limits"
#define DAY_S 86400ull
#define DEFAULT_PERIOD_S (30 * DAY_S)
#define PERIOD_MIN_S 60ull
#define PERIOD_MAX_S (366 * DAY_S)

int config_secret_find(const tgf_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->secret_count; i++)
        if (strcmp(cfg->secrets[i].name, name) == 0)
            return (int)i;
    return -1;
}

int config_secrets_table(const char *table)
{
    return strcmp(table, "secrets") == 0 || strcmp(table, LIMITS) == 0 ||
           (strncmp(table, LIMITS ".", sizeof LIMITS) == 0 && table[sizeof LIMITS] != '\0');
}

/* A name is a Prometheus label value and a log word: letters, digits, '_'
 * and '-', so it never needs quoting anywhere. */
static int name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > CONFIG_SECRET_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '_' && name[i] != '-')
            return 0;
    return 1;
}

/* The entry for name, reserved when new. NULL when the table is full. */
static config_secret *entry_for(tgf_config *cfg, const char *name)
{
    int i = config_secret_find(cfg, name);
    if (i >= 0)
        return &cfg->secrets[i];
    if (cfg->secret_count == CONFIG_SECRETS_MAX)
        return NULL;
    config_secret *s = &cfg->secrets[cfg->secret_count++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->quota_period_s = DEFAULT_PERIOD_S;
    return s;
}

__attribute__((format(printf, 3, 4)))
static int fail(char *msg, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    return -1;
}

static int add_secret(tgf_config *cfg, const toml_entry *e, char *msg, size_t cap)
{
    if (e->value.type != TOML_STRING)
        return fail(msg, cap, "key 'secrets.%s' must be a string (an ee-secret)", e->key);
    if (!name_ok(e->key))
        return fail(msg, cap, "secret name '%s' must be 1 to 32 letters, digits, '_' or '-'",
                    e->key);
    tg_secret s;
    secret_status st = secret_parse(e->value.str, e->value.str_len, &s);
    if (st != SECRET_OK) {
        secret_wipe(&s);
        return fail(msg, cap, "key 'secrets.%s' is invalid: %s (generate one with "
                    "'tgfront generate-secret HOSTNAME')", e->key, secret_status_str(st));
    }
    /* One listener answers for one hostname: the SNI check and the
     * fronting target are the same for every secret. */
    if (cfg->secret.host_len == 0) {
        cfg->secret = s;
    } else if (strcmp(cfg->secret.host, s.host) != 0) {
        snprintf(msg, cap, "secret '%s' is for '%s', but the others are for '%s': all secrets "
                 "must use the same hostname", e->key, s.host, cfg->secret.host);
        secret_wipe(&s);
        return -1;
    }
    config_secret *slot = entry_for(cfg, e->key);
    if (slot == NULL) {
        secret_wipe(&s);
        snprintf(msg, cap, "too many secrets (at most %d)", CONFIG_SECRETS_MAX);
        return -1;
    }
    memcpy(cfg->secret_keys[slot - cfg->secrets], s.key, SECRET_KEY_LEN);
    slot->has_key = 1;
    secret_wipe(&s);
    return 0;
}

static int set_limit(config_secret *s, const toml_entry *e, char *msg, size_t cap)
{
    const toml_value *v = &e->value;
    const char *k = e->key;
    uint64_t u;
    if (strcmp(k, "max-connections") == 0) {
        if (v->type != TOML_INTEGER || v->i < 1 || v->i > 65535)
            return fail(msg, cap, "key '%s' must be an integer between 1 and 65535 "
                        "(concurrent Telegram connections)", k);
        s->max_connections = (uint32_t)v->i;
    } else if (strcmp(k, "expires") == 0) {
        if (v->type != TOML_STRING || config_parse_rfc3339(v->str, &s->expires) < 0)
            return fail(msg, cap, "key '%s' must be an RFC 3339 date-time string like "
                        "\"2027-01-31T23:59:59Z\" or \"2027-01-31T23:59:59+02:00\"", k);
        if (s->expires == 0)
            s->expires = -1;   /* 0 means never; the epoch itself has passed */
    } else if (strcmp(k, "quota") == 0) {
        if (v->type != TOML_STRING || config_parse_bytes(v->str, &u) < 0 || u == 0)
            return fail(msg, cap, "key '%s' must be a size string like \"10gib\" or \"500mib\" "
                        "(bytes both ways per quota-period)", k);
        s->quota_bytes = u;
    } else if (strcmp(k, "quota-period") == 0) {
        if (v->type != TOML_STRING || config_parse_duration(v->str, &u) < 0 ||
            u / 1000 < PERIOD_MIN_S || u / 1000 > PERIOD_MAX_S || u % 1000 != 0)
            return fail(msg, cap, "key '%s' must be a duration of whole seconds from 1m to "
                        "8784h, like \"24h\" or \"720h\"", k);
        s->quota_period_s = u / 1000;
    } else {
        return fail(msg, cap, "unknown key '%s' in [" LIMITS ".NAME] (known: max-connections, "
                    "expires, quota, quota-period)", k);
    }
    return 0;
}

int config_secrets_entry(tgf_config *cfg, const toml_entry *e, char *msg, size_t cap)
{
    if (!config_secrets_table(e->table))
        return 0;
    if (strcmp(e->table, "secrets") == 0)
        return add_secret(cfg, e, msg, cap) < 0 ? -1 : 1;
    if (strcmp(e->table, LIMITS) == 0)
        return fail(msg, cap, "key '%s': limits belong to one secret: [" LIMITS ".NAME]",
                    e->key);
    const char *name = e->table + sizeof LIMITS;
    if (!name_ok(name))
        return fail(msg, cap, "[" LIMITS ".%s]: a secret name is 1 to 32 letters, digits, '_' "
                    "or '-'", name);
    config_secret *s = entry_for(cfg, name);
    if (s == NULL) {
        snprintf(msg, cap, "too many secrets (at most %d)", CONFIG_SECRETS_MAX);
        return -1;
    }
    if (s->limits_line == 0)
        s->limits_line = e->line;
    return set_limit(s, e, msg, cap) < 0 ? -1 : 1;
}

/* Each hello is checked against every secret: their HMAC states are
 * computed once here, not per hello. */
static void prepare(tgf_config *cfg)
{
    for (size_t i = 0; i < cfg->secret_count; i++)
        crypto_hmac_key_init(&cfg->secret_hmac[i], cfg->secret_keys[i], SECRET_KEY_LEN);
}

/* Moves entry i to the front, keeping the others' order. */
static void move_first(tgf_config *cfg, size_t i)
{
    config_secret s = cfg->secrets[i];
    uint8_t key[SECRET_KEY_LEN];
    memcpy(key, cfg->secret_keys[i], SECRET_KEY_LEN);
    memmove(&cfg->secrets[1], &cfg->secrets[0], i * sizeof cfg->secrets[0]);
    memmove(cfg->secret_keys[1], cfg->secret_keys[0], i * SECRET_KEY_LEN);
    cfg->secrets[0] = s;
    memcpy(cfg->secret_keys[0], key, SECRET_KEY_LEN);
    crypto_wipe(key, sizeof key);
}

static int add_default(tgf_config *cfg, int top_line, char *msg, size_t cap, int *line)
{
    int i = config_secret_find(cfg, "default");
    if (i >= 0 && cfg->secrets[i].has_key) {
        *line = top_line;
        return fail(msg, cap, "key 'secret' is the secret named 'default', and [secrets] names "
                    "another 'default': rename one");
    }
    config_secret *s = entry_for(cfg, "default");
    if (s == NULL) {
        *line = top_line;
        snprintf(msg, cap, "too many secrets (at most %d, counting 'secret')", CONFIG_SECRETS_MAX);
        return -1;
    }
    size_t idx = (size_t)(s - cfg->secrets);
    memcpy(cfg->secret_keys[idx], cfg->secret.key, SECRET_KEY_LEN);
    s->has_key = 1;
    move_first(cfg, idx);
    return 0;
}

int config_secrets_finish(tgf_config *cfg, int top_line, char *msg, size_t cap, int *line)
{
    *line = 1;
    if (top_line != 0 && add_default(cfg, top_line, msg, cap, line) < 0)
        return -1;
    if (cfg->secret_count == 0)
        return fail(msg, cap, "missing required key 'secret' (at the top, before any [table]) "
                    "or a [secrets] table; generate one with 'tgfront generate-secret "
                    "HOSTNAME'");
    for (size_t i = 0; i < cfg->secret_count; i++) {
        const config_secret *s = &cfg->secrets[i];
        if (!s->has_key) {
            *line = s->limits_line;
            return fail(msg, cap, "[" LIMITS ".%s] names no secret: add %s = \"ee...\" to "
                        "[secrets]", s->name, s->name);
        }
        for (size_t j = 0; j < i; j++)
            if (crypto_equal(cfg->secret_keys[i], cfg->secret_keys[j], SECRET_KEY_LEN))
                return fail(msg, cap, "secrets '%s' and '%s' have the same key: their clients "
                            "could not be told apart", cfg->secrets[j].name, s->name);
    }
    /* mtg's single-secret code (doctor, the fronting host) reads secret. */
    memcpy(cfg->secret.key, cfg->secret_keys[0], SECRET_KEY_LEN);
    prepare(cfg);
    return 0;
}

void config_secrets_single(tgf_config *cfg)
{
    config_secrets_wipe(cfg);
    memset(cfg->secrets, 0, sizeof cfg->secrets);
    cfg->secret_count = 0;
    config_secret *s = entry_for(cfg, "default");
    memcpy(cfg->secret_keys[0], cfg->secret.key, SECRET_KEY_LEN);
    s->has_key = 1;
    prepare(cfg);
}

void config_secrets_wipe(tgf_config *cfg)
{
    crypto_wipe(cfg->secret_keys, sizeof cfg->secret_keys);
    crypto_wipe(cfg->secret_hmac, sizeof cfg->secret_hmac);
}

/* ---- RFC 3339 -------------------------------------------------------- */

static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int expect(const char **p, const char *one_of)
{
    if (**p == '\0' || strchr(one_of, **p) == NULL)
        return -1;
    (*p)++;
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int month_days(int y, int m)
{
    static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

int config_parse_rfc3339(const char *text, int64_t *unix_s)
{
    const char *p = text;
    int y, mo, d, h, mi, s, oh = 0, om = 0, sign = 0;
    if (digits(&p, 4, &y) || expect(&p, "-") || digits(&p, 2, &mo) || expect(&p, "-") ||
        digits(&p, 2, &d) || expect(&p, "Tt ") || digits(&p, 2, &h) || expect(&p, ":") ||
        digits(&p, 2, &mi) || expect(&p, ":") || digits(&p, 2, &s))
        return -1;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p++ == '-' ? -1 : 1;
        if (digits(&p, 2, &oh) || expect(&p, ":") || digits(&p, 2, &om) || oh > 23 || om > 59)
            return -1;
    } else {
        return -1;   /* a time without an offset is ambiguous */
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo) || h > 23 || mi > 59 ||
        s > 60)
        return -1;
    int64_t t = days_from_civil(y, mo, d) * (int64_t)DAY_S + h * 3600 + mi * 60 + s;
    *unix_s = t - sign * (oh * 3600 + om * 60);
    return 0;
}
