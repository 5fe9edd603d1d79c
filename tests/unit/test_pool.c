/* pool: two block sizes, reuse, and the byte cap that turns a flood into
 * backpressure (pool_get refuses) instead of unbounded memory. */
#include <string.h>

#include "pool.h"
#include "unit.h"

TEST(pool_sizes_and_reuse)
{
    pool p;
    pool_init(&p, 4, 0);
    uint8_t *s = pool_get(&p, POOL_SMALL);
    uint8_t *l = pool_get(&p, POOL_LARGE);
    CHECK(s && l);
    CHECK_EQ_INT(pool_block_size(s), POOL_SMALL_SIZE);
    CHECK_EQ_INT(pool_block_size(l), POOL_BLOCK_SIZE);
    CHECK_EQ_INT(((uintptr_t)s) % 16, 0);
    memset(s, 0xab, POOL_SMALL_SIZE);
    memset(l, 0xcd, POOL_BLOCK_SIZE);
    CHECK_EQ_INT(p.bytes_in_use, POOL_SMALL_SIZE + POOL_BLOCK_SIZE);
    pool_put(&p, s);
    pool_put(&p, l);
    CHECK_EQ_INT(p.bytes_in_use, 0);
    /* a freed block of each size comes back for the same size only */
    CHECK(pool_get(&p, POOL_LARGE) == l);
    CHECK(pool_get(&p, POOL_SMALL) == s);
    pool_put(&p, s);
    pool_put(&p, l);
    pool_put(&p, NULL);
    pool_destroy(&p);
}

TEST(pool_cap_refuses_then_recovers)
{
    pool p;
    size_t cap = 2 * POOL_BLOCK_SIZE + POOL_SMALL_SIZE;
    pool_init(&p, 0, cap);
    uint8_t *a = pool_get(&p, POOL_LARGE), *b = pool_get(&p, POOL_LARGE);
    uint8_t *c = pool_get(&p, POOL_SMALL);
    CHECK(a && b && c);
    CHECK(pool_get(&p, POOL_SMALL) == NULL);
    CHECK(pool_get(&p, POOL_LARGE) == NULL);
    CHECK_EQ_INT(p.cap_hits, 2);
    CHECK(p.bytes_in_use <= cap);
    pool_put(&p, a);
    uint8_t *d = pool_get(&p, POOL_LARGE);
    CHECK(d != NULL);
    pool_put(&p, b);
    pool_put(&p, c);
    pool_put(&p, d);
    CHECK_EQ_INT(p.bytes_in_use, 0);
    pool_destroy(&p);
    CHECK(pool_default_cap() >= ((size_t)64 << 20));
}
