/* web_metrics: names and rendering. */
#include "web_metrics.h"

#include <stdarg.h>
#include <stdio.h>

#include "promtext.h"

const char *web_end_name(web_end e)
{
    static const char *const names[WEB_END_COUNT] = {
        "http_done", "client_close", "peer_gone", "ws_protocol", "ws_text", "ws_too_big",
        "frame", "mux", "idle", "head_timeout", "no_memory", "shutdown",
    };
    return (unsigned)e < WEB_END_COUNT ? names[e] : "unknown";
}

static const char *const limit_names[WEB_LIM_COUNT] = {
    "ok", "expired", "max_connections", "quota", "concurrency",
};

const char *web_limit_name(web_limit l)
{
    return (unsigned)l < WEB_LIM_COUNT ? limit_names[l] : "unknown";
}

const char *web_limit_at_name(web_limit_at a)
{
    static const char *const names[WEB_AT_COUNT] = { "page", "carrier", "stream" };
    return (unsigned)a < WEB_AT_COUNT ? names[a] : "unknown";
}

static const char *const answer_names[WEB_ANS_COUNT] = {
    "bridge", "upgrade", "site", "not_found", "bad_request", "busy",
};

#define SUM(field) ({ uint64_t t_ = 0; for (size_t i_ = 0; i_ < n; i_++) t_ += ms[i_]->field; t_; })

void web_metrics_render(const web_metrics *const *ms, size_t n, const char *prefix, char *out,
                        size_t cap, size_t *len)
{
    prom_sink s = { out, cap, *len };
    struct { const char *name, *type, *help; uint64_t v; } simple[] = {
        { "web_sessions", "gauge", "WEB proxy HTTP connections and carriers open.", SUM(sessions) },
        { "web_carriers", "gauge", "WEB proxy carriers (WebSockets) open.", SUM(carriers) },
        { "web_streams", "gauge", "WEB proxy streams open.", SUM(streams) },
        { "web_streams_opened_total", "counter", "WEB proxy streams opened.", SUM(streams_opened) },
        { "web_streams_refused_total", "counter", "WEB proxy streams refused over max-streams.",
          SUM(streams_refused) },
        { "web_streams_dc_unreachable_total", "counter", "WEB proxy streams whose DC was unreachable.",
          SUM(streams_dc_unreachable) },
        { "web_streams_init_timeout_total", "counter",
          "WEB proxy streams closed without their obfuscated2 init within the handshake timeout.",
          SUM(streams_init_timeout) },
        { "web_streams_idle_total", "counter",
          "WEB proxy streams closed after the idle timeout without traffic.", SUM(streams_idle) },
        { "web_memory_bytes", "gauge", "Buffer bytes held by WEB proxy sessions.",
          SUM(memory_bytes) },
    };
    for (size_t k = 0; k < sizeof simple / sizeof simple[0]; k++)
        prom_emit(&s, "# HELP %s_%s %s\n# TYPE %s_%s %s\n%s_%s %llu\n", prefix,
             simple[k].name, simple[k].help, prefix, simple[k].name, simple[k].type, prefix,
             simple[k].name, (unsigned long long)simple[k].v);

    prom_emit(&s, "# HELP %s_web_answers_total WEB proxy listener answers by kind.\n"
         "# TYPE %s_web_answers_total counter\n", prefix, prefix);
    for (int a = 0; a < WEB_ANS_COUNT; a++)
        prom_emit(&s, "%s_web_answers_total{answer=\"%s\"} %llu\n", prefix, answer_names[a],
             (unsigned long long)SUM(answers[a]));
    prom_emit(&s, "# HELP %s_web_bad_http_total Refused HTTP request heads by reason.\n"
         "# TYPE %s_web_bad_http_total counter\n", prefix, prefix);
    for (int r = 1; r < WH_R_COUNT; r++)
        prom_emit(&s, "%s_web_bad_http_total{reason=\"%s\"} %llu\n", prefix,
             web_http_reason_name((web_http_reason)r), (unsigned long long)SUM(bad_http[r]));
    prom_emit(&s, "# HELP %s_web_frame_errors_total Refused v1 frames by reason.\n"
         "# TYPE %s_web_frame_errors_total counter\n", prefix, prefix);
    for (int r = 1; r < WF_R_COUNT; r++)
        prom_emit(&s, "%s_web_frame_errors_total{reason=\"%s\"} %llu\n", prefix,
             web_frame_reason_name((web_frame_reason)r), (unsigned long long)SUM(frame_errors[r]));
    prom_emit(&s, "# HELP %s_web_sessions_ended_total WEB proxy sessions ended by reason.\n"
         "# TYPE %s_web_sessions_ended_total counter\n", prefix, prefix);
    for (int e = 0; e < WEB_END_COUNT; e++)
        prom_emit(&s, "%s_web_sessions_ended_total{reason=\"%s\"} %llu\n", prefix,
             web_end_name((web_end)e), (unsigned long long)SUM(ended[e]));
    prom_emit(&s, "# HELP %s_web_limited_total WEB proxy clients refused by a secret's limit or "
         "the concurrency, by where (page and carrier: answered as the site; stream: CLOSE) "
         "and why.\n# TYPE %s_web_limited_total counter\n", prefix, prefix);
    for (int a = 0; a < WEB_AT_COUNT; a++)
        for (int l = 1; l < WEB_LIM_COUNT; l++)
            prom_emit(&s, "%s_web_limited_total{at=\"%s\",reason=\"%s\"} %llu\n", prefix,
                 web_limit_at_name((web_limit_at)a), web_limit_name((web_limit)l),
                 (unsigned long long)SUM(limited[a][l]));
    *len = s.len;
}
