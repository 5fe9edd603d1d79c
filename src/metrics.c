#include "metrics.h"

#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

const char *metrics_close_reason_name(close_reason r) { return close_reason_get(r)->name; }

void metrics_init(metrics *m) { memset(m, 0, sizeof *m); }

metrics_family metrics_family_of(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        if (!IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
            return METRICS_IPV6;
    }
    return METRICS_IPV4;
}

metrics_dc_slot *metrics_dc_slot_get(metrics *m, int dc, const char *ip)
{
    for (size_t i = 0; i < m->dc_count; i++)
        if (m->dc[i].dc == dc && strcmp(m->dc[i].ip, ip) == 0)
            return &m->dc[i];
    if (m->dc_count == METRICS_MAX_DC_ADDRS)
        return NULL;
    metrics_dc_slot *s = &m->dc[m->dc_count++];
    memset(s, 0, sizeof *s);
    s->dc = dc;
    snprintf(s->ip, sizeof s->ip, "%s", ip);
    return s;
}

typedef struct {
    char *out;
    size_t cap, len;
} sink;

static void emit(sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(sink *s, const char *fmt, ...)
{
    if (s->len + 1 >= s->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->out + s->len, s->cap - s->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    s->len += (size_t)n;
    if (s->len >= s->cap)
        s->len = s->cap - 1;
}

static void header(sink *s, const char *prefix, const char *name, const char *type,
                   const char *help)
{
    emit(s, "# HELP %s_%s %s\n# TYPE %s_%s %s\n", prefix, name, help, prefix, name, type);
}

static const char *const family_names[2] = { "ipv4", "ipv6" };
static const char *const direction_names[2] = { "to_client", "from_client" };

#define SUM(field) ({ uint64_t t_ = 0; for (size_t i_ = 0; i_ < n; i_++) t_ += ms[i_]->field; t_; })

/* DC slots are summed across loops by (dc, ip); a loop's slots are few. */
static void render_dc(sink *s, const metrics *const *ms, size_t n, const char *prefix,
                      int traffic)
{
    for (size_t a = 0; a < n; a++) {
        for (size_t i = 0; i < ms[a]->dc_count; i++) {
            const metrics_dc_slot *slot = &ms[a]->dc[i];
            int seen = 0;   /* rendered already from an earlier loop */
            for (size_t b = 0; b < a && !seen; b++)
                for (size_t j = 0; j < ms[b]->dc_count; j++)
                    if (ms[b]->dc[j].dc == slot->dc && !strcmp(ms[b]->dc[j].ip, slot->ip))
                        seen = 1;
            if (seen)
                continue;
            uint64_t conns = 0, tr[2] = { 0, 0 };
            for (size_t b = a; b < n; b++)
                for (size_t j = 0; j < ms[b]->dc_count; j++)
                    if (ms[b]->dc[j].dc == slot->dc && !strcmp(ms[b]->dc[j].ip, slot->ip)) {
                        conns += ms[b]->dc[j].connections;
                        tr[0] += ms[b]->dc[j].traffic[0];
                        tr[1] += ms[b]->dc[j].traffic[1];
                    }
            if (!traffic) {
                emit(s, "%s_telegram_connections{dc=\"%d\",telegram_ip=\"%s\"} %llu\n", prefix,
                     slot->dc, slot->ip, (unsigned long long)conns);
            } else {
                for (int d = 0; d < 2; d++)
                    emit(s, "%s_telegram_traffic{dc=\"%d\",direction=\"%s\",telegram_ip=\"%s\"} %llu\n",
                         prefix, slot->dc, direction_names[d], slot->ip,
                         (unsigned long long)tr[d]);
            }
        }
    }
}

size_t metrics_render(const metrics *const *ms, size_t n, const char *prefix, char *out,
                      size_t cap)
{
    sink s = { out, cap, 0 };
    if (cap == 0)
        return 0;
    out[0] = '\0';

    header(&s, prefix, "client_connections", "gauge", "Client connections being processed.");
    for (int f = 0; f < 2; f++)
        emit(&s, "%s_client_connections{ip_family=\"%s\"} %llu\n", prefix, family_names[f],
             (unsigned long long)SUM(client_connections[f]));

    header(&s, prefix, "telegram_connections", "gauge", "Open connections to Telegram.");
    render_dc(&s, ms, n, prefix, 0);

    header(&s, prefix, "domain_fronting_connections", "gauge", "Connections being fronted.");
    for (int f = 0; f < 2; f++)
        emit(&s, "%s_domain_fronting_connections{ip_family=\"%s\"} %llu\n", prefix,
             family_names[f], (unsigned long long)SUM(fronting_connections[f]));

    header(&s, prefix, "telegram_traffic", "counter", "Bytes relayed to or from Telegram.");
    render_dc(&s, ms, n, prefix, 1);

    header(&s, prefix, "domain_fronting_traffic", "counter",
           "Bytes relayed to or from the fronting target.");
    for (int d = 0; d < 2; d++)
        emit(&s, "%s_domain_fronting_traffic{direction=\"%s\"} %llu\n", prefix,
             direction_names[d], (unsigned long long)SUM(fronting_traffic[d]));

    header(&s, prefix, "domain_fronting", "counter", "Connections sent to the fronting target.");
    emit(&s, "%s_domain_fronting %llu\n", prefix, (unsigned long long)SUM(domain_fronting));

    header(&s, prefix, "concurrency_limited", "counter",
           "Connections over the concurrency limit (fronted, not closed).");
    emit(&s, "%s_concurrency_limited %llu\n", prefix,
         (unsigned long long)SUM(concurrency_limited));

    header(&s, prefix, "replay_attacks", "counter", "Replayed ClientHellos (fronted).");
    emit(&s, "%s_replay_attacks %llu\n", prefix, (unsigned long long)SUM(replay_attacks));

    header(&s, prefix, "fronting_unreachable", "counter",
           "Dials to the fronting target that failed on every address (tgfront).");
    emit(&s, "%s_fronting_unreachable %llu\n", prefix,
         (unsigned long long)SUM(front_unreachable));

    header(&s, prefix, "memory_waits", "counter",
           "Reads postponed because the buffer memory cap was reached (tgfront).");
    emit(&s, "%s_memory_waits %llu\n", prefix, (unsigned long long)SUM(memory_waits));

    header(&s, prefix, "handshake_rejected", "counter",
           "ClientHellos that failed the FakeTLS check, by reason (tgfront).");
    for (int r = 1; r < FAKETLS_R_COUNT; r++)
        emit(&s, "%s_handshake_rejected{reason=\"%s\"} %llu\n", prefix,
             faketls_reason_name((faketls_reason)r),
             (unsigned long long)SUM(handshake_rejected[r]));

    header(&s, prefix, "connections_closed", "counter",
           "Finished connections by close reason (tgfront).");
    for (int r = 1; r < CLOSE_REASON_COUNT; r++)
        emit(&s, "%s_connections_closed{reason=\"%s\"} %llu\n", prefix,
             metrics_close_reason_name((close_reason)r), (unsigned long long)SUM(closed[r]));
    if (n > 0 && s.len + 1 < s.cap)
        s.len += site_store_render(ms[0]->site, prefix, (int64_t)time(NULL), out + s.len,
                                   s.cap - s.len);
    return s.len;
}
