/* Unit tests of the webpush cryptography: the RFC 8291 appendix A vector
 * byte for byte, the VAPID JWT checked with OpenSSL's verifier, p256dh
 * validation, endpoint origins, and the VAPID key file.  The end-to-end
 * check against an independent implementation (Python's http_ece and
 * cryptography) is tests/integration/test_webpush.py. */
#include <check.h>
#include <jansson.h>
#include <openssl/ec.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pc_b64.h"
#include "wp_crypto.h"

static size_t unb64(const char *s, unsigned char *out, size_t cap) {
  long n = pc_b64url_decode(s, strlen(s), out, cap);
  ck_assert_int_ge(n, 0);
  return (size_t)n;
}

/* RFC 8291 section 5 / appendix A. */
static const char AS_PRIVATE[] = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
static const char AS_PUBLIC[] =
    "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
static const char UA_PUBLIC[] =
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
static const char SALT[] = "DGv6ra1nlYgDCS1FRnbzlw";
static const char AUTH[] = "BTBZMqHH6r4Tts7J_aSIgg";
static const char PLAINTEXT[] = "When I grow up, I want to be a watermelon";
static const char EXPECTED[] =
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6T"
    "lzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4"
    "a-fN";

START_TEST(rfc8291_vector) {
  unsigned char d[32], ua[WP_POINT_LEN], salt[WP_SALT_LEN], auth[WP_AUTH_LEN];
  ck_assert_uint_eq(unb64(AS_PRIVATE, d, sizeof d), 32);
  ck_assert_uint_eq(unb64(UA_PUBLIC, ua, sizeof ua), WP_POINT_LEN);
  ck_assert_uint_eq(unb64(SALT, salt, sizeof salt), WP_SALT_LEN);
  ck_assert_uint_eq(unb64(AUTH, auth, sizeof auth), WP_AUTH_LEN);
  EVP_PKEY *as = wp_key_from_scalar(d);
  ck_assert_ptr_nonnull(as);
  pc_buf out, text;
  pc_buf_init(&out);
  pc_buf_init(&text);
  ck_assert_int_eq(
      wp_ece_encrypt_with(ua, auth, as, salt, PLAINTEXT, sizeof PLAINTEXT - 1, &out), 0);
  ck_assert_uint_eq(out.len, WP_ECE_OVERHEAD + sizeof PLAINTEXT - 1);
  pc_b64url_put(&text, out.data, out.len);
  ck_assert_str_eq(pc_buf_cstr(&text), EXPECTED);
  /* A fresh key and salt: same length, different bytes. */
  pc_buf again;
  pc_buf_init(&again);
  ck_assert_int_eq(wp_ece_encrypt(ua, auth, PLAINTEXT, sizeof PLAINTEXT - 1, &again), 0);
  ck_assert_uint_eq(again.len, out.len);
  ck_assert(memcmp(again.data, out.data, out.len) != 0);
  /* One record only. */
  static char big[WP_ECE_MAX_PLAINTEXT + 1];
  pc_buf_reset(&again);
  ck_assert_int_eq(wp_ece_encrypt(ua, auth, big, sizeof big, &again), -1);
  ck_assert_int_eq(wp_ece_encrypt(ua, auth, big, sizeof big - 1, &again), 0);
  ck_assert_uint_eq(again.len, WP_ECE_HEADER_LEN + WP_RS);
  pc_buf_free(&again);
  pc_buf_free(&out);
  pc_buf_free(&text);
  EVP_PKEY_free(as);
}
END_TEST

START_TEST(p256dh_validation) {
  unsigned char p[WP_POINT_LEN];
  unb64(UA_PUBLIC, p, sizeof p);
  ck_assert(wp_point_valid(p, sizeof p));
  ck_assert(!wp_point_valid(p, sizeof p - 1));
  p[64] ^= 1; /* Y no longer matches X */
  ck_assert(!wp_point_valid(p, sizeof p));
  p[64] ^= 1;
  p[0] = 0x02; /* compressed form */
  ck_assert(!wp_point_valid(p, sizeof p));
  memset(p, 0, sizeof p);
  p[0] = 0x04;
  ck_assert(!wp_point_valid(p, sizeof p));
  memset(p + 1, 0xff, sizeof p - 1); /* coordinates past the field prime */
  ck_assert(!wp_point_valid(p, sizeof p));
}
END_TEST

START_TEST(origins) {
  static const char *const ok[][2] = {
      {"https://fcm.googleapis.com/fcm/send/abc:def", "https://fcm.googleapis.com"},
      {"HTTPS://Updates.Push.Services.Mozilla.com/wpush/v2/x", "https://updates.push.services.mozilla.com"},
      {"https://push.example.net:443/p", "https://push.example.net"},
      {"https://push.example.net:8443/p?x=1", "https://push.example.net:8443"},
      {"http://127.0.0.1:8080/push/1", "http://127.0.0.1:8080"},
      {"http://127.0.0.1:80", "http://127.0.0.1"},
      {"https://[::1]:9000/x", "https://[::1]:9000"},
      {"https://h#frag", "https://h"},
  };
  char out[256];
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    ck_assert_int_eq(wp_url_origin(ok[i][0], out, sizeof out), 0);
    ck_assert_str_eq(out, ok[i][1]);
  }
  static const char *const bad[] = {
      "ftp://h/x", "https:///x", "https://user@h/x", "https://h:/x", "https://h:99999999/x",
      "https://h:x/", "https://h/a b", "https://h/\r\nX: y", "https://[::1/x", "//h/x", "",
      "https://h:1:2/", "https://[::1]x/",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(wp_url_origin(bad[i], out, sizeof out) < 0, "accepted %s", bad[i]);
  ck_assert_int_lt(wp_url_origin("https://a-rather-long-host.example/x", out, 10), 0);
}
END_TEST

