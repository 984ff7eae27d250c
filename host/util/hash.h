/* A seeded 64-bit hash for hash tables whose keys come from clients
 * (websocket keys, rate-limit keys, peer addresses): with a random seed
 * per table, nobody can pick keys that all land in one bucket. */
#ifndef ND_HASH_H
#define ND_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t nd_hash64(const void *p, size_t n, uint64_t seed);
/* A random seed for a new table (OpenSSL's RNG; the clock if that fails). */
uint64_t nd_hash_seed(void);

#endif
