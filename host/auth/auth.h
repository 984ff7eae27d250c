/* Request authentication policies: none, token (HS256 JWT), internal
 * (shared secret header).  Crypto from OpenSSL. */
#ifndef ND_AUTH_H
#define ND_AUTH_H

#include <stdint.h>
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

/* Verifies an HS256 JWT (signature, alg, exp, nbf) at time `now`; copies
 * `sub` into subbuf.  0 on success, -1 with *why set. */
int nd_jwt_verify(const char *token, const char *secret, int64_t now,
                  char *subbuf, size_t sublen, const char **why);
/* Makes an HS256 JWT for {sub, exp} (tests, tools). malloc'd string. */
char *nd_jwt_sign(const char *secret, const char *sub, int64_t exp);

#endif
