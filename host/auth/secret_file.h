/* The token-signing secret of a single node that has built-in accounts but
 * no auth.jwt_secret: generated once into <data_dir>/auth.secret (mode
 * 0600) and read back on every start, so tokens survive restarts. */
#ifndef ND_SECRET_FILE_H
#define ND_SECRET_FILE_H

#include "config/config.h"

/* malloc'd secret text, or NULL with a problem added to errs. */
char *nd_auth_secret_load_or_create(const char *data_dir, nd_errors *errs);

#endif
