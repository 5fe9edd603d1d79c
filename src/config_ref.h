/* config_ref: reference-counted configurations, so a reload can swap the
 * configuration new connections get while established connections keep
 * the one they started with until they end (SIGHUP, server.h).
 *
 * A config made here is freed (and its keys wiped) when its last holder
 * drops it; holds and drops may come from any thread. Only configs made by
 * config_ref_new may be held or dropped. */
#ifndef TGF_CONFIG_REF_H
#define TGF_CONFIG_REF_H

#include "config.h"

/* A zeroed config with one reference (the caller's), or NULL. */
tgf_config *config_ref_new(void);
/* A copy of cfg with one reference, or NULL. */
tgf_config *config_ref_copy(const tgf_config *cfg);
/* Another reference; returns cfg. */
const tgf_config *config_ref_hold(const tgf_config *cfg);
/* Gives one back; the last one frees the config. NULL is allowed. */
void config_ref_drop(const tgf_config *cfg);

#endif
