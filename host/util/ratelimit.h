/* Token buckets by key (a user, an address): `rate` tokens per second up
 * to `burst`, one token per event.  Memory is bounded: at most max_keys
 * buckets, kept in least-recently-used order; a bucket that refilled to
 * `burst` is the same as no bucket and is dropped as it is met at the old
 * end, and when the table is full the least recently used bucket is
 * dropped (that key starts over with a full bucket).  Keys are hashed with
 * a random seed.  One thread at a time (the loop). */
#ifndef ND_RATELIMIT_H
#define ND_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct nd_ratelimit nd_ratelimit;

/* rate > 0, burst >= 1, max_keys >= 1; NULL on bad arguments or ENOMEM. */
nd_ratelimit *nd_ratelimit_new(double rate, double burst, size_t max_keys);
void nd_ratelimit_free(nd_ratelimit *rl);
/* Takes one token from key's bucket at monotonic time now_ms: 1 allowed;
 * 0 refused with *retry_after_ms (>= 1) until a token is there.  Out of
 * memory allows (a limiter must not turn into an outage). */
int nd_ratelimit_take(nd_ratelimit *rl, const char *key, int64_t now_ms,
                      int64_t *retry_after_ms);
/* As take, but only looks: nothing is taken or created. */
int nd_ratelimit_peek(nd_ratelimit *rl, const char *key, int64_t now_ms,
                      int64_t *retry_after_ms);
/* Forgets key's bucket (e.g. after a successful login). */
void nd_ratelimit_forget(nd_ratelimit *rl, const char *key);
/* Buckets held now. */
size_t nd_ratelimit_count(const nd_ratelimit *rl);

#endif
