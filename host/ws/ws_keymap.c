/* Key -> connections map of one channel: chained hash table with a
 * per-hub random seed (keys come from clients), doubling at load 1. */
#include <stdlib.h>
#include <string.h>

#include "util/hash.h"
#include "ws/ws_internal.h"

void nd_ws_keymap_init(nd_ws_keymap *m, uint64_t seed) {
  memset(m, 0, sizeof *m);
  m->seed = seed;
}

void nd_ws_keymap_free(nd_ws_keymap *m) {
  for (size_t i = 0; i < m->nbuckets; i++) {
    nd_ws_keyent *e = m->buckets[i];
    while (e) {
      nd_ws_keyent *next = e->next;
      free(e);
      e = next;
    }
  }
  free(m->buckets);
  m->buckets = NULL;
  m->nbuckets = m->nkeys = 0;
}

nd_ws_keyent *nd_ws_keymap_find(const nd_ws_keymap *m, const char *key) {
  if (!m->nbuckets) return NULL;
  size_t n = strlen(key);
  uint64_t h = nd_hash64(key, n, m->seed);
  for (nd_ws_keyent *e = m->buckets[h & (m->nbuckets - 1)]; e; e = e->next)
    if (e->hash == h && strcmp(e->key, key) == 0) return e;
  return NULL;
}

static int grow(nd_ws_keymap *m) {
  size_t nb = m->nbuckets ? m->nbuckets * 2 : 16;
  nd_ws_keyent **b = calloc(nb, sizeof *b);
  if (!b) return -1;
  for (size_t i = 0; i < m->nbuckets; i++) {
    nd_ws_keyent *e = m->buckets[i];
    while (e) {
      nd_ws_keyent *next = e->next;
      size_t j = e->hash & (nb - 1);
      e->next = b[j];
      b[j] = e;
      e = next;
    }
  }
  free(m->buckets);
  m->buckets = b;
  m->nbuckets = nb;
  return 0;
}

nd_ws_keyent *nd_ws_keymap_get(nd_ws_keymap *m, const char *key) {
  nd_ws_keyent *e = nd_ws_keymap_find(m, key);
  if (e) return e;
  if (m->nkeys >= m->nbuckets && grow(m) < 0 && !m->nbuckets) return NULL;
  size_t n = strlen(key);
  e = calloc(1, sizeof *e + n + 1);
  if (!e) return NULL;
  memcpy(e->key, key, n + 1);
  e->hash = nd_hash64(key, n, m->seed);
  size_t j = e->hash & (m->nbuckets - 1);
  e->next = m->buckets[j];
  m->buckets[j] = e;
  m->nkeys++;
  return e;
}

void nd_ws_keymap_remove(nd_ws_keymap *m, nd_ws_keyent *e) {
  nd_ws_keyent **pp = &m->buckets[e->hash & (m->nbuckets - 1)];
  while (*pp && *pp != e) pp = &(*pp)->next;
  if (*pp) {
    *pp = e->next;
    m->nkeys--;
  }
  free(e);
}
