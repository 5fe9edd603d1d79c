#include "pool.h"

#include <stddef.h>
#include <stdlib.h>

void pool_init(pool *p, size_t keep_max)
{
    p->free_list = NULL;
    p->free_count = 0;
    p->keep_max = keep_max;
    p->in_use = 0;
    p->in_use_peak = 0;
}

uint8_t *pool_get(pool *p)
{
    pool_block *b = p->free_list;
    if (b) {
        p->free_list = b->next;
        p->free_count--;
    } else {
        b = malloc(sizeof *b);
        if (!b)
            return NULL;
    }
    b->next = NULL;
    if (++p->in_use > p->in_use_peak)
        p->in_use_peak = p->in_use;
    return b->data;
}

void pool_put(pool *p, uint8_t *data)
{
    if (!data)
        return;
    pool_block *b = (pool_block *)(data - offsetof(pool_block, data));
    p->in_use--;
    if (p->free_count < p->keep_max) {
        b->next = p->free_list;
        p->free_list = b;
        p->free_count++;
    } else {
        free(b);
    }
}

void pool_destroy(pool *p)
{
    while (p->free_list) {
        pool_block *b = p->free_list;
        p->free_list = b->next;
        free(b);
    }
    p->free_count = 0;
}
