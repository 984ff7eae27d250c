/* HS256 JWT signing and verification (auth/jwt.c).  The request policies
 * (nd_auth_check) are exercised over real HTTP in test_ws. */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
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
  suite_add_tcase(s, tc);
  return s;
}
