/* JSON Web Keys (RFC 7517/7518/8037) -> OpenSSL 3 public keys, built from
 * their members with EVP_PKEY_fromdata (RSA, EC) or
 * EVP_PKEY_new_raw_public_key (Ed25519), and JWKS documents -> key sets. */
#include "auth/jwt_internal.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <stdlib.h>
#include <string.h>

#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 16384
#define MAX_KEYS 256

/* A base64url member -> malloc'd bytes; NULL when absent or malformed. */
static unsigned char *member_bytes(const json_t *jwk, const char *name, size_t *len) {
  json_t *v = json_object_get(jwk, name);
  if (!json_is_string(v)) return NULL;
  return nd_b64url_decode(json_string_value(v), json_string_length(v), len);
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld) {
  OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
  EVP_PKEY *key = NULL;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
      EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
    key = NULL;
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  if (!key) return NULL;
  /* fromdata takes the numbers as given: make OpenSSL check them (e.g. an
   * EC point that is not on the curve). */
  EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
  int ok = check && EVP_PKEY_public_check(check) == 1;
  EVP_PKEY_CTX_free(check);
  if (!ok) {
    EVP_PKEY_free(key);
    return NULL;
  }
  return key;
}

static EVP_PKEY *rsa_key(const json_t *jwk, const char **why) {
  size_t nlen = 0, elen = 0;
  unsigned char *n = member_bytes(jwk, "n", &nlen), *e = member_bytes(jwk, "e", &elen);
  BIGNUM *bn = n && nlen ? BN_bin2bn(n, (int)nlen, NULL) : NULL;
  BIGNUM *be = e && elen && elen <= 8 ? BN_bin2bn(e, (int)elen, NULL) : NULL;
  free(n);
  free(e);
  EVP_PKEY *key = NULL;
  *why = "RSA key without valid n and e";
  if (bn && be) {
    int bits = BN_num_bits(bn);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
      *why = "RSA key size outside 2048 to 16384 bits";
    } else if (bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
               OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be)) {
      key = from_params("RSA", bld);
      if (!key) *why = "RSA key rejected by OpenSSL";
    }
    OSSL_PARAM_BLD_free(bld);
  }
  BN_free(bn);
  BN_free(be);
  return key;
}

static EVP_PKEY *ec_key(const json_t *jwk, int *kind, const char **why) {
  const char *crv = json_string_value(json_object_get(jwk, "crv"));
  size_t coord;
  const char *group;
  if (crv && strcmp(crv, "P-256") == 0) {
    coord = 32, group = "prime256v1", *kind = ND_JWK_P256;
  } else if (crv && strcmp(crv, "P-384") == 0) {
    coord = 48, group = "secp384r1", *kind = ND_JWK_P384;
  } else {
    *why = "EC key on an unsupported curve (P-256 and P-384 are)";
    return NULL;
  }
  size_t xlen = 0, ylen = 0;
  unsigned char *x = member_bytes(jwk, "x", &xlen), *y = member_bytes(jwk, "y", &ylen);
  EVP_PKEY *key = NULL;
  *why = "EC key without valid x and y";
  if (x && y && xlen == coord && ylen == coord) {
    unsigned char point[1 + 2 * 48];
    point[0] = 0x04; /* uncompressed */
    memcpy(point + 1, x, coord);
    memcpy(point + 1 + coord, y, coord);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * coord)) {
      key = from_params("EC", bld);
      if (!key) *why = "EC key rejected by OpenSSL (point not on the curve?)";
    }
    OSSL_PARAM_BLD_free(bld);
  }
  free(x);
  free(y);
  return key;
}

static EVP_PKEY *okp_key(const json_t *jwk, const char **why) {
  const char *crv = json_string_value(json_object_get(jwk, "crv"));
  if (!crv || strcmp(crv, "Ed25519") != 0) {
    *why = "OKP key on an unsupported curve (Ed25519 is)";
    return NULL;
  }
  size_t xlen = 0;
  unsigned char *x = member_bytes(jwk, "x", &xlen);
  EVP_PKEY *key = x && xlen == 32 ? EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, 32)
                                  : NULL;
  free(x);
  if (!key) *why = "Ed25519 key without a valid x";
  return key;
}

