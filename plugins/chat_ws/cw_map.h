/* A string-keyed intrusive hash map for chat_ws's registries (users,
 * streams): the entry embeds its cw_node and owns the key, so one entry
 * is one allocation.  Insert never fails: when growing runs out of memory
 * the chains just get longer. */
#ifndef CW_MAP_H
#define CW_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct cw_node {
  struct cw_node *next;
  const char *key; /* owned by the entry, NUL-terminated */
  uint32_t hash;
} cw_node;

typedef struct cw_map {
  cw_node **b;
  size_t nb; /* a power of two */
  size_t n;
} cw_map;

/* 0, or -1 when the first buckets cannot be allocated. */
int cw_map_init(cw_map *m);
/* Frees the buckets only: entries belong to the caller. */
void cw_map_free(cw_map *m);
cw_node *cw_map_find(const cw_map *m, const char *key);
/* `n->key` must be set and not present yet. */
void cw_map_insert(cw_map *m, cw_node *n);
void cw_map_remove(cw_map *m, cw_node *n);

/* Iteration that tolerates removing the entry just returned. */
typedef struct cw_map_iter {
  const cw_map *m;
  size_t i;
  cw_node *next;
} cw_map_iter;
void cw_map_iter_begin(cw_map_iter *it, const cw_map *m);
cw_node *cw_map_iter_next(cw_map_iter *it);

#endif
