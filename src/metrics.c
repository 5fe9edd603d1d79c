#include "metrics.h"

#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "promtext.h"

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



static const char *const family_names[2] = { "ipv4", "ipv6" };
static const char *const direction_names[2] = { "to_client", "from_client" };

#define SUM(field) ({ uint64_t t_ = 0; for (size_t i_ = 0; i_ < n; i_++) t_ += ms[i_]->field; t_; })

/* DC slots are summed across loops by (dc, ip); a loop's slots are few. */
static void render_dc(prom_sink *s, const metrics *const *ms, size_t n, const char *prefix,
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
                prom_emit(s, "%s_telegram_connections{dc=\"%d\",telegram_ip=\"%s\"} %llu\n", prefix,
                     slot->dc, slot->ip, (unsigned long long)conns);
            } else {
                for (int d = 0; d < 2; d++)
                    prom_emit(s, "%s_telegram_traffic_total{dc=\"%d\",direction=\"%s\",telegram_ip=\"%s\"} %llu\n",
                         prefix, slot->dc, direction_names[d], slot->ip,
                         (unsigned long long)tr[d]);
            }
        }
    }
}

const uint32_t metrics_hs_bounds_ms[METRICS_HS_BUCKETS] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000
};

void metrics_observe_handshake(metrics *m, uint64_t ms)
{
    size_t i = 0;
    while (i < METRICS_HS_BUCKETS && ms > metrics_hs_bounds_ms[i])
        i++;
    if (i < METRICS_HS_BUCKETS)
        m->hs_bucket[i]++;
    else
        m->hs_inf++;
    m->hs_count++;
    m->hs_sum_ms += ms;
}

static const char *const iplist_names[2] = { "blocklist", "allowlist" };

static void render_handshakes(prom_sink *s, const metrics *const *ms, size_t n, const char *prefix)
{
    prom_header(s, prefix, "handshake_duration_seconds", "histogram",
           "Telegram client handshakes: accept until the relay to the DC starts (tgfront).");
    uint64_t cum = 0;
    for (int b = 0; b < METRICS_HS_BUCKETS; b++) {
        cum += SUM(hs_bucket[b]);
        /* %g spells bounds as Go's client does: "0.005", "0.1", "1", "2.5". */
        prom_emit(s, "%s_handshake_duration_seconds_bucket{le=\"%g\"} %llu\n", prefix,
             metrics_hs_bounds_ms[b] / 1000.0, (unsigned long long)cum);
    }
    cum += SUM(hs_inf);
    prom_emit(s, "%s_handshake_duration_seconds_bucket{le=\"+Inf\"} %llu\n", prefix,
         (unsigned long long)cum);
    uint64_t sum_ms = SUM(hs_sum_ms);
    prom_emit(s, "%s_handshake_duration_seconds_sum %llu.%03llu\n", prefix,
         (unsigned long long)(sum_ms / 1000), (unsigned long long)(sum_ms % 1000));
    prom_emit(s, "%s_handshake_duration_seconds_count %llu\n", prefix,
         (unsigned long long)SUM(hs_count));
}

/* Counters are named with the _total suffix (prom_counter): mtg registers
 * them without it and serves OpenMetrics to Prometheus, which appends
 * _total, so these are the names a Prometheus that scraped mtg stores and
 * its dashboards use, and promtool's lint passes. */
