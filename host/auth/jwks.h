/* The identity provider's key set (JWKS), fetched over HTTP on the loop
 * (host/http/client.c), cached, refreshed every `refresh_ms` and, rate
 * limited, as soon as a token names a key it does not hold.  Requests that
 * need the refresh wait for it through waiters. */
#ifndef ND_JWKS_H
#define ND_JWKS_H

#include <stdint.h>

#include "auth/auth.h"
#include "auth/jwt_internal.h"

typedef struct nd_jwks nd_jwks;

/* Starts the first fetch at once.  NULL on OOM. */
nd_jwks *nd_jwks_new(notifd_host *h, const char *url, int64_t refresh_ms);
/* Cancels timers and waiters (without calling them). */
void nd_jwks_free(nd_jwks *j);
/* The current set; NULL until a fetch succeeded. */
const nd_jwkset *nd_jwks_keys(const nd_jwks *j);
/* A token named a key the set does not hold: fetch now unless a fetch
 * started less than ND_JWKS_MIN_INTERVAL_MS ago.  1 when a fetch is in
 * flight afterwards (one a waiter can wait for), 0 otherwise. */
int nd_jwks_refresh_for_unknown(nd_jwks *j);
/* Calls fn(ud) once the fetch in flight finished, well or not, or after
 * ND_JWKS_WAIT_MS; never from inside this call.  NULL when no fetch is in
 * flight or on OOM. */
nd_auth_waiter *nd_jwks_wait(nd_jwks *j, nd_auth_resume_fn fn, void *ud);
void nd_jwks_cancel(nd_auth_waiter *w);

#define ND_JWKS_MIN_INTERVAL_MS 10000 /* unknown-kid refreshes, at most */
#define ND_JWKS_FETCH_TIMEOUT_MS 5000
#define ND_JWKS_WAIT_MS (ND_JWKS_FETCH_TIMEOUT_MS + 1000)
#define ND_JWKS_RETRY_MS 10000        /* after a failed fetch */

#endif
