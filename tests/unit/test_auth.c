/* JWT signing and verification (auth/jwt.c), JWK and JWKS parsing
 * (auth/jwk.c).  Public-key vectors come from PyJWT and python3-cryptography
 * (data/jwt/make_vectors.py).  The request policies (nd_auth_check) are
 * exercised over real HTTP in test_ws and tests/integration/test_auth_jwt.py. */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/jwt_internal.h"
#include "data/jwt/jwt_vectors.h"
#include "nd_test.h"
#include "util/buf.h"

#define SECRET "s3cret-key-for-tests"
#define NOW ((int64_t)1700000000)

static void b64url(nd_buf *b, const void *data, size_t n) {
  static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < n) v |= p[i + 2];
    size_t out = n - i >= 3 ? 4 : n - i + 1;
    for (size_t k = 0; k < out; k++) nd_buf_append(b, &A[(v >> (18 - 6 * k)) & 63], 1);
  }
}

/* A token built independently of nd_jwt_sign: arbitrary header and claims
 * JSON, signed with `secret` (or with `sig` verbatim when non-NULL). */
static char *make_token(const char *header, const char *claims, const char *secret,
                        const char *sig) {
  nd_buf b;
  nd_buf_init(&b);
  b64url(&b, header, strlen(header));
  nd_buf_puts(&b, ".");
  b64url(&b, claims, strlen(claims));
  if (sig) {
    nd_buf_puts(&b, ".");
    nd_buf_puts(&b, sig);
  } else {
    unsigned char mac[32];
    unsigned int ml = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)b.data, b.len, mac,
         &ml);
    nd_buf_puts(&b, ".");
    b64url(&b, mac, ml);
  }
  return nd_buf_steal(&b, NULL);
}

static const char *verify(const char *tok, char *sub, size_t sublen) {
  const char *why = NULL;
  int rc = nd_jwt_verify(tok, SECRET, NOW, sub, sublen, &why);
  if (rc == 0) return NULL;
  ck_assert_ptr_nonnull(why);
  return why;
}

START_TEST(sign_then_verify) {
  char *t = nd_jwt_sign(SECRET, "alice", NOW + 60);
  ck_assert_ptr_nonnull(t);
  ck_assert_ptr_nonnull(strchr(t, '.'));
  ck_assert_ptr_null(strchr(t, '=')); /* unpadded base64url */
  char sub[64] = "";
  ck_assert_ptr_null(verify(t, sub, sizeof sub));
  ck_assert_str_eq(sub, "alice");
  /* Wrong secret */
  const char *why = NULL;
  ck_assert_int_eq(nd_jwt_verify(t, "other", NOW, sub, sizeof sub, &why), -1);
  ck_assert_str_eq(why, "bad token signature");
  free(t);
}
END_TEST

START_TEST(independently_built_token_verifies) {
  char *t = make_token("{\"typ\":\"JWT\",\"alg\":\"HS256\"}",
                       "{\"sub\":\"u-42\",\"exp\":1700000100,\"nbf\":1699999000,\"x\":[1]}",
                       SECRET, NULL);
  char sub[64];
  ck_assert_ptr_null(verify(t, sub, sizeof sub));
  ck_assert_str_eq(sub, "u-42");
  free(t);
}
END_TEST

START_TEST(tampered_signature_or_claims) {
  char *t = nd_jwt_sign(SECRET, "alice", NOW + 60);
  char sub[64];
  size_t n = strlen(t);
  /* Flip one signature character. */
  char *bad = strdup(t);
  bad[n - 2] = bad[n - 2] == 'A' ? 'B' : 'A';
  ck_assert_str_eq(verify(bad, sub, sizeof sub), "bad token signature");
  free(bad);
  /* Claims changed (sub "mallory"), signature of the original kept. */
  const char *sig = strrchr(t, '.') + 1;
  char *forged = make_token("{\"alg\":\"HS256\"}", "{\"sub\":\"mallory\",\"exp\":1700000060}",
                            SECRET, sig);
  ck_assert_str_eq(verify(forged, sub, sizeof sub), "bad token signature");
  free(forged);
  /* Truncated signature */
  char *shortsig = strndup(t, n - 4);
  ck_assert_str_eq(verify(shortsig, sub, sizeof sub), "bad token signature");
  free(shortsig);
  free(t);
}
END_TEST

