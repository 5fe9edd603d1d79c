/* secret_usage: per-secret counters and limits (see the header). */
#include "secret_usage.h"
#include "promtext.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One clock-skew warning per this many milliseconds: a phone with a wrong
 * clock retries every few seconds, and each try would log a line. */
#define SKEW_WARN_INTERVAL_MS 10000

struct secret_usage {
    pthread_mutex_t grow;             /* taken only to add a slot */
    _Atomic size_t count;             /* slots[0..count) are complete */
    _Atomic uint64_t skew_next_ms;    /* next time a warning may be logged */
    _Atomic uint64_t skew_suppressed;
    _Atomic int64_t skew_last_s;      /* client minus server, last skewed hello */
    _Atomic uint64_t skew_seen;
    usage_slot slots[SECRET_USAGE_MAX];
};

static const char *const refusal_names[USAGE_REFUSED_COUNT] = {
    [USAGE_EXPIRED] = "expired",
    [USAGE_MAX_CONNECTIONS] = "max_connections",
    [USAGE_QUOTA] = "quota",
    [USAGE_TIME_SKEW] = "time_skew",
};

const char *secret_usage_refusal_name(usage_refusal r)
{
    return r < USAGE_REFUSED_COUNT ? refusal_names[r] : "unknown";
}

secret_usage *secret_usage_create(void)
{
    secret_usage *u = calloc(1, sizeof *u);
    if (u != NULL && pthread_mutex_init(&u->grow, NULL) != 0) {
        free(u);
        return NULL;
    }
    return u;
}

void secret_usage_destroy(secret_usage *u)
{
    if (u == NULL)
        return;
    pthread_mutex_destroy(&u->grow);
    free(u);
}

static usage_slot *find(secret_usage *u, const char *name, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(u->slots[i].name, name) == 0)
            return &u->slots[i];
    return NULL;
}

