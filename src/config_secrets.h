/* config_secrets: tgfront's named secrets and their limits, the tables
 * config.c hands over:
 *
 *   [secrets]                 name = "ee..." (all for one hostname)
 *   [secret-limits.NAME]      max-connections, expires, quota, quota-period
 *
 * Only config.c calls these; the result lands in tgf_config's secrets,
 * secret_keys and secret_count (config.h). Messages carry no file:line:
 * config.c adds it. */
#ifndef TGF_CONFIG_SECRETS_H
#define TGF_CONFIG_SECRETS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "toml.h"

/* 1 when table is [secrets], [secret-limits] or [secret-limits.NAME]. */
int config_secrets_table(const char *table);

/* One key = value of such a table: 1 handled, 0 not ours, -1 on error with
 * msg set (a bad secret, name, limit or value). */
int config_secrets_entry(tgf_config *cfg, const toml_entry *e, char *msg, size_t cap);

/* After the whole file: puts mtg's `secret` (when top_line != 0) first as
 * "default", requires at least one secret, and checks that every
 * [secret-limits.NAME] names a secret and no two secrets share a key.
 * Returns 0, or -1 with msg and *line (the line to blame; 1 when none). */
int config_secrets_finish(tgf_config *cfg, int top_line, char *msg, size_t cap, int *line);

/* Makes cfg->secret the only secret, named "default" (simple-run's SECRET,
 * set without a file). */
void config_secrets_single(tgf_config *cfg);

/* Wipes every key and prepared HMAC state (a failed load). */
void config_secrets_wipe(tgf_config *cfg);

/* RFC 3339 date-time ("2027-01-31T23:59:59Z", "...+02:00", fractions
 * ignored) to Unix seconds. 0, or -1 when it is not one. */
int config_parse_rfc3339(const char *text, int64_t *unix_s);

#endif
