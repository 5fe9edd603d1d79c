/* reload: load, keep what cannot change live, prepare the secrets' slots. */
#include "reload.h"

#include <stdio.h>
#include <string.h>

#include "config_ref.h"
#include "log.h"

/* A key whose change needs a restart: the running value is kept. */
#define KEEP(next, running, field, key)                                                  \
    do {                                                                                 \
        if (memcmp(&(next)->field, &(running)->field, sizeof (next)->field) != 0) {        \
            log_warn("main", "reload: '%s' changed; it takes effect at the next restart "  \
                     "(keeping the running value)", key);                                \
            memcpy(&(next)->field, &(running)->field, sizeof (next)->field);               \
        }                                                                                \
    } while (0)

static void keep_restart_keys(tgf_config *next, const tgf_config *running)
{
    KEEP(next, running, bind_addr, "bind-to");
    KEEP(next, running, bind_len, "bind-to");
    KEEP(next, running, fronting_host, "domain-fronting.host");
    KEEP(next, running, fronting_port, "domain-fronting.port");
    KEEP(next, running, antireplay_enabled, "defense.anti-replay.enabled");
    KEEP(next, running, antireplay_max_size, "defense.anti-replay.max-size");
    KEEP(next, running, antireplay_error_rate, "defense.anti-replay.error-rate");
    KEEP(next, running, prometheus_enabled, "stats.prometheus.enabled");
    KEEP(next, running, prometheus_bind, "stats.prometheus.bind-to");
    KEEP(next, running, prometheus_bind_len, "stats.prometheus.bind-to");
    KEEP(next, running, prometheus_path, "stats.prometheus.http-path");
    KEEP(next, running, prometheus_prefix, "stats.prometheus.metric-prefix");
    /* Each loop holds its lists and resolved upstreams from the start. */
    KEEP(next, running, blocklist, "defense.blocklist");
    KEEP(next, running, allowlist, "defense.allowlist");
    KEEP(next, running, proxies, "network.proxies");
    KEEP(next, running, proxy_count, "network.proxies");
    KEEP(next, running, ca_file, "network.ca-file");
    /* The loops, the log format and the site prober are set up once. */
    KEEP(next, running, workers, "workers");
    KEEP(next, running, log_json, "log-format");
    KEEP(next, running, site_profile_enabled, "site-profile.enabled");
    KEEP(next, running, site_refresh_s, "site-profile.refresh");
    KEEP(next, running, site_check_s, "site-profile.check");
    /* The WEB listener is opened once; its host derives the capabilities. */
    KEEP(next, running, web.enabled, "web.enabled");
    KEEP(next, running, web.bind_addr, "web.bind-to");
    KEEP(next, running, web.bind_len, "web.bind-to");
    KEEP(next, running, web.host, "web.host");
    /* Without [domain-fronting] host, the fronting target is the secrets'
     * hostname, resolved at start-up. */
    if (next->fronting_host[0] == '\0' && strcmp(next->secret.host, running->secret.host) != 0)
        log_warn("main", "reload: the secrets' hostname changed to '%s'; the fronting target "
                 "stays '%s' until the next restart (or set [domain-fronting] host)",
                 next->secret.host, running->secret.host);
}

const tgf_config *reload_load(const char *path, const tgf_config *running, secret_usage *usage,
                              char *err, size_t err_cap)
{
    tgf_config *next = config_ref_new();
    if (next == NULL) {
        snprintf(err, err_cap, "out of memory for the new configuration");
        return NULL;
    }
    if (config_load_file(path, next, err, err_cap) < 0) {
        config_ref_drop(next);
        return NULL;
    }
    if (secret_usage_prepare(usage, next) < 0) {
        snprintf(err, err_cap, "%s: too many different secret names over this process's life "
                 "(%d); restart to start counting afresh", path, SECRET_USAGE_MAX);
        config_ref_drop(next);
        return NULL;
    }
    keep_restart_keys(next, running);
    return next;
}
