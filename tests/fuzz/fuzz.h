/* What the libFuzzer harnesses of tests/fuzz share: a check that aborts
 * (libFuzzer then saves the input that caused it), a deterministic
 * splitter for feeding an incremental parser in pieces, and a byte hash
 * for comparing what two runs produced. */
#ifndef ND_FUZZ_H
#define ND_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libFuzzer's entry points (the second is optional). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond, ...)                                                        \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "fuzz: %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                                  \
      fputc('\n', stderr);                                                           \
      abort();                                                                       \
    }                                                                                \
  } while (0)

/* Piece lengths drawn from a seed taken from the input: mostly 1 to 4
 * bytes (every boundary inside a header or a code point), sometimes up to
 * 256, never more than `left`. */
typedef struct fuzz_split {
  uint32_t s;
} fuzz_split;

static inline size_t fuzz_split_next(fuzz_split *sp, size_t left) {
  sp->s = sp->s * 1103515245u + 12345u;
  uint32_t r = sp->s >> 8;
  size_t n = (r & 7) == 0 ? 1 + ((r >> 3) & 255) : 1 + ((r >> 3) & 3);
  return n < left ? n : left;
}

/* FNV-1a. */
static inline uint64_t fuzz_hash(const void *p, size_t n) {
  const uint8_t *b = p;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

/* A malloc'd copy of exactly n bytes (plus a NUL when `nul`), so that
 * ASan sees any read past the input. */
static inline char *fuzz_copy(const uint8_t *p, size_t n, int nul) {
  size_t size = n + (nul ? 1 : 0);
  char *c = malloc(size ? size : 1);
  FUZZ_CHECK(c != NULL, "out of memory");
  if (n) memcpy(c, p, n);
  if (nul) c[n] = '\0';
  return c;
}

#endif
