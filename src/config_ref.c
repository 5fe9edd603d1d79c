/* config_ref: the count lives in front of the config, in one allocation. */
#include "config_ref.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"

typedef struct {
    _Atomic unsigned long refs;
    tgf_config cfg;
} config_box;

static config_box *box_of(const tgf_config *cfg)
{
    return (config_box *)(void *)((char *)(uintptr_t)cfg - offsetof(config_box, cfg));
}

tgf_config *config_ref_new(void)
{
    config_box *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    atomic_init(&b->refs, 1);
    return &b->cfg;
}

tgf_config *config_ref_copy(const tgf_config *cfg)
{
    tgf_config *c = config_ref_new();
    if (c != NULL)
        *c = *cfg;
    return c;
}

const tgf_config *config_ref_hold(const tgf_config *cfg)
{
    atomic_fetch_add_explicit(&box_of(cfg)->refs, 1, memory_order_relaxed);
    return cfg;
}

void config_ref_drop(const tgf_config *cfg)
{
    if (cfg == NULL)
        return;
    config_box *b = box_of(cfg);
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    crypto_wipe(b, sizeof *b);   /* the keys */
    free(b);
}
