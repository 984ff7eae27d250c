/* What both subscription stores share: the list of subscriptions. */
#include <stdlib.h>
#include <string.h>

#include "wp_store.h"

void wp_subs_free(wp_sub *subs, size_t n) {
  for (size_t i = 0; subs && i < n; i++) {
    free(subs[i].endpoint);
    free(subs[i].p256dh);
    free(subs[i].auth);
  }
  free(subs);
}

void wp_subs_clear(wp_sub **subs, size_t *n) {
  wp_subs_free(*subs, *n);
  *subs = NULL;
  *n = 0;
}

wp_sub *wp_subs_grow(wp_sub **subs, size_t *n, size_t *cap) {
  if (*n == *cap) {
    size_t ncap = *cap ? *cap * 2 : 8;
    wp_sub *grown = realloc(*subs, ncap * sizeof *grown);
    if (!grown) return NULL;
    *subs = grown;
    *cap = ncap;
  }
  wp_sub *w = &(*subs)[(*n)++];
  memset(w, 0, sizeof *w);
  return w;
}
