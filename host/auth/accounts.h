/* Built-in accounts (config auth.accounts): registration, login and token
 * refresh over HTTP, backed by the user store and Argon2id hashes, with
 * tokens signed by the host's HS256 secret.
 *
 *   POST /auth/register {"user_id","password"} -> 201 {"user_id"}; 409 taken,
 *        403 when auth.registration is closed, 400 invalid
 *   POST /auth/login    {"user_id","password"} -> 200 {"token","expires_at",
 *        "expires_in","user_id"}; 401 wrong password or unknown user; 429
 *        with Retry-After past auth.login_limit
 *   POST /auth/refresh  (a valid token) -> 200 as login; 401 when the user
 *        is gone or changed password after the token was issued
 *   GET  /auth/me       (a valid token) -> 200 {"user_id","expires_at"}
 *
 * Loop thread only; hashing and the database run on the host's workers. */
#ifndef ND_ACCOUNTS_H
#define ND_ACCOUNTS_H

#include "core/host.h"

typedef struct nd_accounts nd_accounts;

/* Creates the object and registers the routes (at host creation).  0 or a
 * negative code. */
int nd_accounts_new(notifd_host *h, nd_accounts **out);
/* At start: opens <data_dir>/users.db.  0, or -1 with a problem added to
 * h->errs. */
int nd_accounts_start(nd_accounts *a);
void nd_accounts_free(nd_accounts *a);

/* Path of the users database for a config (malloc'd). */
char *nd_accounts_db_path(const nd_config *cfg);

#endif
