/* A small string-keyed hash map for plugins' loop-side registries
 * (notifications_ws: connections by user, the preferences cache; webpush:
 * users known to have no subscription).  Keys are copied; values are the
 * caller's.  Not thread-safe: the loop thread only. */
#ifndef PC_MAP_H
#define PC_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct pc_map_ent {
  struct pc_map_ent *next;
  uint64_t hash;
  void *value;
  char key[]; /* NUL-terminated copy */
} pc_map_ent;

typedef struct pc_map {
  pc_map_ent **slots;
  size_t nslots, count;
} pc_map;

void pc_map_init(pc_map *m);
/* Frees the entries (not the values: call free_value on each if not NULL). */
void pc_map_free(pc_map *m, void (*free_value)(void *));
void *pc_map_get(const pc_map *m, const char *key);
/* Sets key -> value (replacing); 0, or -1 on OOM (nothing changed). */
int pc_map_put(pc_map *m, const char *key, void *value);
/* Removes key; returns its value or NULL. */
void *pc_map_del(pc_map *m, const char *key);
/* The key as stored (lives until the entry is removed), or NULL. */
const char *pc_map_key(const pc_map *m, const char *key);

#endif
