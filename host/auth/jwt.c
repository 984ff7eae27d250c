/* JSON Web Tokens (RFC 7519, JWS compact form RFC 7515): verification of
 * HS256/384/512, RS256/384/512, ES256/384 and EdDSA (Ed25519) with OpenSSL
 * 3 EVP, the claim checks, and HS256 signing.
 *
 * Algorithm confusion is impossible by construction: the header's alg
 * picks the key source (HMAC algorithms only ever use the configured
 * secret, the others only public keys whose type fits the algorithm), and
 * "none" is not an algorithm here. */
#include "auth/auth.h"
#include "auth/jwt_internal.h"

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

typedef struct alg_info {
  const char *name;
  const char *md;       /* digest name; NULL for EdDSA (pure) */
  size_t ec_half;       /* ES*: bytes of r (and of s) in the JOSE signature */
} alg_info;

static const alg_info ALGS[ND_JWT_NALGS] = {
    [ND_JWT_HS256] = {"HS256", "SHA256", 0}, [ND_JWT_HS384] = {"HS384", "SHA384", 0},
    [ND_JWT_HS512] = {"HS512", "SHA512", 0}, [ND_JWT_RS256] = {"RS256", "SHA256", 0},
    [ND_JWT_RS384] = {"RS384", "SHA384", 0}, [ND_JWT_RS512] = {"RS512", "SHA512", 0},
    [ND_JWT_ES256] = {"ES256", "SHA256", 32}, [ND_JWT_ES384] = {"ES384", "SHA384", 48},
    [ND_JWT_EDDSA] = {"EdDSA", NULL, 0},
};

int nd_jwt_alg_from_name(const char *name) {
  for (int i = 0; name && i < ND_JWT_NALGS; i++)
    if (strcmp(ALGS[i].name, name) == 0) return i;
  return -1;
}

const char *nd_jwt_alg_name(int alg) {
  return alg >= 0 && alg < ND_JWT_NALGS ? ALGS[alg].name : "?";
}

const char *nd_jwt_alg_names(void) {
  return "HS256, HS384, HS512, RS256, RS384, RS512, ES256, ES384, EdDSA";
}

static json_t *decode_json_part(const char *s, size_t n) {
  size_t len = 0;
  unsigned char *raw = nd_b64url_decode(s, n, &len);
  if (!raw) return NULL;
  json_t *j = json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, NULL);
  free(raw);
  if (j && !json_is_object(j)) {
    json_decref(j);
    return NULL;
  }
  return j;
}

/* The three parts' boundaries; -1 unless exactly three non-empty parts
 * (the signature part may not be empty either: no unsecured JWS). */
static int split(const char *token, const char **d1, const char **d2) {
  *d1 = strchr(token, '.');
  *d2 = *d1 ? strchr(*d1 + 1, '.') : NULL;
  if (!*d1 || !*d2 || strchr(*d2 + 1, '.') || *d1 == token || *d2 == *d1 + 1 || (*d2)[1] == '\0')
    return -1;
  return 0;
}

typedef struct header {
  int alg;
  char kid[ND_JWT_KID_MAX + 1];
  int has_kid;
} header;

static int parse_header(const char *s, size_t n, header *out, const char **why) {
  json_t *hdr = decode_json_part(s, n);
  if (!hdr) {
    *why = "malformed token header";
    return -1;
  }
  int rc = -1;
  json_t *alg = json_object_get(hdr, "alg");
  json_t *kid = json_object_get(hdr, "kid");
  out->alg = json_is_string(alg) ? nd_jwt_alg_from_name(json_string_value(alg)) : -1;
  out->has_kid = 0;
  out->kid[0] = '\0';
  if (json_is_string(alg) && strcmp(json_string_value(alg), "none") == 0) {
    *why = "unsigned tokens (alg none) are refused";
  } else if (out->alg < 0) {
    *why = "token algorithm not allowed";
  } else if (json_object_get(hdr, "crit")) {
    /* We implement no header extensions, so any critical one is refused. */
    *why = "token has critical header extensions";
  } else if (kid && (!json_is_string(kid) || json_string_length(kid) > ND_JWT_KID_MAX ||
                     strlen(json_string_value(kid)) != json_string_length(kid))) {
    *why = "token kid is not a valid string";
  } else {
    if (kid) {
      memcpy(out->kid, json_string_value(kid), json_string_length(kid) + 1);
      out->has_kid = 1;
    }
    rc = 0;
  }
  json_decref(hdr);
  return rc;
}

int nd_jwt_peek(const char *token, int *alg, char *kidbuf, size_t kidlen) {
  const char *d1, *d2, *why;
  header h;
  if (!token || split(token, &d1, &d2) < 0 ||
      parse_header(token, (size_t)(d1 - token), &h, &why) < 0 || strlen(h.kid) >= kidlen)
    return -1;
  *alg = h.alg;
  memcpy(kidbuf, h.kid, strlen(h.kid) + 1);
  return 0;
}