size_t metrics_render(const metrics *const *ms, size_t n, const char *prefix, char *out,
                      size_t cap)
{
    prom_sink s = { out, cap, 0 };
    if (cap == 0)
        return 0;
    out[0] = '\0';

    prom_header(&s, prefix, "client_connections", "gauge", "Client connections being processed.");
    for (int f = 0; f < 2; f++)
        prom_emit(&s, "%s_client_connections{ip_family=\"%s\"} %llu\n", prefix, family_names[f],
             (unsigned long long)SUM(client_connections[f]));

    prom_header(&s, prefix, "telegram_connections", "gauge", "Open connections to Telegram.");
    render_dc(&s, ms, n, prefix, 0);

    prom_header(&s, prefix, "domain_fronting_connections", "gauge", "Connections being fronted.");
    for (int f = 0; f < 2; f++)
        prom_emit(&s, "%s_domain_fronting_connections{ip_family=\"%s\"} %llu\n", prefix,
             family_names[f], (unsigned long long)SUM(fronting_connections[f]));

    prom_counter(&s, prefix, "telegram_traffic", "Bytes relayed to or from Telegram.");
    render_dc(&s, ms, n, prefix, 1);

    prom_counter(&s, prefix, "domain_fronting_traffic", "Bytes relayed to or from the fronting target.");
    for (int d = 0; d < 2; d++)
        prom_emit(&s, "%s_domain_fronting_traffic_total{direction=\"%s\"} %llu\n", prefix,
             direction_names[d], (unsigned long long)SUM(fronting_traffic[d]));

    prom_counter(&s, prefix, "domain_fronting", "Connections sent to the fronting target.");
    prom_emit(&s, "%s_domain_fronting_total %llu\n", prefix, (unsigned long long)SUM(domain_fronting));

    prom_counter(&s, prefix, "concurrency_limited",
            "Connections over the concurrency limit (fronted, not closed).");
    prom_emit(&s, "%s_concurrency_limited_total %llu\n", prefix,
         (unsigned long long)SUM(concurrency_limited));

    prom_counter(&s, prefix, "ip_blocklisted",
            "Connections refused by the blocklist or the allowlist (fronted, not closed).");
    for (int l = 0; l < 2; l++)
        prom_emit(&s, "%s_ip_blocklisted_total{ip_list=\"%s\"} %llu\n", prefix, iplist_names[l],
             (unsigned long long)SUM(ip_blocklisted[l]));

    prom_header(&s, prefix, "iplist_size", "gauge", "Entries in the blocklist or the allowlist.");
    for (int l = 0; l < 2; l++)
        prom_emit(&s, "%s_iplist_size{ip_list=\"%s\"} %llu\n", prefix, iplist_names[l],
             (unsigned long long)(n ? ms[0]->iplist_size[l] : 0));

    prom_counter(&s, prefix, "replay_attacks", "Replayed ClientHellos (fronted).");
    prom_emit(&s, "%s_replay_attacks_total %llu\n", prefix, (unsigned long long)SUM(replay_attacks));

    prom_counter(&s, prefix, "fronting_unreachable",
            "Dials to the fronting target that failed on every address (tgfront).");
    prom_emit(&s, "%s_fronting_unreachable_total %llu\n", prefix,
         (unsigned long long)SUM(front_unreachable));

    prom_counter(&s, prefix, "memory_waits",
            "Reads postponed because the buffer memory cap was reached (tgfront).");
    prom_emit(&s, "%s_memory_waits_total %llu\n", prefix, (unsigned long long)SUM(memory_waits));

    prom_counter(&s, prefix, "handshake_rejected",
            "ClientHellos that failed the FakeTLS check, by reason (tgfront).");
    /* bad_type is a reason for records after the hello only (a client's
     * session then ends as bad_record): no hello is ever rejected for it. */
    for (int r = 1; r < FAKETLS_R_COUNT; r++)
        if (r != FAKETLS_R_BAD_TYPE)
            prom_emit(&s, "%s_handshake_rejected_total{reason=\"%s\"} %llu\n", prefix,
                 faketls_reason_name((faketls_reason)r),
                 (unsigned long long)SUM(handshake_rejected[r]));

    prom_counter(&s, prefix, "connections_closed", "Finished connections by close reason (tgfront).");
    for (int r = 1; r < CLOSE_REASON_COUNT; r++)
        prom_emit(&s, "%s_connections_closed_total{reason=\"%s\"} %llu\n", prefix,
             metrics_close_reason_name((close_reason)r), (unsigned long long)SUM(closed[r]));

    render_handshakes(&s, ms, n, prefix);
    if (n > 0 && s.len + 1 < s.cap)
        s.len += site_store_render(ms[0]->site, prefix, (int64_t)time(NULL), out + s.len,
                                   s.cap - s.len);
    const web_metrics *wms[64];
    size_t wn = n < 64 ? n : 64;
    for (size_t i = 0; i < wn; i++)
        wms[i] = &ms[i]->web;
    web_metrics_render(wms, wn, prefix, s.out, s.cap, &s.len);
    return s.len;
}