START_TEST(alg_none_and_others_rejected) {
  char sub[64];
  /* alg none with an empty signature part */
  char *t = make_token("{\"alg\":\"none\"}", "{\"sub\":\"a\",\"exp\":1700000060}", SECRET, "");
  ck_assert_ptr_nonnull(verify(t, sub, sizeof sub));
  free(t);
  /* alg none with a valid-looking signature */
  t = make_token("{\"alg\":\"none\"}", "{\"sub\":\"a\",\"exp\":1700000060}", SECRET, NULL);
  ck_assert_str_eq(verify(t, sub, sizeof sub), "unsigned tokens (alg none) are refused");
  free(t);
  static const char *const algs[] = {"{\"alg\":\"HS512\"}", "{\"alg\":\"hs256\"}",
                                     "{\"alg\":\"RS256\"}", "{}", "{\"alg\":256}"};
  for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
    t = make_token(algs[i], "{\"sub\":\"a\",\"exp\":1700000060}", SECRET, NULL);
    ck_assert_str_eq(verify(t, sub, sizeof sub), "token algorithm not allowed");
    free(t);
  }
  t = make_token("{\"alg\":\"HS256\",\"crit\":[\"b64\"]}", "{\"sub\":\"a\",\"exp\":1700000060}",
                 SECRET, NULL);
  ck_assert_ptr_nonnull(verify(t, sub, sizeof sub));
  free(t);
}
END_TEST

START_TEST(time_claims) {
  char sub[64];
  const char *h = "{\"alg\":\"HS256\"}";
  char *t = make_token(h, "{\"sub\":\"a\",\"exp\":1700000000}", SECRET, NULL); /* exp == now */
  ck_assert_str_eq(verify(t, sub, sizeof sub), "token expired");
  free(t);
  t = make_token(h, "{\"sub\":\"a\",\"exp\":1699999999.5}", SECRET, NULL);
  ck_assert_str_eq(verify(t, sub, sizeof sub), "token expired");
  free(t);
  t = make_token(h, "{\"sub\":\"a\"}", SECRET, NULL); /* exp is required */
  ck_assert_str_eq(verify(t, sub, sizeof sub), "token has no valid exp");
  free(t);
  t = make_token(h, "{\"sub\":\"a\",\"exp\":\"1800000000\"}", SECRET, NULL);
  ck_assert_str_eq(verify(t, sub, sizeof sub), "token has no valid exp");
  free(t);
  t = make_token(h, "{\"sub\":\"a\",\"exp\":1800000000,\"nbf\":1700000001}", SECRET, NULL);
  ck_assert_str_eq(verify(t, sub, sizeof sub), "token not valid yet");
  free(t);
  t = make_token(h, "{\"sub\":\"a\",\"exp\":1800000000,\"nbf\":1700000000}", SECRET, NULL);
  ck_assert_ptr_null(verify(t, sub, sizeof sub));
  free(t);
}
END_TEST

START_TEST(subject_rules) {
  char sub[8];
  const char *h = "{\"alg\":\"HS256\"}";
  char *t = make_token(h, "{\"exp\":1800000000}", SECRET, NULL);
  ck_assert_str_eq(verify(t, sub, sizeof sub), "token has no sub");
  free(t);
  t = make_token(h, "{\"sub\":\"\",\"exp\":1800000000}", SECRET, NULL);
  ck_assert_str_eq(verify(t, sub, sizeof sub), "token has no sub");
  free(t);
  t = make_token(h, "{\"sub\":7,\"exp\":1800000000}", SECRET, NULL);
  ck_assert_str_eq(verify(t, sub, sizeof sub), "token has no sub");
  free(t);
  t = make_token(h, "{\"sub\":\"12345678\",\"exp\":1800000000}", SECRET, NULL);
  ck_assert_str_eq(verify(t, sub, sizeof sub), "token sub is too long");
  free(t);
  t = make_token(h, "{\"sub\":\"1234567\",\"exp\":1800000000}", SECRET, NULL);
  ck_assert_ptr_null(verify(t, sub, sizeof sub));
  ck_assert_str_eq(sub, "1234567");
  free(t);
}
END_TEST

