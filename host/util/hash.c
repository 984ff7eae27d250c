/* Seeded 64-bit multiply-xorshift over 8-byte words (see hash.h). */
#include "util/hash.h"

#include <openssl/rand.h>
#include <string.h>

#include "util/buf.h"

uint64_t nd_hash64(const void *p, size_t n, uint64_t seed) {
  const unsigned char *s = p;
  const uint64_t k = UINT64_C(0x9E3779B97F4A7C15);
  uint64_t h = seed ^ (n * k);
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, s, 8);
    h = (h ^ w) * k;
    h ^= h >> 29;
    s += 8;
    n -= 8;
  }
  uint64_t w = 0;
  if (n) memcpy(&w, s, n);
  h = (h ^ w) * k;
  h ^= h >> 32;
  h *= UINT64_C(0xD6E8FEB86659FD93);
  h ^= h >> 32;
  return h;
}

uint64_t nd_hash_seed(void) {
  uint64_t seed = 0;
  if (RAND_bytes((unsigned char *)&seed, sizeof seed) != 1) seed = (uint64_t)nd_now_ms();
  return seed;
}
