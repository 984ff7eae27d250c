/* JWS algorithm identifiers accepted for tokens (RFC 7518 names).  Kept
 * apart from the verifier so the config loader can validate
 * `auth.jwt.algorithms` without depending on OpenSSL or the host. */
#ifndef ND_JWT_ALGS_H
#define ND_JWT_ALGS_H

#include <stdint.h>

enum {
  ND_JWT_HS256 = 0,
  ND_JWT_HS384,
  ND_JWT_HS512,
  ND_JWT_RS256,
  ND_JWT_RS384,
  ND_JWT_RS512,
  ND_JWT_ES256,
  ND_JWT_ES384,
  ND_JWT_EDDSA,
  ND_JWT_NALGS
};

#define ND_JWT_BIT(a) (UINT32_C(1) << (a))
#define ND_JWT_HMAC_ALGS (ND_JWT_BIT(ND_JWT_HS256) | ND_JWT_BIT(ND_JWT_HS384) | ND_JWT_BIT(ND_JWT_HS512))
#define ND_JWT_ALL_ALGS ((UINT32_C(1) << ND_JWT_NALGS) - 1)

/* The ND_JWT_* index of an exact (case-sensitive) JOSE name, or -1; "none"
 * is not an algorithm here. */
int nd_jwt_alg_from_name(const char *name);
const char *nd_jwt_alg_name(int alg);
/* "HS256, HS384, ..." for messages. */
const char *nd_jwt_alg_names(void);

#endif
