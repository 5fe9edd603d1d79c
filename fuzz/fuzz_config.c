/* Fuzzes config_load_string: it must never crash; an error always reads
 * "name:line: ..."; an accepted config always holds in-range values. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tgf_config cfg;
    char err[512];
    log_set_level(LOG_ERROR);   /* warnings are expected and noisy */
    if (config_load_string((const char *)data, size, "f", &cfg, err, sizeof err) < 0) {
        if (strncmp(err, "f:", 2) != 0 || strstr(err, ": ") == NULL)
            abort();
        return 0;
    }
    if (cfg.concurrency < 1 || cfg.concurrency > 65535 || cfg.fronting_port == 0 ||
        !(cfg.antireplay_error_rate > 0 && cfg.antireplay_error_rate < 1) ||
        cfg.antireplay_max_size < 1024 || cfg.antireplay_max_size > (1u << 30) ||
        cfg.secret.host_len == 0 || cfg.bind_len == 0 ||
        cfg.dcs.override_count > DC_MAX_OVERRIDES ||
        strlen(cfg.fronting_host) > CONFIG_HOST_MAX ||
        cfg.prometheus_path[0] != '/' || cfg.prometheus_prefix[0] == '\0' ||
        cfg.keepalive_count < 1 || cfg.keepalive_idle_s < 1 || cfg.timeout_idle_ms == 0)
        abort();
    for (size_t i = 0; i < cfg.dcs.override_count; i++)
        if (cfg.dcs.overrides[i].count < 1 || cfg.dcs.overrides[i].count > DC_MAX_ADDRS)
            abort();
    return 0;
}
