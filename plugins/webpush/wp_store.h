/* The push subscriptions, keyed by (user_id, endpoint): an embedded SQLite
 * file in the data dir (wp_store_sqlite.c), or a MongoDB collection when
 * the host has backends.mongodb (wp_store_mongo.c).  Every call blocks and
 * is thread-safe: they run on host worker threads. */
#ifndef WP_STORE_H
#define WP_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct wp_sub {
  char *endpoint;
  char *p256dh;       /* base64url, as the browser sent it */
  char *auth;         /* base64url */
  int64_t expires_ms; /* expirationTime, 0 = none */
} wp_sub;

typedef struct wp_store wp_store;

typedef struct wp_store_ops {
  const char *name; /* "sqlite", "mongodb" */
  /* Inserts or updates (user_id, endpoint) as the user's newest; then keeps
   * only the user's `keep` most recent subscriptions.  Returns how many
   * older ones were removed (>= 0), or -1 (err). */
  int (*put)(wp_store *s, const char *user_id, const wp_sub *sub, int64_t now_ms, int64_t keep,
             char *err, size_t errlen);
  /* The user's subscriptions, newest first, into a malloc'd array (free
   * with wp_subs_free).  0, or -1 (err). */
  int (*list)(wp_store *s, const char *user_id, wp_sub **out, size_t *n, char *err,
              size_t errlen);
  /* 1 removed, 0 there was none, -1 (err). */
  int (*del)(wp_store *s, const char *user_id, const char *endpoint, char *err, size_t errlen);
  /* One-time blocking setup (indexes); NULL when there is none.  0 or -1. */
  int (*prepare)(wp_store *s, char *err, size_t errlen);
  void (*close)(wp_store *s);
} wp_store_ops;

struct wp_store {
  const wp_store_ops *ops;
};

/* Opening SQLite touches the file (quick); opening MongoDB does no I/O
 * (the pool connects on first use; prepare creates the indexes). */
int wp_store_open_sqlite(const char *path, wp_store **out, char *err, size_t errlen);
int wp_store_open_mongo(const char *uri, const char *database, const char *collection,
                        wp_store **out, char *err, size_t errlen);

void wp_subs_free(wp_sub *subs, size_t n);
/* wp_subs_free, then *subs = NULL and *n = 0 (a list call that failed). */
void wp_subs_clear(wp_sub **subs, size_t *n);
/* Appends one slot to a growing list (*cap doubles); NULL out of memory. */
wp_sub *wp_subs_grow(wp_sub **subs, size_t *n, size_t *cap);

#endif
