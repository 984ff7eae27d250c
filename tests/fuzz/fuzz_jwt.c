/* Token verification (host/auth: jwt.c, b64url.c, jwk.c).  The first byte
 * picks what the rest is:
 *  0: a compact token, verified against a policy accepting every
 *     algorithm with an HMAC secret and the unit tests' key set (RSA,
 *     P-256, P-384, Ed25519), issuer and audience checked;
 *  1: a header and a claims object (the second byte is the header's
 *     length), signed here with the secret (HS256, HS384 or HS512 from bits
 *     of the first byte) so the claim checks are reached too;
 *  2: a JWKS document for nd_jwkset_parse.
 * A token accepted must have given a non-empty subject without NULs. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "../unit/data/jwt/jwt_vectors.h"
#include "auth/jwt_internal.h"
#include "fuzz.h"

#define SECRET "fuzz-secret"
#define NOW 1700000000

static nd_jwkset keys;
static char *audience[] = {"notifd", "other", NULL};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  size_t skipped = 0;
  const char *why = NULL;
  FUZZ_CHECK(nd_jwkset_parse(JWKS, strlen(JWKS), &keys, &skipped, &why) == 0, "JWKS: %s", why);
  return 0;
}

static void verify(const char *token) {
  nd_jwt_policy p = {.algs = ND_JWT_ALL_ALGS, .secret = SECRET, .keys = &keys,
                     .issuer = "https://idp.test/", .audience = audience,
                     .max_lifetime_s = 3600, .leeway_s = 30};
  char sub[64];
  const char *why = NULL;
  int rc = nd_jwt_verify_policy(token, &p, NOW, sub, sizeof sub, &why);
  if (rc == 0) {
    FUZZ_CHECK(sub[0] != '\0' && strlen(sub) < sizeof sub, "accepted without a subject");
  } else {
    FUZZ_CHECK(rc == -1 || rc == ND_JWT_NO_KEY, "rc %d", rc);
    FUZZ_CHECK(why != NULL, "refused without a reason");
  }
  int alg;
  char kid[ND_JWT_KID_MAX + 1];
  if (nd_jwt_peek(token, &alg, kid, sizeof kid) == 0)
    FUZZ_CHECK(alg >= 0 && alg < ND_JWT_NALGS && strlen(kid) <= ND_JWT_KID_MAX, "peek alg %d",
               alg);
}

/* header.claims.HMAC(header.claims) */
static void sign_and_verify(int which, const uint8_t *hdr, size_t hn, const uint8_t *cl,
                            size_t cn) {
  static const char *const mds[3] = {"SHA256", "SHA384", "SHA512"};
  nd_buf b;
  nd_buf_init(&b);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int maclen = 0;
  int ok = nd_b64url_append(&b, hdr, hn) == 0 && nd_buf_puts(&b, ".") == 0 &&
           nd_b64url_append(&b, cl, cn) == 0 &&
           HMAC(EVP_get_digestbyname(mds[which]), SECRET, (int)strlen(SECRET),
                (const unsigned char *)b.data, b.len, mac, &maclen) &&
           nd_buf_puts(&b, ".") == 0 && nd_b64url_append(&b, mac, maclen) == 0;
  FUZZ_CHECK(ok, "signing failed");
  verify(b.data);
  nd_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int mode = data[0] % 3, which = (data[0] / 3) % 3;
  data++, size--;
  if (mode == 0) {
    char *token = fuzz_copy(data, size, 1);
    verify(token);
    free(token);
  } else if (mode == 1) {
    if (size < 1) return 0;
    size_t hn = data[0] < size - 1 ? data[0] : size - 1;
    sign_and_verify(which, data + 1, hn, data + 1 + hn, size - 1 - hn);
  } else {
    char *doc = fuzz_copy(data, size, 0);
    nd_jwkset set;
    size_t skipped = 0;
    const char *why = NULL;
    if (nd_jwkset_parse(doc, size, &set, &skipped, &why) == 0) nd_jwkset_free(&set);
    else FUZZ_CHECK(why != NULL, "JWKS refused without a reason");
    free(doc);
  }
  return 0;
}
