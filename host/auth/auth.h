/* Request authentication policies: none, token (JWT: HS256/384/512 with
 * the configured secret; RS256/384/512, ES256/384 and EdDSA with the
 * identity provider's JWKS), internal (shared secret header).  Crypto
 * from OpenSSL. */
#ifndef ND_AUTH_H
#define ND_AUTH_H

#include <stdint.h>
#include <jansson.h>
#include <notifd/plugin.h>
#include "core/host.h"

#define ND_INTERNAL_TOKEN_HEADER "X-Notifd-Internal-Token"

/* Checks `req` against `policy`.  For NOTIFD_AUTH_TOKEN, `subjects` is a
 * NULL-terminated list of acceptable `sub` values (NULL = any valid token);
 * the verified subject is stored on the request.  Returns 0 if allowed,
 * 403 for a valid token whose subject is not listed, 401 otherwise, with
 * `*why` set to a static reason. */
int nd_auth_check(notifd_host *h, uint32_t policy, notifd_req *req,
                  const char *const *subjects, const char **why);

/* ---- the host's token verifier (verifier.c) ---------------------------- */
/* Builds the verifier from h->cfg: auth.jwt.* and the HMAC secret that
 * h->cfg.jwt_secret holds NOW (a generated secret must be stored there
 * before), and starts fetching auth.jwt.jwks_url.  notifd_host_start calls
 * it once plugins are initialized.  0, or -1 with a problem added to
 * h->errs.  Without a verifier (hosts assembled by hand in tests) token
 * checks read h->cfg directly: HS256 with h->cfg.jwt_secret. */
int nd_auth_start(notifd_host *h);
/* Frees the verifier: JWKS timers and waiters go without being called. */
void nd_auth_stop(notifd_host *h);

/* ---- waiting for signing keys ----------------------------------------- */
typedef struct nd_auth_waiter nd_auth_waiter;
typedef void (*nd_auth_resume_fn)(void *ud);

/* For a request about to be checked under the token policy: when its
 * token names a JWKS key we do not hold yet (or the first JWKS fetch has
 * not finished) and a fetch is, or now is, under way, registers fn(ud)
 * to run once that fetch ended (or after a bounded wait), stores the
 * handle in *w and returns 1; the caller then holds the request without
 * checking it and runs nd_auth_check when called back (which no longer
 * waits: a key still unknown is a 401).  0 = check now.  fn is never
 * called from inside this call. */
int nd_auth_wait_keys(notifd_host *h, notifd_req *req, nd_auth_resume_fn fn, void *ud,
                      nd_auth_waiter **w);
/* The request went away before fn ran: fn will not run. */
void nd_auth_waiter_cancel(nd_auth_waiter *w);

/* ---- tokens (jwt.c) ----------------------------------------------------- */
/* Verifies an HS256 JWT (signature, alg, exp, nbf, iat; no leeway, no
 * lifetime limit) at time `now`; copies `sub` into subbuf.  0 on success,
 * -1 with *why set. */
int nd_jwt_verify(const char *token, const char *secret, int64_t now,
                  char *subbuf, size_t sublen, const char **why);
/* Makes an HS256 JWT for {sub, exp} (tests, tools). malloc'd string. */
char *nd_jwt_sign(const char *secret, const char *sub, int64_t exp);
/* Makes an HS256 JWT carrying `claims` (a JSON object, serialized as is)
 * signed with `secret` (non-empty).  malloc'd string, NULL on bad input or
 * OOM. */
char *nd_jwt_sign_claims(const char *secret, const json_t *claims);

#endif
