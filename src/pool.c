#include "pool.h"

#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

static const size_t block_bytes[POOL_SIZES] = { POOL_SMALL_SIZE, POOL_BLOCK_SIZE,
                                                POOL_BATCH_SIZE };

/* Free blocks kept per size: batch blocks are four times larger. */
static size_t keep_of(const pool *p, pool_size size)
{
    return size == POOL_BATCH ? p->keep_max / 4 : p->keep_max;
}

void pool_init(pool *p, size_t keep_max, size_t bytes_cap)
{
    *p = (pool){ .keep_max = keep_max, .bytes_cap = bytes_cap };
}

static pool_block *block_of(const uint8_t *data)
{
    return (pool_block *)(uintptr_t)(data - offsetof(pool_block, data));
}

uint8_t *pool_get(pool *p, pool_size size)
{
    size_t bytes = block_bytes[size];
    if (p->bytes_cap && p->bytes_in_use + bytes > p->bytes_cap) {
        p->cap_hits++;
        return NULL;
    }
    pool_block *b = p->free_list[size];
    if (b) {
        p->free_list[size] = b->next;
        p->free_count[size]--;
    } else {
        b = malloc(sizeof *b + bytes);
        if (!b)
            return NULL;
        b->size = size;
    }
    b->next = NULL;
    p->bytes_in_use += bytes;
    ++p->in_use[size];
    if (size != POOL_SMALL && p->in_use[POOL_LARGE] + p->in_use[POOL_BATCH] > p->in_use_peak)
        p->in_use_peak = p->in_use[POOL_LARGE] + p->in_use[POOL_BATCH];
    return b->data;
}

size_t pool_block_size(const uint8_t *data) { return block_bytes[block_of(data)->size]; }

void pool_put(pool *p, uint8_t *data)
{
    if (!data)
        return;
    pool_block *b = block_of(data);
    pool_size size = (pool_size)b->size;
    p->in_use[size]--;
    p->bytes_in_use -= block_bytes[size];
    if (p->free_count[size] < keep_of(p, size)) {
        b->next = p->free_list[size];
        p->free_list[size] = b;
        p->free_count[size]++;
    } else {
        free(b);
    }
}

void pool_destroy(pool *p)
{
    for (int s = 0; s < POOL_SIZES; s++) {
        while (p->free_list[s]) {
            pool_block *b = p->free_list[s];
            p->free_list[s] = b->next;
            free(b);
        }
        p->free_count[s] = 0;
    }
}

size_t pool_default_cap(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    size_t floor = (size_t)64 << 20;
    if (pages <= 0 || page <= 0)
        return floor;
    size_t quarter = (size_t)pages / 4 * (size_t)page;
    return quarter > floor ? quarter : floor;
}
