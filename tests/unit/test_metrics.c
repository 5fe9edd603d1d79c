/* metrics: the handshake histogram's buckets (edges included), its
 * cumulative rendering summed across loops, counter names with _total. */
#include "unit.h"

#include <stdlib.h>

#include "metrics.h"

static long long value_of(const char *text, const char *series)
{
    const char *p = strstr(text, series);
    if (!p)
        return -1;
    return strtoll(p + strlen(series), NULL, 10);
}

TEST(metrics_handshake_histogram)
{
    static metrics a, b;
    metrics_init(&a);
    metrics_init(&b);
    metrics_observe_handshake(&a, 0);       /* le 0.005 */
    metrics_observe_handshake(&a, 5);       /* le 0.005: a bound is inclusive */
    metrics_observe_handshake(&a, 6);       /* le 0.01 */
    metrics_observe_handshake(&b, 1000);    /* le 1 */
    metrics_observe_handshake(&b, 30001);   /* +Inf only */
    const metrics *ms[2] = { &a, &b };
    static char out[65536];
    size_t n = metrics_render(ms, 2, "mtg", out, sizeof out);
    CHECK(n > 0 && n < sizeof out - 1);
    CHECK(strstr(out, "# TYPE mtg_handshake_duration_seconds histogram\n") != NULL);
    CHECK_EQ_INT(value_of(out, "mtg_handshake_duration_seconds_bucket{le=\"0.005\"} "), 2);
    CHECK_EQ_INT(value_of(out, "mtg_handshake_duration_seconds_bucket{le=\"0.01\"} "), 3);
    CHECK_EQ_INT(value_of(out, "mtg_handshake_duration_seconds_bucket{le=\"0.5\"} "), 3);
    CHECK_EQ_INT(value_of(out, "mtg_handshake_duration_seconds_bucket{le=\"1\"} "), 4);
    CHECK_EQ_INT(value_of(out, "mtg_handshake_duration_seconds_bucket{le=\"30\"} "), 4);
    CHECK_EQ_INT(value_of(out, "mtg_handshake_duration_seconds_bucket{le=\"+Inf\"} "), 5);
    CHECK_EQ_INT(value_of(out, "mtg_handshake_duration_seconds_count "), 5);
    CHECK(strstr(out, "mtg_handshake_duration_seconds_sum 31.012\n") != NULL);
    CHECK(strstr(out, "# TYPE mtg_domain_fronting_total counter\n") != NULL);
    CHECK(strstr(out, "mtg_ip_blocklisted_total{ip_list=\"allowlist\"} 0\n") != NULL);
    CHECK(strstr(out, "# TYPE mtg_iplist_size gauge\n") != NULL);
    /* Every counter's samples carry _total. */
    for (const char *p = out; (p = strstr(p, " counter\n")) != NULL; p++) {
        const char *line = p;
        while (line > out && line[-1] != '\n')
            line--;
        CHECK_MSG(p - line > 6 && memcmp(p - 6, "_total", 6) == 0, "counter without _total: %.*s",
                  (int)(p - line), line);
    }
}