START_TEST(garbage_tokens) {
  char sub[64];
  static const char *const junk[] = {
      "", "abc", "a.b", "a.b.c.d", "..", ".x.y", "x..y", "x.y.",
      "eyJhbGciOiJIUzI1NiJ9.!!!.abc",          /* bad base64url */
      "eyJhbGciOiJIUzI1NiJ9=.e30.abc",         /* padding is not base64url */
      "bm90IGpzb24.e30.abc",                   /* header not JSON */
      "WzFd.e30.abc",                          /* header JSON but not an object */
  };
  for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
    const char *why = NULL;
    ck_assert_msg(nd_jwt_verify(junk[i], SECRET, NOW, sub, sizeof sub, &why) == -1, "%s", junk[i]);
    ck_assert_ptr_nonnull(why);
  }
  /* Claims that are not JSON, correctly signed. */
  char *t = make_token("{\"alg\":\"HS256\"}", "not json", SECRET, NULL);
  ck_assert_str_eq(verify(t, sub, sizeof sub), "malformed token claims");
  free(t);
  const char *why = NULL;
  ck_assert_int_eq(nd_jwt_verify(NULL, SECRET, NOW, sub, sizeof sub, &why), -1);
  char *good = nd_jwt_sign(SECRET, "a", NOW + 5);
  ck_assert_int_eq(nd_jwt_verify(good, "", NOW, sub, sizeof sub, &why), -1);
  ck_assert_int_eq(nd_jwt_verify(good, NULL, NOW, sub, sizeof sub, &why), -1);
  free(good);
}
END_TEST


/* ---- policies: claims ------------------------------------------------------ */
static nd_jwt_policy hs_policy(void) {
  nd_jwt_policy p = {.algs = ND_JWT_HMAC_ALGS, .secret = SECRET};
  return p;
}

static const char *verify_p(const nd_jwt_policy *p, const char *claims) {
  char *t = make_token("{\"alg\":\"HS256\"}", claims, SECRET, NULL);
  char sub[64];
  const char *why = NULL;
  int rc = nd_jwt_verify_policy(t, p, NOW, sub, sizeof sub, &why);
  free(t);
  if (rc == 0) return NULL;
  ck_assert_int_eq(rc, -1);
  ck_assert_ptr_nonnull(why);
  return why;
}

START_TEST(leeway_applies_to_exp_nbf_iat) {
  nd_jwt_policy p = hs_policy();
  p.leeway_s = 30;
  ck_assert_ptr_null(verify_p(&p, "{\"sub\":\"a\",\"exp\":1699999971}"));
  ck_assert_str_eq(verify_p(&p, "{\"sub\":\"a\",\"exp\":1699999970}"), "token expired");
  ck_assert_ptr_null(verify_p(&p, "{\"sub\":\"a\",\"exp\":1800000000,\"nbf\":1700000030}"));
  ck_assert_str_eq(verify_p(&p, "{\"sub\":\"a\",\"exp\":1800000000,\"nbf\":1700000031}"),
                   "token not valid yet");
  ck_assert_ptr_null(verify_p(&p, "{\"sub\":\"a\",\"exp\":1800000000,\"iat\":1700000030}"));
  ck_assert_str_eq(verify_p(&p, "{\"sub\":\"a\",\"exp\":1800000000,\"iat\":1700000031}"),
                   "token issued in the future");
  ck_assert_str_eq(verify_p(&p, "{\"sub\":\"a\",\"exp\":1800000000,\"iat\":\"x\"}"),
                   "token iat is not a number");
}
END_TEST

START_TEST(maximum_lifetime) {
  nd_jwt_policy p = hs_policy();
  p.max_lifetime_s = 3600;
  /* exp - iat */
  ck_assert_ptr_null(verify_p(&p, "{\"sub\":\"a\",\"iat\":1699999000,\"exp\":1700002600}"));
  ck_assert_str_eq(verify_p(&p, "{\"sub\":\"a\",\"iat\":1699999000,\"exp\":1700002601}"),
                   "token lifetime exceeds the allowed maximum");
  /* no iat: exp - now */
  ck_assert_ptr_null(verify_p(&p, "{\"sub\":\"a\",\"exp\":1700003600}"));
  ck_assert_str_eq(verify_p(&p, "{\"sub\":\"a\",\"exp\":1700003601}"),
                   "token lifetime exceeds the allowed maximum");
  p.max_lifetime_s = 0; /* no limit */
  ck_assert_ptr_null(verify_p(&p, "{\"sub\":\"a\",\"exp\":1900000000}"));
}
END_TEST

