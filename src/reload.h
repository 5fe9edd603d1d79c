/* reload: reading the configuration again on SIGHUP, once for all event
 * loops. The result is handed to each loop with server_apply_config
 * (server.h); what a loop cannot change while it runs stays as it was. */
#ifndef TGF_RELOAD_H
#define TGF_RELOAD_H

#include <stddef.h>

#include "config.h"
#include "secret_usage.h"

/* Loads path strictly, as at start-up. Keys that need new sockets or a
 * new filter (bind-to, [domain-fronting] host/ip/port, [defense.anti-replay],
 * [stats.prometheus]) keep running's values, with a warning for each that
 * changed. The new secrets get their usage slots. Returns a config_ref
 * config (one reference, the caller's: drop it after applying it to every
 * loop), or NULL with one line in err: the file's error, and running stays. */
const tgf_config *reload_load(const char *path, const tgf_config *running, secret_usage *usage,
                              char *err, size_t err_cap);

#endif