usage_slot *secret_usage_slot(secret_usage *u, const char *name)
{
    usage_slot *s = find(u, name, atomic_load_explicit(&u->count, memory_order_acquire));
    if (s != NULL)
        return s;
    pthread_mutex_lock(&u->grow);
    size_t n = atomic_load_explicit(&u->count, memory_order_relaxed);
    s = find(u, name, n);
    if (s == NULL && n < SECRET_USAGE_MAX) {
        s = &u->slots[n];
        snprintf(s->name, sizeof s->name, "%s", name);
        /* Readers see the name complete before they see the slot. */
        atomic_store_explicit(&u->count, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&u->grow);
    return s;
}

int secret_usage_prepare(secret_usage *u, const tgf_config *cfg)
{
    for (size_t i = 0; i < cfg->secret_count; i++)
        if (secret_usage_slot(u, cfg->secrets[i].name) == NULL)
            return -1;
    return 0;
}

/* Bytes used in the quota window holding now; a new window starts at 0.
 * Windows are aligned on Unix time (a 24h period is a UTC day). */
static uint64_t window_used(usage_slot *slot, const config_secret *s, int64_t now)
{
    int64_t period = (int64_t)s->quota_period_s;
    int64_t start = now - (now % period + period) % period;
    int64_t seen = atomic_load(&slot->window_start);
    if (seen != start && atomic_compare_exchange_strong(&slot->window_start, &seen, start))
        atomic_store(&slot->window_bytes, 0);
    return atomic_load(&slot->window_bytes);
}

usage_refusal secret_usage_admit(usage_slot *slot, const config_secret *s, int64_t now_unix)
{
    usage_refusal why = USAGE_REFUSED_COUNT;
    if (s->expires != 0 && now_unix >= s->expires)
        why = USAGE_EXPIRED;
    else if (s->quota_bytes != 0 && window_used(slot, s, now_unix) >= s->quota_bytes)
        why = USAGE_QUOTA;
    if (why == USAGE_REFUSED_COUNT) {
        /* Take a connection only while under the limit, even when loops
         * race for the last one. */
        uint64_t cur = atomic_load(&slot->connections);
        do {
            if (s->max_connections != 0 && cur >= s->max_connections) {
                why = USAGE_MAX_CONNECTIONS;
                break;
            }
        } while (!atomic_compare_exchange_weak(&slot->connections, &cur, cur + 1));
    }
    if (why != USAGE_REFUSED_COUNT)
        atomic_fetch_add(&slot->refused[why], 1);
    else
        atomic_fetch_add(&slot->accepted, 1);
    return why;
}

usage_refusal secret_usage_check(usage_slot *slot, const config_secret *s, int64_t now_unix)
{
    if (s->expires != 0 && now_unix >= s->expires)
        return USAGE_EXPIRED;
    if (s->quota_bytes != 0 && window_used(slot, s, now_unix) >= s->quota_bytes)
        return USAGE_QUOTA;
    if (s->max_connections != 0 && atomic_load(&slot->connections) >= s->max_connections)
        return USAGE_MAX_CONNECTIONS;
    return USAGE_REFUSED_COUNT;
}

void secret_usage_release(usage_slot *slot)
{
    atomic_fetch_sub(&slot->connections, 1);
}

void secret_usage_refuse(usage_slot *slot, usage_refusal why)
{
    if (why < USAGE_REFUSED_COUNT)
        atomic_fetch_add(&slot->refused[why], 1);
}

void secret_usage_add(usage_slot *slot, int direction, uint64_t bytes)
{
    if (bytes == 0)
        return;
    atomic_fetch_add(&slot->traffic[direction & 1], bytes);
    atomic_fetch_add(&slot->window_bytes, bytes);
}

int secret_usage_skew_warn(secret_usage *u, int64_t skew_s, uint64_t now_ms, uint64_t *suppressed)
{
    atomic_store(&u->skew_last_s, skew_s);
    atomic_fetch_add(&u->skew_seen, 1);
    uint64_t next = atomic_load(&u->skew_next_ms);
    if (now_ms < next ||
        !atomic_compare_exchange_strong(&u->skew_next_ms, &next, now_ms + SKEW_WARN_INTERVAL_MS)) {
        atomic_fetch_add(&u->skew_suppressed, 1);
        return 0;
    }
    *suppressed = atomic_exchange(&u->skew_suppressed, 0);
    return 1;
}

/* ---- rendering ---- */



size_t secret_usage_render(const secret_usage *u, const char *prefix, char *out, size_t len,
                           size_t cap)
{
    static const char *const dir[2] = { "to_client", "from_client" };
    prom_sink s = { out, cap, len };
    if (cap == 0 || len >= cap)
        return len;
    size_t n = atomic_load_explicit(&((secret_usage *)u)->count, memory_order_acquire);
    const usage_slot *sl = u->slots;

    prom_header(&s, prefix, "secret_connections", "gauge",
           "Open Telegram connections by secret name (tgfront).");
    for (size_t i = 0; i < n; i++)
        prom_emit(&s, "%s_secret_connections{secret=\"%s\"} %llu\n", prefix, sl[i].name,
             (unsigned long long)atomic_load(&sl[i].connections));
    prom_header(&s, prefix, "secret_accepted_total", "counter",
           "Clients served by secret name (tgfront).");
    for (size_t i = 0; i < n; i++)
        prom_emit(&s, "%s_secret_accepted_total{secret=\"%s\"} %llu\n", prefix, sl[i].name,
             (unsigned long long)atomic_load(&sl[i].accepted));
    prom_header(&s, prefix, "secret_traffic_total", "counter",
           "Bytes relayed to or from Telegram clients by secret name (tgfront).");
    for (size_t i = 0; i < n; i++)
        for (int d = 0; d < 2; d++)
            prom_emit(&s, "%s_secret_traffic_total{direction=\"%s\",secret=\"%s\"} %llu\n", prefix, dir[d],
                 sl[i].name, (unsigned long long)atomic_load(&sl[i].traffic[d]));
    prom_header(&s, prefix, "secret_quota_used", "gauge",
           "Bytes used in the current quota window by secret name (tgfront).");
    for (size_t i = 0; i < n; i++)
        prom_emit(&s, "%s_secret_quota_used{secret=\"%s\"} %llu\n", prefix, sl[i].name,
             (unsigned long long)atomic_load(&sl[i].window_bytes));
    prom_header(&s, prefix, "secret_refused_total", "counter",
           "Clients that proved a secret but were fronted, by secret and reason (tgfront).");
    for (size_t i = 0; i < n; i++)
        for (int r = 0; r < USAGE_REFUSED_COUNT; r++)
            prom_emit(&s, "%s_secret_refused_total{reason=\"%s\",secret=\"%s\"} %llu\n", prefix,
                 refusal_names[r], sl[i].name, (unsigned long long)atomic_load(&sl[i].refused[r]));
    prom_header(&s, prefix, "client_clock_skew_seconds", "gauge",
           "Client minus server clock of the last hello refused for its timestamp (tgfront).");
    prom_emit(&s, "%s_client_clock_skew_seconds %lld\n", prefix,
         (long long)atomic_load(&((secret_usage *)u)->skew_last_s));
    return s.len;
}