START_TEST(issuer_and_audience) {
  nd_jwt_policy p = hs_policy();
  char *aud[] = {"api", "notifd", NULL};
  p.issuer = "https://idp/";
  p.audience = aud;
  ck_assert_ptr_null(
      verify_p(&p, "{\"sub\":\"a\",\"exp\":1800000000,\"iss\":\"https://idp/\",\"aud\":\"notifd\"}"));
  ck_assert_ptr_null(verify_p(
      &p, "{\"sub\":\"a\",\"exp\":1800000000,\"iss\":\"https://idp/\",\"aud\":[\"x\",\"api\"]}"));
  ck_assert_str_eq(
      verify_p(&p, "{\"sub\":\"a\",\"exp\":1800000000,\"iss\":\"https://idp/\",\"aud\":[\"x\"]}"),
      "token audience not accepted");
  ck_assert_str_eq(
      verify_p(&p, "{\"sub\":\"a\",\"exp\":1800000000,\"iss\":\"https://idp/\",\"aud\":[]}"),
      "token audience not accepted");
  ck_assert_str_eq(verify_p(&p, "{\"sub\":\"a\",\"exp\":1800000000,\"iss\":\"https://idp/\"}"),
                   "token audience not accepted");
  ck_assert_str_eq(
      verify_p(&p, "{\"sub\":\"a\",\"exp\":1800000000,\"iss\":\"https://idp/\",\"aud\":7}"),
      "token audience not accepted");
  ck_assert_str_eq(
      verify_p(&p, "{\"sub\":\"a\",\"exp\":1800000000,\"iss\":\"https://IDP/\",\"aud\":\"api\"}"),
      "token issuer not accepted");
  ck_assert_str_eq(verify_p(&p, "{\"sub\":\"a\",\"exp\":1800000000,\"aud\":\"api\"}"),
                   "token issuer not accepted");
}
END_TEST

START_TEST(hmac_family_and_allowed_list) {
  nd_jwt_policy p = hs_policy();
  char sub[64];
  const char *why = NULL;
  /* HS384 and HS512, signed independently. */
  static const struct { const char *hdr; const EVP_MD *(*md)(void); } hs[] = {
      {"{\"alg\":\"HS384\"}", EVP_sha384}, {"{\"alg\":\"HS512\"}", EVP_sha512}};
  for (size_t i = 0; i < 2; i++) {
    nd_buf b;
    nd_buf_init(&b);
    b64url(&b, hs[i].hdr, strlen(hs[i].hdr));
    nd_buf_puts(&b, ".");
    const char *c = "{\"sub\":\"h\",\"exp\":1800000000}";
    b64url(&b, c, strlen(c));
    unsigned char mac[64];
    unsigned int ml = 0;
    HMAC(hs[i].md(), SECRET, (int)strlen(SECRET), (const unsigned char *)b.data, b.len, mac, &ml);
    nd_buf_puts(&b, ".");
    b64url(&b, mac, ml);
    ck_assert_int_eq(nd_jwt_verify_policy(b.data, &p, NOW, sub, sizeof sub, &why), 0);
    p.algs = ND_JWT_BIT(ND_JWT_HS256);
    ck_assert_int_eq(nd_jwt_verify_policy(b.data, &p, NOW, sub, sizeof sub, &why), -1);
    ck_assert_str_eq(why, "token algorithm not allowed");
    p.algs = ND_JWT_HMAC_ALGS;
    nd_buf_free(&b);
  }
  /* No secret: HS tokens cannot verify at all. */
  p.secret = NULL;
  ck_assert_str_eq(verify_p(&p, "{\"sub\":\"a\",\"exp\":1800000000}"), "token algorithm not allowed");
}
END_TEST

START_TEST(sign_claims_round_trip) {
  json_t *c = json_pack("{s:s, s:I, s:I, s:s, s:[s]}", "sub", "bob", "iat", (json_int_t)NOW,
                        "exp", (json_int_t)(NOW + 60), "iss", "notifd", "aud", "web");
  char *t = nd_jwt_sign_claims(SECRET, c);
  ck_assert_ptr_nonnull(t);
  nd_jwt_policy p = hs_policy();
  char *aud[] = {"web", NULL};
  p.issuer = "notifd";
  p.audience = aud;
  p.max_lifetime_s = 60;
  char sub[64];
  const char *why = NULL;
  ck_assert_int_eq(nd_jwt_verify_policy(t, &p, NOW, sub, sizeof sub, &why), 0);
  ck_assert_str_eq(sub, "bob");
  free(t);
  ck_assert_ptr_null(nd_jwt_sign_claims("", c));
  ck_assert_ptr_null(nd_jwt_sign_claims(NULL, c));
  json_t *arr = json_array();
  ck_assert_ptr_null(nd_jwt_sign_claims(SECRET, arr));
  json_decref(arr);
  json_decref(c);
}
END_TEST

