/* pool: I/O buffers handed to connections only while data is in flight, so
 * an idle connection holds none. Three sizes: a small block for the start of
 * a handshake (a ClientHello fits in it; a flood of half-open connections
 * costs little), a full block for one record, and a batch block that a
 * relay direction takes only after a read filled a full block (bulk
 * transfer: four records per system call). Freed blocks are kept for
 * reuse up to a limit. The bytes in use are capped: at the cap pool_get
 * returns NULL and the caller stops reading until a block comes back
 * (backpressure), instead of letting the kernel's OOM killer decide. */
#ifndef TGF_POOL_H
#define TGF_POOL_H

#include <stddef.h>
#include <stdint.h>

/* One outgoing TLS record as Caddy (Go) sends it: 5-byte header + 16384
 * bytes of plaintext + 17 bytes of AEAD tag and content type, rounded up. */
#define POOL_BLOCK_SIZE 16448
/* Room for a 64-byte PROXY headroom, a Telegram-sized hello (517 bytes; a
 * browser's with a post-quantum key share is about 1,800) and change. */
#define POOL_SMALL_SIZE 2048
/* Four full records toward the client (4 x (5 + 16379) bytes), or 64 KiB
 * read at once from either side. */
#define POOL_BATCH_SIZE 65536

typedef enum { POOL_SMALL = 0, POOL_LARGE = 1, POOL_BATCH = 2, POOL_SIZES = 3 } pool_size;

typedef struct pool_block {
    struct pool_block *next;
    size_t size;            /* a pool_size; a full word keeps data 16-aligned */
    uint8_t data[];
} pool_block;

typedef struct {
    pool_block *free_list[POOL_SIZES];
    size_t free_count[POOL_SIZES];
    size_t keep_max;        /* free blocks kept for reuse, per size (a
                               quarter of it for batch blocks) */
    size_t in_use[POOL_SIZES];   /* blocks handed out now, per size */
    size_t in_use_peak;     /* of large and batch blocks together */
    size_t bytes_in_use;    /* data bytes handed out now */
    size_t bytes_cap;       /* 0 = no cap */
    uint64_t cap_hits;      /* pool_get refused at the cap */
} pool;

void pool_init(pool *p, size_t keep_max, size_t bytes_cap);
/* Returns a block's data area (POOL_SMALL_SIZE, POOL_BLOCK_SIZE or
 * POOL_BATCH_SIZE bytes, 16-byte aligned),
 * or NULL at the cap or when memory is exhausted. */
uint8_t *pool_get(pool *p, pool_size size);
/* The usable size of a block returned by pool_get. */
size_t pool_block_size(const uint8_t *data);
/* Takes back a pointer returned by pool_get (NULL is ignored). */
void pool_put(pool *p, uint8_t *data);
void pool_destroy(pool *p);

/* A default cap: a quarter of physical memory, at least 64 MiB. */
size_t pool_default_cap(void);

#endif