/* Splits "vapid t=<jwt>, k=<key>" and checks the JWT with OpenSSL. */
static void verify_header(const char *hdr, const wp_vapid *v, const char *aud, int64_t exp) {
  ck_assert(strncmp(hdr, "vapid t=", 8) == 0);
  const char *jwt = hdr + 8, *comma = strstr(jwt, ", k=");
  ck_assert_ptr_nonnull(comma);
  ck_assert_str_eq(comma + 4, v->pub_b64);
  const char *dot1 = strchr(jwt, '.'), *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
  ck_assert_ptr_nonnull(dot2);
  unsigned char raw[64], claims[512], head[128];
  ck_assert_int_eq(pc_b64url_decode(dot2 + 1, (size_t)(comma - dot2 - 1), raw, sizeof raw), 64);
  long hl = pc_b64url_decode(jwt, (size_t)(dot1 - jwt), head, sizeof head);
  long cl = pc_b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), claims, sizeof claims);
  ck_assert_int_gt(hl, 0);
  ck_assert_int_gt(cl, 0);
  json_t *h = json_loadb((const char *)head, (size_t)hl, 0, NULL);
  json_t *c = json_loadb((const char *)claims, (size_t)cl, 0, NULL);
  ck_assert_str_eq(json_string_value(json_object_get(h, "alg")), "ES256");
  ck_assert_str_eq(json_string_value(json_object_get(c, "aud")), aud);
  ck_assert_int_eq(json_integer_value(json_object_get(c, "exp")), exp);
  ck_assert_str_eq(json_string_value(json_object_get(c, "sub")), "mailto:ops@example.com");
  json_decref(h);
  json_decref(c);
  /* raw r||s back to DER for EVP_DigestVerify. */
  ECDSA_SIG *sig = ECDSA_SIG_new();
  ck_assert_int_eq(ECDSA_SIG_set0(sig, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL)), 1);
  unsigned char *der = NULL;
  int derlen = i2d_ECDSA_SIG(sig, &der);
  ck_assert_int_gt(derlen, 0);
  EVP_MD_CTX *m = EVP_MD_CTX_new();
  ck_assert_int_eq(EVP_DigestVerifyInit_ex(m, NULL, "SHA256", NULL, NULL, v->key, NULL), 1);
  ck_assert_int_eq(EVP_DigestVerify(m, der, (size_t)derlen, (const unsigned char *)jwt,
                                    (size_t)(dot2 - jwt)),
                   1);
  EVP_MD_CTX_free(m);
  OPENSSL_free(der);
  ECDSA_SIG_free(sig);
}

START_TEST(vapid_keys_and_jwt) {
  char dir[] = "/tmp/wp_unit_XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char pem[256];
  snprintf(pem, sizeof pem, "%s/vapid.pem", dir);
  char err[256];
  int created = 0;
  wp_vapid a, b, c;
  /* Generated once, 0600, then read back. */
  ck_assert_int_eq(wp_vapid_load("", pem, &a, &created, err, sizeof err), 0);
  ck_assert_int_eq(created, 1);
  struct stat st;
  ck_assert_int_eq(stat(pem, &st), 0);
  ck_assert_int_eq(st.st_mode & 0777, 0600);
  ck_assert_int_eq(wp_vapid_load("", pem, &b, &created, err, sizeof err), 0);
  ck_assert_int_eq(created, 0);
  ck_assert_str_eq(a.pub_b64, b.pub_b64);
  ck_assert_uint_eq(strlen(a.pub_b64), 87);
  /* The configured path, and a raw scalar (the RFC's key). */
  wp_vapid_free(&b);
  ck_assert_int_eq(wp_vapid_load(pem, "/nonexistent/x.pem", &b, &created, err, sizeof err), 0);
  ck_assert_str_eq(a.pub_b64, b.pub_b64);
  ck_assert_int_eq(wp_vapid_load(AS_PRIVATE, pem, &c, &created, err, sizeof err), 0);
  ck_assert_str_eq(c.pub_b64, AS_PUBLIC);
  wp_vapid d;
  ck_assert_int_eq(wp_vapid_load("not-a-key", pem, &d, &created, err, sizeof err), -1);

  pc_buf h;
  pc_buf_init(&h);
  ck_assert_int_eq(wp_vapid_header(&a, "https://push.example.net", 1900000000,
                                   "mailto:ops@example.com", &h), 0);
  verify_header(pc_buf_cstr(&h), &a, "https://push.example.net", 1900000000);
  pc_buf_reset(&h);
  ck_assert_int_eq(wp_vapid_header(&c, "http://127.0.0.1:9", 1, "mailto:ops@example.com", &h), 0);
  verify_header(pc_buf_cstr(&h), &c, "http://127.0.0.1:9", 1);
  pc_buf_free(&h);
  wp_vapid_free(&a);
  wp_vapid_free(&b);
  wp_vapid_free(&c);
  unlink(pem);
  rmdir(dir);
}
END_TEST

int main(void) {
  Suite *s = suite_create("webpush");
  TCase *t = tcase_create("crypto");
  tcase_set_timeout(t, 30);
  tcase_add_test(t, rfc8291_vector);
  tcase_add_test(t, p256dh_validation);
  tcase_add_test(t, origins);
  tcase_add_test(t, vapid_keys_and_jwt);
  suite_add_tcase(s, t);
  SRunner *r = srunner_create(s);
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