/* ---- public keys ----------------------------------------------------------- */
static nd_jwkset KS;

static void load_set(void) {
  size_t skipped = 0;
  const char *why = NULL;
  ck_assert_int_eq(nd_jwkset_parse(JWKS, strlen(JWKS), &KS, &skipped, &why), 0);
  ck_assert_uint_eq(KS.n, 5);       /* rsa-1, rsa-any, ec-1, ec-384, ed-1 */
  ck_assert_uint_eq(skipped, 8);    /* oct, enc, weak, off-curve, private, alien, liar, ec-hs */
}

static void free_set(void) { nd_jwkset_free(&KS); }

static int verify_pk(const char *tok, uint32_t algs, const char **why) {
  nd_jwt_policy p = {.algs = algs, .secret = SECRET, .keys = &KS, .issuer = "https://idp.test/",
                     .max_lifetime_s = 3600};
  char *aud[] = {"notifd", NULL};
  p.audience = aud;
  char sub[64] = "";
  int rc = nd_jwt_verify_policy(tok, &p, NOW, sub, sizeof sub, why);
  if (rc == 0) ck_assert_str_eq(sub, "alice");
  return rc;
}

START_TEST(public_key_algorithms_verify) {
  load_set();
  const char *why = NULL;
  static const char *const good[] = {T_RS256, T_RS384, T_RS512, T_ES256, T_ES384, T_EDDSA,
                                     T_RS256_NOKID};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    ck_assert_msg(verify_pk(good[i], ND_JWT_ALL_ALGS, &why) == 0, "%zu: %s", i, why);
  /* Only the listed algorithms. */
  ck_assert_int_eq(verify_pk(T_ES256, ND_JWT_BIT(ND_JWT_RS256), &why), -1);
  ck_assert_str_eq(why, "token algorithm not allowed");
  free_set();
}
END_TEST

START_TEST(public_key_refusals) {
  load_set();
  const char *why = NULL;
  ck_assert_int_eq(verify_pk(T_RS256_UNKNOWN_KID, ND_JWT_ALL_ALGS, &why), ND_JWT_NO_KEY);
  ck_assert_str_eq(why, "unknown token key id");
  /* rsa-1 says alg RS256: an RS384 token may not use it. */
  ck_assert_int_eq(verify_pk(T_RS384_ON_RS256_KEY, ND_JWT_ALL_ALGS, &why), -1);
  ck_assert_str_eq(why, "token key does not fit the token algorithm");
  ck_assert_int_eq(verify_pk(T_ES256_KID_OF_RSA, ND_JWT_ALL_ALGS, &why), -1);
  ck_assert_str_eq(why, "token key does not fit the token algorithm");
  /* JOSE wants raw r||s; a DER signature is refused. */
  ck_assert_int_eq(verify_pk(T_ES256_DER_SIG, ND_JWT_ALL_ALGS, &why), -1);
  ck_assert_str_eq(why, "bad token signature");
  ck_assert_int_eq(verify_pk(T_EDDSA_OTHER_KEY, ND_JWT_ALL_ALGS, &why), -1);
  ck_assert_str_eq(why, "bad token signature");
  /* One flipped bit in each signature. */
  static const char *const good[] = {T_RS256, T_ES384, T_EDDSA};
  for (size_t i = 0; i < 3; i++) {
    char *t = strdup(good[i]);
    char *sig = strrchr(t, '.') + 1;
    sig[3] = sig[3] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(verify_pk(t, ND_JWT_ALL_ALGS, &why), -1);
    ck_assert_str_eq(why, "bad token signature");
    free(t);
  }
  /* No key set loaded yet: the caller may wait for one. */
  nd_jwt_policy p = {.algs = ND_JWT_ALL_ALGS};
  ck_assert_int_eq(nd_jwt_verify_policy(T_RS256, &p, NOW, NULL, 64, &why), ND_JWT_NO_KEY);
  /* An HS256 token never reaches the public keys, whatever its kid. */
  char *hs = make_token("{\"alg\":\"HS256\",\"kid\":\"rsa-1\"}",
                        "{\"sub\":\"alice\",\"exp\":1700000060,\"iss\":\"https://idp.test/\","
                        "\"aud\":\"notifd\"}",
                        "not-the-secret", NULL);
  ck_assert_int_eq(verify_pk(hs, ND_JWT_ALL_ALGS, &why), -1);
  ck_assert_str_eq(why, "bad token signature");
  free(hs);
  free_set();
}
END_TEST

