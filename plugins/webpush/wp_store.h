/* The push subscriptions: one SQLite file (WAL) in the data dir, table
 * push_subscriptions keyed by (user_id, endpoint).  Every call blocks and is
 * thread-safe (a mutex serialises them): they run on host worker threads.
 * MongoDB is not supported yet (the distributed stack keeps one webpush
 * instance's file). */
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

int wp_store_open(const char *path, wp_store **out, char *err, size_t errlen);
void wp_store_close(wp_store *s);

/* Inserts or updates (user_id, endpoint); then keeps only the user's `keep`
 * most recent subscriptions.  Returns how many older ones were removed
 * (>= 0), or -1 (err). */
int wp_store_put(wp_store *s, const char *user_id, const wp_sub *sub, int64_t now_ms,
                 int64_t keep, char *err, size_t errlen);
/* The user's subscriptions, newest first, into a malloc'd array (free with
 * wp_subs_free).  0, or -1 (err). */
int wp_store_list(wp_store *s, const char *user_id, wp_sub **out, size_t *n, char *err,
                  size_t errlen);
/* 1 removed, 0 there was none, -1 (err). */
int wp_store_delete(wp_store *s, const char *user_id, const char *endpoint, char *err,
                    size_t errlen);

void wp_subs_free(wp_sub *subs, size_t n);

#endif
