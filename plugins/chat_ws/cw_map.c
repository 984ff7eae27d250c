#include "cw_map.h"

#include <stdlib.h>
#include <string.h>

#define CW_MAP_INITIAL 64

static uint32_t fnv1a(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

int cw_map_init(cw_map *m) {
  m->n = 0;
  m->nb = CW_MAP_INITIAL;
  m->b = calloc(m->nb, sizeof *m->b);
  return m->b ? 0 : -1;
}

void cw_map_free(cw_map *m) {
  free(m->b);
  m->b = NULL;
  m->nb = m->n = 0;
}

cw_node *cw_map_find(const cw_map *m, const char *key) {
  if (!m->b) return NULL;
  uint32_t h = fnv1a(key);
  for (cw_node *n = m->b[h & (m->nb - 1)]; n; n = n->next)
    if (n->hash == h && strcmp(n->key, key) == 0) return n;
  return NULL;
}

static void grow(cw_map *m) {
  size_t nb = m->nb * 2;
  cw_node **b = calloc(nb, sizeof *b);
  if (!b) return; /* keep the longer chains */
  for (size_t i = 0; i < m->nb; i++) {
    for (cw_node *n = m->b[i], *next; n; n = next) {
      next = n->next;
      n->next = b[n->hash & (nb - 1)];
      b[n->hash & (nb - 1)] = n;
    }
  }
  free(m->b);
  m->b = b;
  m->nb = nb;
}

void cw_map_insert(cw_map *m, cw_node *n) {
  if (m->n >= m->nb) grow(m);
  n->hash = fnv1a(n->key);
  cw_node **slot = &m->b[n->hash & (m->nb - 1)];
  n->next = *slot;
  *slot = n;
  m->n++;
}

void cw_map_remove(cw_map *m, cw_node *n) {
  for (cw_node **p = &m->b[n->hash & (m->nb - 1)]; *p; p = &(*p)->next) {
    if (*p != n) continue;
    *p = n->next;
    n->next = NULL;
    m->n--;
    return;
  }
}

void cw_map_iter_begin(cw_map_iter *it, const cw_map *m) {
  it->m = m;
  it->i = 0;
  it->next = NULL;
}

cw_node *cw_map_iter_next(cw_map_iter *it) {
  while (!it->next) {
    if (!it->m->b || it->i >= it->m->nb) return NULL;
    it->next = it->m->b[it->i++];
  }
  cw_node *n = it->next;
  it->next = n->next;
  return n;
}