/* ---- signatures --------------------------------------------------------- */
static int hmac_ok(int alg, const char *secret, const char *data, size_t len,
                   const unsigned char *sig, size_t siglen) {
  const EVP_MD *md = alg == ND_JWT_HS256   ? EVP_sha256()
                     : alg == ND_JWT_HS384 ? EVP_sha384()
                                           : EVP_sha512();
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int maclen = 0;
  size_t klen = strlen(secret);
  if (klen > INT32_MAX ||
      !HMAC(md, secret, (int)klen, (const unsigned char *)data, len, mac, &maclen))
    return 0;
  return siglen == maclen && CRYPTO_memcmp(sig, mac, maclen) == 0;
}

/* JOSE ECDSA signatures are r || s, fixed width; OpenSSL wants DER.
 * malloc'd DER in *der, or -1 when the width is wrong. */
static int ecdsa_raw_to_der(const unsigned char *sig, size_t siglen, size_t half,
                            unsigned char **der, size_t *derlen) {
  if (siglen != 2 * half) return -1;
  ECDSA_SIG *es = ECDSA_SIG_new();
  BIGNUM *r = BN_bin2bn(sig, (int)half, NULL), *s = BN_bin2bn(sig + half, (int)half, NULL);
  if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return -1;
  }
  *der = NULL;
  int n = i2d_ECDSA_SIG(es, der);
  ECDSA_SIG_free(es);
  if (n <= 0) return -1;
  *derlen = (size_t)n;
  return 0;
}

static int pkey_ok(int alg, EVP_PKEY *key, const char *data, size_t len, const unsigned char *sig,
                   size_t siglen) {
  const alg_info *a = &ALGS[alg];
  unsigned char *der = NULL;
  if (a->ec_half) {
    if (ecdsa_raw_to_der(sig, siglen, a->ec_half, &der, &siglen) < 0) return 0;
    sig = der;
  } else if (alg != ND_JWT_EDDSA && siglen != (size_t)EVP_PKEY_get_size(key)) {
    return 0; /* RSA signatures are exactly the modulus size */
  }
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = ctx && EVP_DigestVerifyInit_ex(ctx, NULL, a->md, NULL, NULL, key, NULL) == 1 &&
           EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)data, len) == 1;
  EVP_MD_CTX_free(ctx);
  OPENSSL_free(der);
  return ok;
}

/* 0 = good signature, -1 refused, ND_JWT_NO_KEY = no key known (yet). */
static int check_signature(const nd_jwt_policy *p, const header *h, const char *data, size_t len,
                           const unsigned char *sig, size_t siglen, const char **why) {
  if (ND_JWT_BIT(h->alg) & ND_JWT_HMAC_ALGS) {
    if (!p->secret || !*p->secret) {
      *why = "token algorithm not allowed";
      return -1;
    }
    if (!hmac_ok(h->alg, p->secret, data, len, sig, siglen)) {
      *why = "bad token signature";
      return -1;
    }
    return 0;
  }
  if (!p->keys) {
    *why = "token signing keys are not available";
    return ND_JWT_NO_KEY;
  }
  int candidates = 0, named = 0;
  for (size_t i = 0; i < p->keys->n; i++) {
    const nd_jwk *k = &p->keys->keys[i];
    if (h->has_kid && (!k->kid || strcmp(k->kid, h->kid) != 0)) continue;
    named = 1;
    if (!nd_jwk_fits(k, h->alg)) continue;
    candidates++;
    if (pkey_ok(h->alg, k->pkey, data, len, sig, siglen)) return 0;
  }
  if (candidates) {
    *why = "bad token signature";
    return -1;
  }
  if (h->has_kid && !named) {
    *why = "unknown token key id";
    return ND_JWT_NO_KEY;
  }
  *why = h->has_kid ? "token key does not fit the token algorithm"
                    : "no key for the token algorithm";
  return -1;
}

/* ---- claims ------------------------------------------------------------- */
/* A NumericDate claim (seconds, integer or real): 1 present, 0 absent, -1
 * present but not a number. */
static int numeric_claim(json_t *claims, const char *name, double *out) {
  json_t *v = json_object_get(claims, name);
  if (!v) return 0;
  if (!json_is_number(v)) return -1;
  *out = json_number_value(v);
  return 1;
}

static int audience_ok(json_t *aud, char *const *want) {
  for (size_t i = 0; want[i]; i++) {
    if (json_is_string(aud) && strcmp(json_string_value(aud), want[i]) == 0) return 1;
    size_t k;
    json_t *v;
    json_array_foreach(aud, k, v) {
      if (json_is_string(v) && strcmp(json_string_value(v), want[i]) == 0) return 1;
    }
  }
  return 0;
}

