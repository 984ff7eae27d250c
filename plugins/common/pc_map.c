/* Chained hash map with FNV-1a hashing; doubles at a load factor of 1. */
#include "pc_map.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

void pc_map_init(pc_map *m) { memset(m, 0, sizeof *m); }

void pc_map_free(pc_map *m, void (*free_value)(void *)) {
  for (size_t i = 0; i < m->nslots; i++) {
    for (pc_map_ent *e = m->slots[i], *next; e; e = next) {
      next = e->next;
      if (free_value) free_value(e->value);
      free(e);
    }
  }
  free(m->slots);
  pc_map_init(m);
}

static pc_map_ent **find(const pc_map *m, const char *key, uint64_t h) {
  if (!m->nslots) return NULL;
  pc_map_ent **pp = &m->slots[h & (m->nslots - 1)];
  for (; *pp; pp = &(*pp)->next)
    if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0) return pp;
  return pp;
}

void *pc_map_get(const pc_map *m, const char *key) {
  pc_map_ent **pp = find(m, key, hash_str(key));
  return pp && *pp ? (*pp)->value : NULL;
}

const char *pc_map_key(const pc_map *m, const char *key) {
  pc_map_ent **pp = find(m, key, hash_str(key));
  return pp && *pp ? (*pp)->key : NULL;
}

static int grow(pc_map *m) {
  size_t n = m->nslots ? m->nslots * 2 : 64;
  pc_map_ent **slots = calloc(n, sizeof *slots);
  if (!slots) return -1;
  for (size_t i = 0; i < m->nslots; i++) {
    for (pc_map_ent *e = m->slots[i], *next; e; e = next) {
      next = e->next;
      pc_map_ent **head = &slots[e->hash & (n - 1)];
      e->next = *head;
      *head = e;
    }
  }
  free(m->slots);
  m->slots = slots;
  m->nslots = n;
  return 0;
}

int pc_map_put(pc_map *m, const char *key, void *value) {
  uint64_t h = hash_str(key);
  pc_map_ent **pp = find(m, key, h);
  if (pp && *pp) {
    (*pp)->value = value;
    return 0;
  }
  if (m->count >= m->nslots && grow(m) < 0 && !m->nslots) return -1;
  size_t len = strlen(key);
  pc_map_ent *e = malloc(sizeof *e + len + 1);
  if (!e) return -1;
  memcpy(e->key, key, len + 1);
  e->hash = h;
  e->value = value;
  pc_map_ent **head = &m->slots[h & (m->nslots - 1)];
  e->next = *head;
  *head = e;
  m->count++;
  return 0;
}

void *pc_map_del(pc_map *m, const char *key) {
  pc_map_ent **pp = find(m, key, hash_str(key));
  if (!pp || !*pp) return NULL;
  pc_map_ent *e = *pp;
  void *v = e->value;
  *pp = e->next;
  free(e);
  m->count--;
  return v;
}
