/* The host's token verifier (verifier.c), as auth.c uses it.  Creation and
 * teardown (nd_auth_start / nd_auth_stop) are declared in auth.h. */
#ifndef ND_VERIFIER_H
#define ND_VERIFIER_H

#include <stddef.h>

#include "auth/auth.h"
#include "auth/jwt_internal.h"

/* 1 when tokens can be verified at all (a secret or a JWKS URL). */
int nd_verifier_configured(notifd_host *h);
/* Verifies `token` now; copies the subject.  0, or -1 with *why set.  A
 * token naming an unknown key starts a (rate-limited) JWKS refresh. */
int nd_verifier_check(notifd_host *h, const char *token, char *sub, size_t sublen,
                      const char **why);
/* nd_auth_wait_keys for one token. */
int nd_verifier_wait(notifd_host *h, const char *token, nd_auth_resume_fn fn, void *ud,
                     nd_auth_waiter **w);

#endif
