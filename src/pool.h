/* pool: fixed-size I/O buffers handed to connections only while data is in
 * flight, so an idle connection holds none. Freed blocks are kept for reuse
 * up to a limit and returned to the allocator beyond it. */
#ifndef TGF_POOL_H
#define TGF_POOL_H

#include <stddef.h>
#include <stdint.h>

/* One outgoing TLS record as Caddy (Go) sends it: 5-byte header + 16384
 * bytes of plaintext + 17 bytes of AEAD tag and content type, rounded up. */
#define POOL_BLOCK_SIZE 16448

typedef struct pool_block {
    struct pool_block *next;
    uint8_t data[POOL_BLOCK_SIZE];
} pool_block;

typedef struct {
    pool_block *free_list;
    size_t free_count;
    size_t keep_max;        /* free blocks kept for reuse */
    size_t in_use;          /* blocks handed out now */
    size_t in_use_peak;
} pool;

void pool_init(pool *p, size_t keep_max);
/* Returns a block's data area, or NULL when memory is exhausted. */
uint8_t *pool_get(pool *p);
/* Takes back a pointer returned by pool_get (NULL is ignored). */
void pool_put(pool *p, uint8_t *data);
void pool_destroy(pool *p);

#endif
