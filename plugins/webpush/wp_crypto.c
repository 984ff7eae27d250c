#include "wp_crypto.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pc_b64.h"
#include "pc_jenc.h"

/* ---- keys -------------------------------------------------------------- */

EVP_PKEY *wp_key_from_scalar(const unsigned char d[32]) {
  /* An RFC 5915 ECPrivateKey without its optional public key: OpenSSL's
   * decoder computes the public point, which EVP_PKEY_fromdata with only
   * the private scalar would not. */
  unsigned char der[51] = {0x30, 0x31, 0x02, 0x01, 0x01, 0x04, 0x20};
  static const unsigned char curve[] = {0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                        0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
  memcpy(der + 7, d, 32);
  memcpy(der + 39, curve, sizeof curve);
  const unsigned char *p = der;
  EVP_PKEY *k = d2i_PrivateKey(EVP_PKEY_EC, NULL, &p, sizeof der);
  OPENSSL_cleanse(der, sizeof der);
  return k;
}

static int is_p256(EVP_PKEY *k) {
  char group[64] = "";
  if (!EVP_PKEY_is_a(k, "EC") ||
      EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, NULL) <= 0)
    return 0;
  return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

static int public_point(EVP_PKEY *k, unsigned char out[WP_POINT_LEN]) {
  size_t n = 0;
  if (EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, out, WP_POINT_LEN, &n) <= 0)
    return -1;
  return n == WP_POINT_LEN && out[0] == 0x04 ? 0 : -1;
}

static EVP_PKEY *key_from_point(const unsigned char *p, size_t n) {
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)p, n),
      OSSL_PARAM_construct_end()};
  EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
  EVP_PKEY *k = NULL;
  /* The import decodes the point and refuses one that is not on the curve. */
  if (!c || EVP_PKEY_fromdata_init(c) <= 0 ||
      EVP_PKEY_fromdata(c, &k, EVP_PKEY_PUBLIC_KEY, params) <= 0)
    k = NULL;
  EVP_PKEY_CTX_free(c);
  return k;
}

int wp_point_valid(const unsigned char *p, size_t n) {
  if (n != WP_POINT_LEN || p[0] != 0x04) return 0;
  EVP_PKEY *k = key_from_point(p, n);
  if (!k) return 0;
  EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
  int ok = c && EVP_PKEY_public_check(c) > 0;
  EVP_PKEY_CTX_free(c);
  EVP_PKEY_free(k);
  return ok;
}

static EVP_PKEY *read_pem(const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return NULL;
  }
  EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
  fclose(f);
  if (!k) snprintf(err, errlen, "%s: not a PEM private key", path);
  return k;
}

/* Writes the new key next to `path` and renames it into place, so that a
 * crash never leaves a half-written key that the next start would refuse. */
static int write_pem(EVP_PKEY *k, const char *path, char *err, size_t errlen) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  unlink(tmp);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!f) {
    snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  int ok = PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;
  ok = fflush(f) == 0 && ok && fsync(fileno(f)) == 0;
  ok = fclose(f) == 0 && ok;
  if (!ok || rename(tmp, path) < 0) {
    snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    unlink(tmp);
    return -1;
  }
  return 0;
}

