#include "util/bloom.h"

#include <stdlib.h>

nd_bloom *nd_bloom_new(uint64_t bits) {
  if (bits > (1ULL << 36)) return NULL;
  uint64_t nblocks = 1;
  while (nblocks * ND_BLOOM_BLOCK_BITS < bits) nblocks <<= 1;
  nd_bloom *b = malloc(sizeof *b);
  if (!b) return NULL;
  b->nblocks = nblocks;
  /* calloc: pages are zero-filled on first touch */
  b->words = calloc((size_t)nblocks, ND_BLOOM_BLOCK_BITS / 8);
  if (!b->words) {
    free(b);
    return NULL;
  }
  return b;
}

void nd_bloom_free(nd_bloom *b) {
  if (!b) return;
  free(b->words);
  free(b);
}

uint64_t nd_bloom_bits(const nd_bloom *b) { return b->nblocks * ND_BLOOM_BLOCK_BITS; }

uint64_t nd_bloom_capacity(const nd_bloom *b) { return nd_bloom_bits(b) / 10; }
