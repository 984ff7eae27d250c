/* Internals of token verification shared by jwt.c (tokens), jwk.c (JSON
 * Web Keys -> OpenSSL keys), jwks.c (the fetched key set cache) and
 * verifier.c (the host's verifier).  Not installed, not a plugin API. */
#ifndef ND_JWT_INTERNAL_H
#define ND_JWT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "auth/jwt_algs.h"
#include "util/buf.h"

/* ---- base64url (b64url.c) ---------------------------------------------- */
/* Unpadded base64url -> malloc'd bytes, NUL-terminated for JSON use.  NULL
 * on a bad character, an impossible length, non-zero trailing bits or OOM. */
unsigned char *nd_b64url_decode(const char *s, size_t n, size_t *outlen);
int nd_b64url_append(nd_buf *b, const unsigned char *p, size_t n);

/* ---- keys (jwk.c) ------------------------------------------------------- */
enum { ND_JWK_RSA = 1, ND_JWK_P256, ND_JWK_P384, ND_JWK_ED25519 };

typedef struct nd_jwk {
  char *kid;        /* NULL when the JWK has none */
  int alg;          /* ND_JWT_* from the JWK's "alg", -1 = not stated */
  int kind;         /* ND_JWK_* */
  EVP_PKEY *pkey;   /* public key */
} nd_jwk;

typedef struct nd_jwkset {
  nd_jwk *keys;
  size_t n;
} nd_jwkset;

/* One JWK object -> public key.  Only signature keys we can verify with
 * are accepted: RSA (2048 to 16384 bits), EC P-256 / P-384 (point checked
 * to be on the curve), OKP Ed25519.  NULL with *why set otherwise. */
EVP_PKEY *nd_jwk_to_pkey(const json_t *jwk, int *kind, const char **why);
/* A JWKS document ({"keys": [...]}) -> set.  Keys we cannot or must not
 * use (symmetric "oct", "use" other than "sig", unknown kty, curve or alg,
 * weak RSA) are skipped and counted in *skipped.  0, or -1 with *why when
 * the document itself is malformed. */
int nd_jwkset_parse(const char *text, size_t len, nd_jwkset *out, size_t *skipped,
                    const char **why);
void nd_jwkset_free(nd_jwkset *s);
/* 1 if `k` may verify a token signed with `alg`: the key type matches
 * the algorithm family (and curve), and the JWK's own alg, if stated, is
 * the same.  HMAC algorithms never fit a public key. */
int nd_jwk_fits(const nd_jwk *k, int alg);
/* 1 if some key in the set carries `kid`. */
int nd_jwkset_has_kid(const nd_jwkset *s, const char *kid);

/* ---- tokens (jwt.c) ----------------------------------------------------- */
/* What a token must satisfy, and the keys it may be verified with. */
typedef struct nd_jwt_policy {
  uint32_t algs;               /* ND_JWT_BIT(...) set */
  const char *secret;          /* HMAC key; NULL/"" = no HS tokens */
  const nd_jwkset *keys;       /* public keys; NULL = not loaded (yet) */
  const char *issuer;          /* NULL = iss not checked */
  char *const *audience;       /* NULL-terminated; NULL = aud not checked */
  int64_t max_lifetime_s;      /* exp - iat (or exp - now); 0 = no limit */
  int64_t leeway_s;            /* clock skew allowed on exp, nbf, iat */
} nd_jwt_policy;

/* nd_jwt_verify_policy: the token names a public key the set does not
 * hold (or no set is loaded yet): a JWKS refresh may help. */
#define ND_JWT_NO_KEY (-2)
#define ND_JWT_KID_MAX 256

/* Verifies a compact JWS token against `p` at time `now` (seconds); copies
 * `sub` into subbuf.  0, -1 (refused, *why set) or ND_JWT_NO_KEY. */
int nd_jwt_verify_policy(const char *token, const nd_jwt_policy *p, int64_t now, char *subbuf,
                         size_t sublen, const char **why);
/* Reads the header only (no verification): alg (ND_JWT_*, -1 if unknown)
 * and kid (copied to kidbuf, "" when absent).  0, or -1 when the header
 * is malformed or the kid too long. */
int nd_jwt_peek(const char *token, int *alg, char *kidbuf, size_t kidlen);

#endif