int wp_vapid_load(const char *spec, const char *default_path, wp_vapid *out, int *created,
                  char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  *created = 0;
  struct stat st;
  if (spec && *spec && stat(spec, &st) == 0) {
    out->key = read_pem(spec, err, errlen);
  } else if (spec && *spec) {
    unsigned char d[32];
    if (pc_b64url_decode(spec, strlen(spec), d, sizeof d) != 32 ||
        !(out->key = wp_key_from_scalar(d))) {
      snprintf(err, errlen,
               "vapid_private_key: neither a readable PEM file nor the base64url of a 32-byte "
               "P-256 private key");
      OPENSSL_cleanse(d, sizeof d);
      return -1;
    }
    OPENSSL_cleanse(d, sizeof d);
  } else if (stat(default_path, &st) == 0) {
    out->key = read_pem(default_path, err, errlen);
  } else {
    out->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!out->key) {
      snprintf(err, errlen, "cannot generate a P-256 key");
      return -1;
    }
    if (write_pem(out->key, default_path, err, errlen) < 0) {
      wp_vapid_free(out);
      return -1;
    }
    *created = 1;
  }
  if (!out->key) return -1;
  if (!is_p256(out->key) || public_point(out->key, out->pub) < 0) {
    snprintf(err, errlen, "the VAPID key must be an EC P-256 private key");
    wp_vapid_free(out);
    return -1;
  }
  pc_buf b;
  pc_buf_init(&b);
  pc_b64url_put(&b, out->pub, sizeof out->pub);
  if (b.oom || b.len >= sizeof out->pub_b64) {
    pc_buf_free(&b);
    snprintf(err, errlen, "out of memory");
    wp_vapid_free(out);
    return -1;
  }
  memcpy(out->pub_b64, b.data, b.len + 1);
  pc_buf_free(&b);
  return 0;
}

void wp_vapid_free(wp_vapid *v) {
  EVP_PKEY_free(v->key);
  v->key = NULL;
}

/* ---- VAPID JWT ----------------------------------------------------------- */

/* ES256 over data: the raw 64-byte r||s JWS wants, not OpenSSL's DER. */
static int es256_sign(EVP_PKEY *k, const void *data, size_t len, unsigned char raw[64]) {
  unsigned char der[80];
  size_t derlen = sizeof der;
  EVP_MD_CTX *m = EVP_MD_CTX_new();
  int ok = m && EVP_DigestSignInit_ex(m, NULL, "SHA256", NULL, NULL, k, NULL) > 0 &&
           EVP_DigestSign(m, der, &derlen, data, len) > 0;
  EVP_MD_CTX_free(m);
  if (!ok) return -1;
  const unsigned char *p = der;
  ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
  if (!sig) return -1;
  const BIGNUM *r, *s;
  ECDSA_SIG_get0(sig, &r, &s);
  ok = BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32;
  ECDSA_SIG_free(sig);
  return ok ? 0 : -1;
}

int wp_vapid_header(const wp_vapid *v, const char *aud, int64_t exp, const char *sub,
                    pc_buf *out) {
  static const char header[] = "{\"typ\":\"JWT\",\"alg\":\"ES256\"}";
  pc_buf claims, input;
  pc_buf_init(&claims);
  pc_buf_init(&input);
  pc_buf_puts(&claims, "{\"aud\":");
  pc_json_put_cstring(&claims, aud);
  pc_buf_puts(&claims, ",\"exp\":");
  pc_json_put_int(&claims, exp);
  pc_buf_puts(&claims, ",\"sub\":");
  pc_json_put_cstring(&claims, sub);
  pc_buf_putc(&claims, '}');
  pc_b64url_put(&input, header, sizeof header - 1);
  pc_buf_putc(&input, '.');
  pc_b64url_put(&input, claims.data, claims.len);
  unsigned char sig[64];
  int rc = -1;
  if (!claims.oom && !input.oom && es256_sign(v->key, input.data, input.len, sig) == 0) {
    pc_buf_puts(out, "vapid t=");
    pc_buf_put(out, input.data, input.len);
    pc_buf_putc(out, '.');
    pc_b64url_put(out, sig, sizeof sig);
    pc_buf_puts(out, ", k=");
    pc_buf_puts(out, v->pub_b64);
    rc = out->oom ? -1 : 0;
  }
  pc_buf_free(&claims);
  pc_buf_free(&input);
  return rc;
}

/* ---- URLs ---------------------------------------------------------------- */

