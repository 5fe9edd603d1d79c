/* config: mtg v2's TOML configuration, read strictly: every key is declared
 * once in config.c's table (name, type, field, bounds, typed default,
 * deprecated spelling); unknown keys,
 * duplicates, wrong types and out-of-range values are errors with file:line. */
#ifndef TGF_CONFIG_H
#define TGF_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "crypto.h"
#include "dc.h"
#include "secret.h"
#include "socks5.h"
#include "web_config.h"

#define CONFIG_HOST_MAX 255
#define CONFIG_WORKERS_MAX 256        /* workers: event loops (threads) */

/* Named secrets (tgfront's own [secrets] and [secret-limits.NAME];
 * config_secrets.c). mtg's single secret is the one named "default". */
#define CONFIG_SECRETS_MAX 256        /* each costs one HMAC per hello */
#define CONFIG_SECRET_NAME_MAX 32     /* [A-Za-z0-9_-], a metric label */

typedef struct {
    char name[CONFIG_SECRET_NAME_MAX + 1];
    int has_key;                      /* 0 while only limits named it */
    int limits_line;                  /* its [secret-limits.NAME], for messages */
    uint32_t max_connections;         /* concurrent Telegram relays; 0 = no limit */
    int64_t expires;                  /* Unix seconds; 0 = never */
    uint64_t quota_bytes;             /* both directions per period; 0 = none */
    uint64_t quota_period_s;          /* default 30 days; windows aligned on Unix time */
} config_secret;

/* ---- operations: access lists, upstreams, log format ---- */
#define CONFIG_LIST_URLS 16        /* sources per list */
#define CONFIG_PATH_MAX 512        /* a list source (https URL or file) or a CA file */
#define CONFIG_MAX_PROXIES 8       /* [network] proxies */

/* [defense.blocklist] / [defense.allowlist] (mtg's keys). */
typedef struct {
    int enabled;
    uint32_t download_concurrency;   /* accepted for mtg; sources load one by one */
    uint32_t update_each_ms;         /* default 6h */
    size_t url_count;
    char urls[CONFIG_LIST_URLS][CONFIG_PATH_MAX];   /* https:// URLs or absolute paths */
} config_iplist;

typedef struct {
    int debug;
    tg_secret secret;
    struct sockaddr_storage bind_addr;   /* bind-to */
    socklen_t bind_len;
    int proxy_protocol_listener;
    unsigned concurrency;                /* 1..65535, default 4096 */
    uint32_t workers;                    /* event loops; 0 (default) = one per CPU */
    int have_public_ipv4, have_public_ipv6;
    struct sockaddr_storage public_ipv4; /* port 0 */
    struct sockaddr_storage public_ipv6;
    uint32_t tolerate_skew_ms;           /* default 3000 */

    /* [domain-fronting]; host wins over ip, which wins over the legacy key.
     * fronting_host is "" when unset: the secret's hostname is used. */
    char fronting_host[CONFIG_HOST_MAX + 1];
    uint16_t fronting_port;              /* default 443 */
    int fronting_proxy_protocol;

    /* [network.timeout], milliseconds; 0 = none (tcp only). */
    uint32_t timeout_tcp_ms;             /* default 0: kernel SYN retries */
    uint32_t timeout_idle_ms;            /* default 300000 */
    uint32_t timeout_handshake_ms;       /* default 10000 */

    /* [network.keep-alive], outbound sockets */
    int keepalive_disabled;
    uint32_t keepalive_idle_s, keepalive_interval_s, keepalive_count; /* 15,15,9 */

    /* [network.client-keep-alive] (tgfront's own): Telegram client sockets
     * after a proven hello; 300, 30, 4 (config.c says why). */
    int client_keepalive_disabled;
    uint32_t client_keepalive_idle_s, client_keepalive_interval_s, client_keepalive_count;

    /* [site-profile] (tgfront's own): learning the site's TLS answer
     * (site_probe.h); on by default, full refresh every 3 h, a
     * one-connection check every 10 min. */
    int site_profile_enabled;
    uint32_t site_refresh_s, site_check_s;

    /* [defense.anti-replay]: on unless enabled = false (safer than mtg). */
    int antireplay_enabled;
    uint64_t antireplay_max_size;        /* bytes, default 1 MiB */
    double antireplay_error_rate;        /* default 0.001 */

    /* [stats.prometheus] */
    int prometheus_enabled;
    struct sockaddr_storage prometheus_bind;
    socklen_t prometheus_bind_len;
    char prometheus_path[128];           /* default "/" */
    char prometheus_prefix[64];          /* default "mtg" */

    /* Operations (one block): log-format (tgfront's key), the access lists,
     * SOCKS5 upstreams for Telegram dials, the CA file for https sources. */
    int log_json;                        /* log-format = "json" */
    config_iplist blocklist, allowlist;
    socks5_upstream proxies[CONFIG_MAX_PROXIES];
    size_t proxy_count;
    char ca_file[CONFIG_PATH_MAX];       /* [network] ca-file; "" = the system bundle */

    /* dc table: prefer-ip, allow-fallback-on-unknown-dc, [datacenters] */
    dc_table dcs;

    /* [relay] (tgfront's own) fast-mode: mtprotoproxy's FAST_MODE. The
     * frame toward the DC makes the DC's stream equal to ours toward the
     * client, so DC -> client bytes are relayed without AES (README: the
     * trade-off). Off by default. */
    int fast_mode;

    /* Every secret a hello may prove, mtg's `secret` first (as "default"),
     * then [secrets] in file order; secret_keys[i] is secrets[i]'s key and
     * all share secret.host. secret (above) is secrets[0] with the host. */
    size_t secret_count;
    config_secret secrets[CONFIG_SECRETS_MAX];
    uint8_t secret_keys[CONFIG_SECRETS_MAX][SECRET_KEY_LEN];
    crypto_hmac_key secret_hmac[CONFIG_SECRETS_MAX];   /* prepared from secret_keys */
    /* [web] (tgfront's own): the WEB proxy mode (web_config.h) */
    tgf_web_config web;
} tgf_config;

/* The index of the secret named name, or -1. */
int config_secret_find(const tgf_config *cfg, const char *name);

/* Sets every default (as documented in README). The secret and bind-to are
 * left unset; config_load_* require them. */
void config_defaults(tgf_config *cfg);

/* Parses and validates. On error returns -1 and writes one line to err,
 * naming "file:line: key: what is wrong". Warnings (deprecated keys, keys
 * accepted but not acted on) go to the log. */
int config_load_file(const char *path, tgf_config *cfg, char *err, size_t err_cap);
int config_load_string(const char *text, size_t len, const char *name,
                       tgf_config *cfg, char *err, size_t err_cap);

/* Sets one key from command-line text through the same table, bounds and
 * handlers as a file value (simple-run's flags), on a cfg that
 * config_defaults or a load prepared. key is the dotted name
 * ("network.timeout.idle", "concurrency"); text is the value as a file
 * would spell it, without quotes ("true", "8192", "10s"). As in a file, an
 * empty or zero value leaves what cfg holds. On error returns -1 and
 * writes "origin: key 'x' must be ..." to err. */
int config_set(tgf_config *cfg, const char *key, const char *text, const char *origin,
               char *err, size_t err_cap);

/* Parses mtg duration ("5s", "1m30s", "250ms") into milliseconds. 0 or -1. */
int config_parse_duration(const char *text, uint64_t *ms);
/* Parses mtg byte sizes ("1mib", "1mb", "512kb": all powers of 1024). */
int config_parse_bytes(const char *text, uint64_t *bytes);

#endif