EVP_PKEY *nd_jwk_to_pkey(const json_t *jwk, int *kind, const char **why) {
  const char *dummy;
  if (!why) why = &dummy;
  const char *kty = json_string_value(json_object_get(jwk, "kty"));
  if (!json_is_object(jwk) || !kty) {
    *why = "not a JWK (no kty)";
    return NULL;
  }
  if (json_object_get(jwk, "d") || json_object_get(jwk, "k")) {
    /* A private or symmetric key published in a key set is a leak on the
     * provider's side; never use it. */
    *why = "JWK holds private or symmetric key material";
    return NULL;
  }
  if (strcmp(kty, "RSA") == 0) {
    *kind = ND_JWK_RSA;
    return rsa_key(jwk, why);
  }
  if (strcmp(kty, "EC") == 0) return ec_key(jwk, kind, why);
  if (strcmp(kty, "OKP") == 0) {
    *kind = ND_JWK_ED25519;
    return okp_key(jwk, why);
  }
  *why = "unsupported JWK kty";
  return NULL;
}

int nd_jwk_fits(const nd_jwk *k, int alg) {
  if (k->alg >= 0 && k->alg != alg) return 0;
  switch (alg) {
  case ND_JWT_RS256:
  case ND_JWT_RS384:
  case ND_JWT_RS512: return k->kind == ND_JWK_RSA;
  case ND_JWT_ES256: return k->kind == ND_JWK_P256;
  case ND_JWT_ES384: return k->kind == ND_JWK_P384;
  case ND_JWT_EDDSA: return k->kind == ND_JWK_ED25519;
  default: return 0; /* HMAC never uses a public key */
  }
}

int nd_jwkset_has_kid(const nd_jwkset *s, const char *kid) {
  for (size_t i = 0; s && i < s->n; i++)
    if (s->keys[i].kid && strcmp(s->keys[i].kid, kid) == 0) return 1;
  return 0;
}

/* One entry of "keys": 1 stored, 0 skipped, -1 out of memory. */
static int add_key(nd_jwkset *out, const json_t *jwk) {
  json_t *use = json_object_get(jwk, "use"), *alg = json_object_get(jwk, "alg");
  json_t *kid = json_object_get(jwk, "kid");
  if (use && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0)) return 0;
  int a = -1;
  if (alg && (!json_is_string(alg) || (a = nd_jwt_alg_from_name(json_string_value(alg))) < 0 ||
              (ND_JWT_BIT(a) & ND_JWT_HMAC_ALGS)))
    return 0;
  if (kid && (!json_is_string(kid) || json_string_length(kid) > ND_JWT_KID_MAX ||
              strlen(json_string_value(kid)) != json_string_length(kid)))
    return 0;
  int kind = 0;
  const char *why;
  EVP_PKEY *key = nd_jwk_to_pkey(jwk, &kind, &why);
  if (!key) return 0;
  nd_jwk *k = &out->keys[out->n];
  k->kid = kid ? strdup(json_string_value(kid)) : NULL;
  if (kid && !k->kid) {
    EVP_PKEY_free(key);
    return -1;
  }
  k->alg = a;
  k->kind = kind;
  k->pkey = key;
  if (a >= 0 && !nd_jwk_fits(k, a)) { /* e.g. an RSA key claiming ES256 */
    free(k->kid);
    EVP_PKEY_free(key);
    return 0;
  }
  out->n++;
  return 1;
}

int nd_jwkset_parse(const char *text, size_t len, nd_jwkset *out, size_t *skipped,
                    const char **why) {
  memset(out, 0, sizeof *out);
  *skipped = 0;
  json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
  json_t *keys = json_object_get(doc, "keys");
  if (!json_is_array(keys)) {
    json_decref(doc);
    *why = "not a JWKS document (no \"keys\" array)";
    return -1;
  }
  size_t n = json_array_size(keys);
  if (n > MAX_KEYS) {
    json_decref(doc);
    *why = "JWKS document has more than 256 keys";
    return -1;
  }
  out->keys = calloc(n ? n : 1, sizeof *out->keys);
  if (!out->keys) {
    json_decref(doc);
    *why = "out of memory";
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    int rc = add_key(out, json_array_get(keys, i));
    if (rc < 0) {
      json_decref(doc);
      nd_jwkset_free(out);
      *why = "out of memory";
      return -1;
    }
    if (rc == 0) (*skipped)++;
  }
  json_decref(doc);
  return 0;
}

void nd_jwkset_free(nd_jwkset *s) {
  if (!s) return;
  for (size_t i = 0; i < s->n; i++) {
    free(s->keys[i].kid);
    EVP_PKEY_free(s->keys[i].pkey);
  }
  free(s->keys);
  memset(s, 0, sizeof *s);
}