int wp_url_origin(const char *url, char *out, size_t outlen) {
  size_t skip;
  const char *scheme, *default_port;
  if (strncasecmp(url, "https://", 8) == 0) {
    skip = 8, scheme = "https", default_port = "443";
  } else if (strncasecmp(url, "http://", 7) == 0) {
    skip = 7, scheme = "http", default_port = "80";
  } else {
    return -1;
  }
  for (const unsigned char *c = (const unsigned char *)url; *c; c++)
    if (*c <= 0x20 || *c >= 0x7f) return -1; /* a URL on the wire is printable ASCII */
  const char *host = url + skip;
  size_t alen = strcspn(host, "/?#");
  if (alen == 0 || memchr(host, '@', alen)) return -1;
  /* The port: after the ':' that follows the host (an IPv6 literal is
   * bracketed). */
  size_t hlen = alen;
  const char *port = NULL;
  const char *rb = host[0] == '[' ? memchr(host, ']', alen) : NULL;
  if (host[0] == '[' && !rb) return -1;
  const char *from = rb ? rb : host;
  const char *colon = memchr(from, ':', alen - (size_t)(from - host));
  if (colon) {
    hlen = (size_t)(colon - host);
    port = colon + 1;
    size_t plen = alen - hlen - 1;
    if (plen == 0 || plen > 5) return -1;
    for (size_t i = 0; i < plen; i++)
      if (!isdigit((unsigned char)port[i])) return -1;
    if (plen == strlen(default_port) && memcmp(port, default_port, plen) == 0) port = NULL;
  } else if (rb && rb != host + alen - 1) {
    return -1;
  }
  if (hlen == 0) return -1;
  int n = snprintf(out, outlen, "%s://%.*s%s%.*s", scheme, (int)hlen, host, port ? ":" : "",
                   port ? (int)(alen - hlen - 1) : 0, port ? port : "");
  if (n < 0 || (size_t)n >= outlen) return -1;
  char *h = out + strlen(scheme) + 3;
  for (size_t i = 0; i < hlen; i++) h[i] = (char)tolower((unsigned char)h[i]);
  return 0;
}

/* ---- aes128gcm (RFC 8291 + RFC 8188) ------------------------------------- */

static int hkdf(const unsigned char *salt, size_t saltlen, const unsigned char *ikm, size_t ikmlen,
                const void *info, size_t infolen, unsigned char *out, size_t outlen) {
  EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
  EVP_KDF_CTX *c = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
  EVP_KDF_free(kdf);
  OSSL_PARAM p[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikmlen),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, saltlen),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, infolen),
      OSSL_PARAM_construct_end()};
  int ok = c && EVP_KDF_derive(c, out, outlen, p) > 0;
  EVP_KDF_CTX_free(c);
  return ok ? 0 : -1;
}

static int ecdh(EVP_PKEY *mine, EVP_PKEY *peer, unsigned char out[32]) {
  EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, mine, NULL);
  size_t len = 32;
  int ok = c && EVP_PKEY_derive_init(c) > 0 && EVP_PKEY_derive_set_peer(c, peer) > 0 &&
           EVP_PKEY_derive(c, out, &len) > 0 && len == 32;
  EVP_PKEY_CTX_free(c);
  return ok ? 0 : -1;
}

/* The record: AES-128-GCM of plain || 0x02 (the last record's padding
 * delimiter, no padding bytes), then the tag. */
static int seal(const unsigned char cek[16], const unsigned char nonce[12], const void *plain,
                size_t len, pc_buf *out) {
  unsigned char *ct = malloc(len + 1 + 16);
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int n1 = 0, n2 = 0, n3 = 0;
  static const unsigned char delim = 0x02;
  int ok = ct && c && EVP_EncryptInit_ex2(c, EVP_aes_128_gcm(), cek, nonce, NULL) > 0 &&
           EVP_EncryptUpdate(c, ct, &n1, plain, (int)len) > 0 &&
           EVP_EncryptUpdate(c, ct + n1, &n2, &delim, 1) > 0 &&
           EVP_EncryptFinal_ex(c, ct + n1 + n2, &n3) > 0 &&
           EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, ct + n1 + n2 + n3) > 0;
  if (ok) pc_buf_put(out, ct, (size_t)(n1 + n2 + n3) + 16);
  EVP_CIPHER_CTX_free(c);
  free(ct);
  return ok && !out->oom ? 0 : -1;
}

