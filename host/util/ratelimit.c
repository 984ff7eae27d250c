/* Token buckets by key: chained hash table plus an LRU list (see
 * ratelimit.h). */
#include "util/ratelimit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/hash.h"

#define SWEEP 2 /* full buckets dropped from the old end per call, at most */

typedef struct bucket bucket;
struct bucket {
  bucket *next;         /* hash chain */
  bucket *newer, *older; /* LRU list */
  uint64_t hash;
  double tokens;        /* at last_ms */
  int64_t last_ms;
  char key[];
};

struct nd_ratelimit {
  double rate, burst;   /* tokens per ms, tokens */
  size_t max_keys, n;
  bucket **tab;
  size_t nbuckets;      /* power of two */
  bucket *newest, *oldest;
  uint64_t seed;
};

nd_ratelimit *nd_ratelimit_new(double rate, double burst, size_t max_keys) {
  if (!(rate > 0) || !(burst >= 1) || !isfinite(rate) || !isfinite(burst) || max_keys == 0)
    return NULL;
  nd_ratelimit *rl = calloc(1, sizeof *rl);
  if (!rl) return NULL;
  rl->rate = rate / 1000.0;
  rl->burst = burst;
  rl->max_keys = max_keys;
  rl->seed = nd_hash_seed();
  rl->nbuckets = 16;
  rl->tab = calloc(rl->nbuckets, sizeof *rl->tab);
  if (!rl->tab) {
    free(rl);
    return NULL;
  }
  return rl;
}

void nd_ratelimit_free(nd_ratelimit *rl) {
  if (!rl) return;
  for (bucket *b = rl->newest, *next; b; b = next) {
    next = b->older;
    free(b);
  }
  free(rl->tab);
  free(rl);
}

size_t nd_ratelimit_count(const nd_ratelimit *rl) { return rl ? rl->n : 0; }

static bucket *find(const nd_ratelimit *rl, const char *key, size_t len, uint64_t h) {
  for (bucket *b = rl->tab[h & (rl->nbuckets - 1)]; b; b = b->next)
    if (b->hash == h && strncmp(b->key, key, len) == 0 && b->key[len] == '\0') return b;
  return NULL;
}

static void lru_unlink(nd_ratelimit *rl, bucket *b) {
  if (b->newer) b->newer->older = b->older;
  else rl->newest = b->older;
  if (b->older) b->older->newer = b->newer;
  else rl->oldest = b->newer;
  b->newer = b->older = NULL;
}

static void lru_push(nd_ratelimit *rl, bucket *b) {
  b->older = rl->newest;
  b->newer = NULL;
  if (rl->newest) rl->newest->newer = b;
  else rl->oldest = b;
  rl->newest = b;
}

static void drop(nd_ratelimit *rl, bucket *b) {
  bucket **pp = &rl->tab[b->hash & (rl->nbuckets - 1)];
  while (*pp != b) pp = &(*pp)->next;
  *pp = b->next;
  lru_unlink(rl, b);
  rl->n--;
  free(b);
}

/* Tokens in b at now (never more than burst). */
static double level(const nd_ratelimit *rl, const bucket *b, int64_t now_ms) {
  double dt = now_ms > b->last_ms ? (double)(now_ms - b->last_ms) : 0;
  double t = b->tokens + dt * rl->rate;
  return t < rl->burst ? t : rl->burst;
}

/* Full buckets at the old end carry no information: drop a few. */
static void sweep(nd_ratelimit *rl, int64_t now_ms) {
  for (int i = 0; i < SWEEP && rl->oldest && level(rl, rl->oldest, now_ms) >= rl->burst; i++)
    drop(rl, rl->oldest);
}

static void grow(nd_ratelimit *rl) {
  size_t nb = rl->nbuckets * 2;
  bucket **t = calloc(nb, sizeof *t);
  if (!t) return; /* longer chains, still correct */
  for (size_t i = 0; i < rl->nbuckets; i++)
    for (bucket *b = rl->tab[i], *next; b; b = next) {
      next = b->next;
      b->next = t[b->hash & (nb - 1)];
      t[b->hash & (nb - 1)] = b;
    }
  free(rl->tab);
  rl->tab = t;
  rl->nbuckets = nb;
}

static int64_t wait_ms(const nd_ratelimit *rl, double tokens) {
  int64_t ms = (int64_t)ceil((1.0 - tokens) / rl->rate);
  return ms < 1 ? 1 : ms;
}

int nd_ratelimit_peek(nd_ratelimit *rl, const char *key, int64_t now_ms,
                      int64_t *retry_after_ms) {
  if (!rl || !key) return 1;
  size_t len = strlen(key);
  bucket *b = find(rl, key, len, nd_hash64(key, len, rl->seed));
  double t = b ? level(rl, b, now_ms) : rl->burst;
  if (t >= 1.0) return 1;
  if (retry_after_ms) *retry_after_ms = wait_ms(rl, t);
  return 0;
}

int nd_ratelimit_take(nd_ratelimit *rl, const char *key, int64_t now_ms,
                      int64_t *retry_after_ms) {
  if (!rl || !key) return 1;
  sweep(rl, now_ms);
  size_t len = strlen(key);
  uint64_t h = nd_hash64(key, len, rl->seed);
  bucket *b = find(rl, key, len, h);
  if (b) {
    b->tokens = level(rl, b, now_ms);
    lru_unlink(rl, b);
  } else {
    if (rl->n >= rl->max_keys) drop(rl, rl->oldest);
    if (!(b = malloc(sizeof *b + len + 1))) return 1;
    memcpy(b->key, key, len + 1);
    b->hash = h;
    b->tokens = rl->burst;
    b->next = rl->tab[h & (rl->nbuckets - 1)];
    rl->tab[h & (rl->nbuckets - 1)] = b;
    rl->n++;
    if (rl->n > rl->nbuckets) grow(rl);
  }
  b->last_ms = now_ms;
  lru_push(rl, b);
  if (b->tokens >= 1.0) {
    b->tokens -= 1.0;
    return 1;
  }
  if (retry_after_ms) *retry_after_ms = wait_ms(rl, b->tokens);
  return 0;
}

void nd_ratelimit_forget(nd_ratelimit *rl, const char *key) {
  if (!rl || !key) return;
  size_t len = strlen(key);
  bucket *b = find(rl, key, len, nd_hash64(key, len, rl->seed));
  if (b) drop(rl, b);
}
