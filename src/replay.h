/* replay: anti-replay cache, a stable Bloom filter (Deng & Rafiei) with
 * one-bit cells and mtg's parameters, so memory stays fixed while old
 * entries fade out. Shared by all workers: check-and-insert is atomic. */
#ifndef TGF_REPLAY_H
#define TGF_REPLAY_H

#include <stddef.h>
#include <stdint.h>

typedef struct replay_filter replay_filter;

/* Creates a filter using max_size_bytes of cell memory (cells = bytes * 8)
 * aimed at error_rate false positives (0 < error_rate < 1). Allocates once,
 * here. Returns NULL on bad arguments, allocation or RNG failure. */
replay_filter *replay_create(uint64_t max_size_bytes, double error_rate);

/* Returns 1 when key was (probably) seen before, 0 when it is new. Either
 * way the key is (re)inserted. Safe to call from several threads. */
int replay_check_and_insert(replay_filter *f, const uint8_t *key, size_t len);

/* How many later inserts an entry survives with probability 95% or more:
 * each insert clears p of the m cells, so all k cells of an entry survive
 * N inserts with probability about exp(-k p N / m). Re-sets by other keys
 * only help. The filter remembers a hello for this many handshakes. */
uint64_t replay_memory_inserts(const replay_filter *f);

/* Frees the filter; NULL is allowed. */
void replay_destroy(replay_filter *f);

/* Reports the derived parameters: cells m, hashes k, cells cleared per
 * insert p. Any output pointer may be NULL. */
void replay_params(const replay_filter *f, uint64_t *cells, unsigned *k, unsigned *p);

#endif