START_TEST(peek_header) {
  int alg = -2;
  char kid[ND_JWT_KID_MAX + 1];
  ck_assert_int_eq(nd_jwt_peek(T_ES384, &alg, kid, sizeof kid), 0);
  ck_assert_int_eq(alg, ND_JWT_ES384);
  ck_assert_str_eq(kid, "ec-384");
  ck_assert_int_eq(nd_jwt_peek(T_RS256_NOKID, &alg, kid, sizeof kid), 0);
  ck_assert_str_eq(kid, "");
  ck_assert_int_eq(nd_jwt_peek("x.y", &alg, kid, sizeof kid), -1);
  char *t = make_token("{\"alg\":\"RS256\",\"kid\":7}", "{}", SECRET, NULL);
  ck_assert_int_eq(nd_jwt_peek(t, &alg, kid, sizeof kid), -1);
  free(t);
}
END_TEST

START_TEST(jwk_errors) {
  static const struct { const char *jwk, *why; } bad[] = {
      {"{}", "not a JWK (no kty)"},
      {"{\"kty\":\"RSA\",\"n\":\"AQAB\"}", "RSA key without valid n and e"},
      {"{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}", "RSA key size outside 2048 to 16384 bits"},
      {"{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"AA\",\"y\":\"AA\"}",
       "EC key on an unsupported curve (P-256 and P-384 are)"},
      {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}", "EC key without valid x and y"},
      {"{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"AA\"}", "OKP key on an unsupported curve (Ed25519 is)"},
      {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AA\"}", "Ed25519 key without a valid x"},
      {"{\"kty\":\"oct\",\"k\":\"AA\"}", "JWK holds private or symmetric key material"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_t *j = json_loads(bad[i].jwk, 0, NULL);
    ck_assert_ptr_nonnull(j);
    int kind = 0;
    const char *why = NULL;
    ck_assert_ptr_null(nd_jwk_to_pkey(j, &kind, &why));
    ck_assert_str_eq(why, bad[i].why);
    json_decref(j);
  }
  nd_jwkset s;
  size_t skipped;
  const char *why;
  ck_assert_int_eq(nd_jwkset_parse("{\"keys\":{}}", 11, &s, &skipped, &why), -1);
  ck_assert_int_eq(nd_jwkset_parse("[]", 2, &s, &skipped, &why), -1);
  ck_assert_int_eq(nd_jwkset_parse("{\"keys\":[]}", 11, &s, &skipped, &why), 0);
  ck_assert_uint_eq(s.n, 0);
  nd_jwkset_free(&s);
}
END_TEST

Suite *nd_test_suite(void) {
  Suite *s = suite_create("auth");
  TCase *tc = tcase_create("jwt");
  tcase_add_test(tc, sign_then_verify);
  tcase_add_test(tc, independently_built_token_verifies);
  tcase_add_test(tc, tampered_signature_or_claims);
  tcase_add_test(tc, alg_none_and_others_rejected);
  tcase_add_test(tc, time_claims);
  tcase_add_test(tc, subject_rules);
  tcase_add_test(tc, garbage_tokens);
  tcase_add_test(tc, leeway_applies_to_exp_nbf_iat);
  tcase_add_test(tc, maximum_lifetime);
  tcase_add_test(tc, issuer_and_audience);
  tcase_add_test(tc, hmac_family_and_allowed_list);
  tcase_add_test(tc, sign_claims_round_trip);
  suite_add_tcase(s, tc);
  TCase *pk = tcase_create("public_keys");
  tcase_add_test(pk, public_key_algorithms_verify);
  tcase_add_test(pk, public_key_refusals);
  tcase_add_test(pk, peek_header);
  tcase_add_test(pk, jwk_errors);
  suite_add_tcase(s, pk);
  return s;
}
