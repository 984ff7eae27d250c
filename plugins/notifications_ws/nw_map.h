/* A small string-keyed hash map for the plugin's loop-side registries
 * (connections by user, the preferences cache).  Keys are copied; values
 * are the caller's.  Not thread-safe: the loop thread only. */
#ifndef NW_MAP_H
#define NW_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct nw_map_ent {
  struct nw_map_ent *next;
  uint64_t hash;
  void *value;
  char key[]; /* NUL-terminated copy */
} nw_map_ent;

typedef struct nw_map {
  nw_map_ent **slots;
  size_t nslots, count;
} nw_map;

void nw_map_init(nw_map *m);
/* Frees the entries (not the values: call free_value on each if not NULL). */
void nw_map_free(nw_map *m, void (*free_value)(void *));
void *nw_map_get(const nw_map *m, const char *key);
/* Sets key -> value (replacing); 0, or -1 on OOM (nothing changed). */
int nw_map_put(nw_map *m, const char *key, void *value);
/* Removes key; returns its value or NULL. */
void *nw_map_del(nw_map *m, const char *key);
/* The key as stored (lives until the entry is removed), or NULL. */
const char *nw_map_key(const nw_map *m, const char *key);

#endif
