/* A blocked Bloom filter over 64-bit hashes: "certainly not added" or
 * "maybe added".  Never a false negative; false positives grow with the
 * number of keys added.
 *
 * Each key sets ND_BLOOM_K bits inside one 512-bit block (one cache line),
 * so a lookup touches one line.  The caller hashes the key (any 64-bit
 * hash; it is remixed here) and passes the hash.  At 10 bits per key the
 * false-positive rate is about 1% (nd_bloom_capacity); past that it rises
 * smoothly (2x the keys: ~14%, 4x: ~64%) - never a wrong "not added".
 * No locking: one thread at a time (the kv builds one on its writer thread
 * and hands it to the loop). */
#ifndef ND_BLOOM_H
#define ND_BLOOM_H

#include <stddef.h>
#include <stdint.h>

#define ND_BLOOM_K 7
#define ND_BLOOM_BLOCK_BITS 512

typedef struct nd_bloom {
  uint64_t *words;  /* nblocks * 8 */
  uint64_t nblocks; /* a power of two */
} nd_bloom;

/* `bits` rounded up to a power of two, at least one block; NULL on ENOMEM
 * or when bits > 2^36. */
nd_bloom *nd_bloom_new(uint64_t bits);
void nd_bloom_free(nd_bloom *b);
uint64_t nd_bloom_bits(const nd_bloom *b);
/* Keys it holds at about 1% false positives (10 bits per key). */
uint64_t nd_bloom_capacity(const nd_bloom *b);

/* Finalizer (xor-shift-multiply): spreads every input bit over the word. */
static inline uint64_t nd_bloom_mix(uint64_t x) {
  x ^= x >> 31;
  x *= 0x7fb5d329728ea185ULL;
  x ^= x >> 27;
  x *= 0x81dadef4bc2dd44dULL;
  x ^= x >> 33;
  return x;
}

/* The block and the ND_BLOOM_K bit positions (9 bits each) of a hash. */
static inline uint64_t *nd_bloom_block_(const nd_bloom *b, uint64_t h, uint64_t *pos) {
  uint64_t a = nd_bloom_mix(h);
  *pos = nd_bloom_mix(a ^ 0x9e3779b97f4a7c15ULL);
  return b->words + (a & (b->nblocks - 1)) * (ND_BLOOM_BLOCK_BITS / 64);
}

static inline void nd_bloom_add(nd_bloom *b, uint64_t h) {
  uint64_t pos;
  uint64_t *w = nd_bloom_block_(b, h, &pos);
  for (int i = 0; i < ND_BLOOM_K; i++, pos >>= 9) w[(pos >> 6) & 7] |= 1ULL << (pos & 63);
}

/* 0: certainly never added; 1: maybe. */
static inline int nd_bloom_maybe(const nd_bloom *b, uint64_t h) {
  uint64_t pos;
  const uint64_t *w = nd_bloom_block_(b, h, &pos);
  for (int i = 0; i < ND_BLOOM_K; i++, pos >>= 9)
    if (!(w[(pos >> 6) & 7] & (1ULL << (pos & 63)))) return 0;
  return 1;
}

#endif