static int check_times(json_t *claims, const nd_jwt_policy *p, int64_t now, const char **why) {
  double exp, nbf, iat, t = (double)now, skew = (double)p->leeway_s;
  if (numeric_claim(claims, "exp", &exp) != 1) {
    *why = "token has no valid exp";
    return -1;
  }
  if (t >= exp + skew) {
    *why = "token expired";
    return -1;
  }
  int has = numeric_claim(claims, "nbf", &nbf);
  if (has < 0) {
    *why = "token nbf is not a number";
    return -1;
  }
  if (has && t + skew < nbf) {
    *why = "token not valid yet";
    return -1;
  }
  int has_iat = numeric_claim(claims, "iat", &iat);
  if (has_iat < 0) {
    *why = "token iat is not a number";
    return -1;
  }
  if (has_iat && iat > t + skew) {
    *why = "token issued in the future";
    return -1;
  }
  if (p->max_lifetime_s > 0 && exp - (has_iat ? iat : t) > (double)p->max_lifetime_s) {
    *why = "token lifetime exceeds the allowed maximum";
    return -1;
  }
  return 0;
}

static int check_claims(json_t *claims, const nd_jwt_policy *p, int64_t now, char *subbuf,
                        size_t sublen, const char **why) {
  if (check_times(claims, p, now, why) < 0) return -1;
  if (p->issuer) {
    json_t *iss = json_object_get(claims, "iss");
    if (!json_is_string(iss) || strcmp(json_string_value(iss), p->issuer) != 0) {
      *why = "token issuer not accepted";
      return -1;
    }
  }
  if (p->audience && !audience_ok(json_object_get(claims, "aud"), p->audience)) {
    *why = "token audience not accepted";
    return -1;
  }
  json_t *sub = json_object_get(claims, "sub");
  if (!json_is_string(sub) || json_string_length(sub) == 0) {
    *why = "token has no sub";
    return -1;
  }
  size_t slen = json_string_length(sub);
  if (slen >= sublen || memchr(json_string_value(sub), '\0', slen)) {
    *why = "token sub is too long";
    return -1;
  }
  if (subbuf) memcpy(subbuf, json_string_value(sub), slen + 1);
  return 0;
}

int nd_jwt_verify_policy(const char *token, const nd_jwt_policy *p, int64_t now, char *subbuf,
                         size_t sublen, const char **why) {
  const char *dummy;
  if (!why) why = &dummy;
  if (!token || !*token) {
    *why = "missing token";
    return -1;
  }
  const char *d1, *d2;
  if (split(token, &d1, &d2) < 0) {
    *why = "malformed token";
    return -1;
  }
  header h;
  if (parse_header(token, (size_t)(d1 - token), &h, why) < 0) return -1;
  if (!(p->algs & ND_JWT_BIT(h.alg))) {
    *why = "token algorithm not allowed";
    return -1;
  }
  size_t siglen = 0;
  unsigned char *sig = nd_b64url_decode(d2 + 1, strlen(d2 + 1), &siglen);
  if (!sig) {
    *why = "bad token signature";
    return -1;
  }
  int rc = check_signature(p, &h, token, (size_t)(d2 - token), sig, siglen, why);
  free(sig);
  if (rc < 0) return rc;
  json_t *claims = decode_json_part(d1 + 1, (size_t)(d2 - d1 - 1));
  if (!claims) {
    *why = "malformed token claims";
    return -1;
  }
  rc = check_claims(claims, p, now, subbuf, sublen, why);
  json_decref(claims);
  return rc;
}

int nd_jwt_verify(const char *token, const char *secret, int64_t now, char *subbuf, size_t sublen,
                  const char **why) {
  const char *dummy;
  if (!why) why = &dummy;
  if (!secret || !*secret) {
    *why = "no token secret configured";
    return -1;
  }
  nd_jwt_policy p = {.algs = ND_JWT_BIT(ND_JWT_HS256), .secret = secret};
  return nd_jwt_verify_policy(token, &p, now, subbuf, sublen, why) == 0 ? 0 : -1;
}

/* ---- signing ------------------------------------------------------------ */
char *nd_jwt_sign_claims(const char *secret, const json_t *claims) {
  if (!secret || !*secret || !json_is_object(claims)) return NULL;
  static const char hs256_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
  char *payload = json_dumps(claims, JSON_COMPACT);
  if (!payload) return NULL;
  nd_buf b;
  nd_buf_init(&b);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int maclen = 0;
  size_t klen = strlen(secret);
  int ok = klen <= INT32_MAX &&
           nd_b64url_append(&b, (const unsigned char *)hs256_header, sizeof hs256_header - 1) == 0 &&
           nd_buf_puts(&b, ".") == 0 &&
           nd_b64url_append(&b, (const unsigned char *)payload, strlen(payload)) == 0 &&
           HMAC(EVP_sha256(), secret, (int)klen, (const unsigned char *)b.data, b.len, mac,
                &maclen) &&
           nd_buf_puts(&b, ".") == 0 && nd_b64url_append(&b, mac, maclen) == 0;
  free(payload);
  if (!ok) {
    nd_buf_free(&b);
    return NULL;
  }
  return nd_buf_steal(&b, NULL);
}

char *nd_jwt_sign(const char *secret, const char *sub, int64_t exp) {
  if (!secret || !sub) return NULL;
  json_t *claims = json_pack("{s:s, s:I}", "sub", sub, "exp", (json_int_t)exp);
  char *t = nd_jwt_sign_claims(secret, claims);
  json_decref(claims);
  return t;
}