int wp_ece_encrypt_with(const unsigned char ua_pub[WP_POINT_LEN],
                        const unsigned char auth[WP_AUTH_LEN], EVP_PKEY *as_key,
                        const unsigned char salt[WP_SALT_LEN], const void *plain, size_t len,
                        pc_buf *out) {
  if (len > WP_ECE_MAX_PLAINTEXT) return -1;
  unsigned char as_pub[WP_POINT_LEN], secret[32], ikm[32], prk_info[14 + 2 * WP_POINT_LEN];
  unsigned char cek[16], nonce[12];
  static const char key_label[] = "WebPush: info"; /* + its NUL */
  static const char cek_info[] = "Content-Encoding: aes128gcm";
  static const char nonce_info[] = "Content-Encoding: nonce";
  EVP_PKEY *peer = key_from_point(ua_pub, WP_POINT_LEN);
  int rc = -1;
  if (!peer || public_point(as_key, as_pub) < 0 || ecdh(as_key, peer, secret) < 0) goto done;
  /* key_info = "WebPush: info" || 0x00 || ua_public || as_public */
  memcpy(prk_info, key_label, sizeof key_label);
  memcpy(prk_info + sizeof key_label, ua_pub, WP_POINT_LEN);
  memcpy(prk_info + sizeof key_label + WP_POINT_LEN, as_pub, WP_POINT_LEN);
  /* IKM = HKDF(salt = auth_secret, ikm = ecdh_secret, key_info, 32); then
   * CEK and NONCE from HKDF(salt, IKM, "...\0"); the NULs are in sizeof. */
  if (hkdf(auth, WP_AUTH_LEN, secret, sizeof secret, prk_info, sizeof prk_info, ikm, sizeof ikm) <
          0 ||
      hkdf(salt, WP_SALT_LEN, ikm, sizeof ikm, cek_info, sizeof cek_info, cek, sizeof cek) < 0 ||
      hkdf(salt, WP_SALT_LEN, ikm, sizeof ikm, nonce_info, sizeof nonce_info, nonce,
           sizeof nonce) < 0)
    goto done;
  /* Header block: salt || rs (uint32 BE) || idlen || keyid = as_public. */
  const unsigned char rs[4] = {(WP_RS >> 24) & 0xff, (WP_RS >> 16) & 0xff, (WP_RS >> 8) & 0xff,
                               WP_RS & 0xff};
  const unsigned char idlen = WP_POINT_LEN;
  pc_buf_put(out, salt, WP_SALT_LEN);
  pc_buf_put(out, rs, sizeof rs);
  pc_buf_put(out, &idlen, 1);
  pc_buf_put(out, as_pub, WP_POINT_LEN);
  rc = seal(cek, nonce, plain, len, out);
done:
  OPENSSL_cleanse(secret, sizeof secret);
  OPENSSL_cleanse(ikm, sizeof ikm);
  OPENSSL_cleanse(cek, sizeof cek);
  EVP_PKEY_free(peer);
  return rc;
}

int wp_ece_encrypt(const unsigned char ua_pub[WP_POINT_LEN], const unsigned char auth[WP_AUTH_LEN],
                   const void *plain, size_t len, pc_buf *out) {
  unsigned char salt[WP_SALT_LEN];
  if (RAND_bytes(salt, sizeof salt) != 1) return -1;
  EVP_PKEY *eph = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  if (!eph) return -1;
  int rc = wp_ece_encrypt_with(ua_pub, auth, eph, salt, plain, len, out);
  EVP_PKEY_free(eph);
  return rc;
}
