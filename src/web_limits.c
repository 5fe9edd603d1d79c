/* web_limits: secret limits and concurrency for WEB streams (see the
 * header). */
#include "web_limits.h"

#include <string.h>

#include "crypto.h"

const config_secret *web_limits_find_key(const tgf_config *cfg, const uint8_t *key)
{
    const config_secret *found = NULL;
    for (size_t i = 0; i < cfg->secret_count; i++)
        if (crypto_equal(cfg->secret_keys[i], key, SECRET_KEY_LEN) && cfg->secrets[i].has_key &&
            !found)
            found = &cfg->secrets[i];
    return found;
}

static web_limit of_usage(usage_refusal r)
{
    switch (r) {
    case USAGE_EXPIRED:
        return WEB_LIM_EXPIRED;
    case USAGE_MAX_CONNECTIONS:
        return WEB_LIM_MAX_CONNECTIONS;
    case USAGE_QUOTA:
        return WEB_LIM_QUOTA;
    default:
        return WEB_LIM_OK;
    }
}

static usage_slot *slot_of(web_limits *l, const config_secret *s)
{
    /* NULL when the table is full: served, not counted, as conn.c does
     * (a reload that would not fit is refused). */
    return l && l->usage ? secret_usage_slot(l->usage, s->name) : NULL;
}

web_limit web_limits_check(web_limits *l, const config_secret *s, int64_t now_unix)
{
    usage_slot *slot = slot_of(l, s);
    if (!slot)
        return s->expires != 0 && now_unix >= s->expires ? WEB_LIM_EXPIRED : WEB_LIM_OK;
    usage_refusal why = secret_usage_check(slot, s, now_unix);
    if (why != USAGE_REFUSED_COUNT)
        secret_usage_refuse(slot, why);
    return of_usage(why);
}

web_limit web_limits_take(web_limits *l, const config_secret *s, size_t concurrency,
                          int64_t now_unix, web_limit_hold *hold)
{
    memset(hold, 0, sizeof *hold);
    /* The concurrency first, as a FakeTLS connection meets it at accept,
     * before its secret is known: a stream over it is not the secret's
     * refusal. The count is the one server.c keeps for every loop. */
    if (l && l->inspected) {
        size_t was = atomic_fetch_add(l->inspected, 1);
        if (was >= concurrency) {
            atomic_fetch_sub(l->inspected, 1);
            return WEB_LIM_CONCURRENCY;
        }
        hold->counted = 1;
    }
    usage_slot *slot = slot_of(l, s);
    web_limit why = WEB_LIM_OK;
    if (slot) {
        why = of_usage(secret_usage_admit(slot, s, now_unix));
        if (why == WEB_LIM_OK)
            hold->sec = slot;
    } else if (s->expires != 0 && now_unix >= s->expires) {
        why = WEB_LIM_EXPIRED;
    }
    if (why != WEB_LIM_OK)
        web_limits_give(l, hold);
    return why;
}

void web_limits_give(web_limits *l, web_limit_hold *hold)
{
    if (hold->sec) {
        secret_usage_release(hold->sec);
        hold->sec = NULL;
    }
    if (hold->counted) {
        hold->counted = 0;
        if (l && l->inspected)
            atomic_fetch_sub(l->inspected, 1);
    }
}

void web_limits_traffic(const web_limit_hold *hold, int direction, uint64_t bytes)
{
    if (hold->sec)
        secret_usage_add(hold->sec, direction, bytes);
}

int web_limits_log_ok(web_limits *l, uint64_t now_ms, uint64_t *suppressed)
{
    if (now_ms < l->log_next_ms) {
        l->log_suppressed++;
        return 0;
    }
    l->log_next_ms = now_ms + WEB_LIMITS_LOG_MS;
    *suppressed = l->log_suppressed;
    l->log_suppressed = 0;
    return 1;
}
