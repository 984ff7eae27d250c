/* HS256 JSON Web Tokens (RFC 7519 / 7515 compact form): verification and
 * signing.  HMAC from OpenSSL; base64url is plain encoding, done here. */
#include "auth/auth.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

#define SHA256_LEN 32

static int b64url_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

/* Unpadded base64url -> malloc'd bytes (NUL-terminated for JSON use).
 * NULL on a bad character, an impossible length, non-zero trailing bits
 * or OOM. */
static unsigned char *b64url_decode(const char *s, size_t n, size_t *outlen) {
  if (n % 4 == 1) return NULL;
  unsigned char *out = malloc(n / 4 * 3 + 3);
  if (!out) return NULL;
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64url_value((unsigned char)s[i]);
    if (v < 0) {
      free(out);
      return NULL;
    }
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  if (acc != 0) { /* leftover bits must be zero (canonical encoding) */
    free(out);
    return NULL;
  }
  out[o] = '\0';
  *outlen = o;
  return out;
}

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_append(nd_buf *b, const unsigned char *p, size_t n) {
  if (nd_buf_reserve(b, (n + 2) / 3 * 4) < 0) return -1;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    size_t left = n - i;
    if (left > 1) v |= (uint32_t)p[i + 1] << 8;
    if (left > 2) v |= p[i + 2];
    char q[4] = {B64URL[(v >> 18) & 63], B64URL[(v >> 12) & 63], B64URL[(v >> 6) & 63],
                 B64URL[v & 63]};
    nd_buf_append(b, q, left > 2 ? 4 : left + 1);
  }
  return b->oom ? -1 : 0;
}

static int hs256(const char *secret, const void *data, size_t len,
                 unsigned char out[SHA256_LEN]) {
  unsigned int olen = 0;
  size_t klen = strlen(secret);
  if (klen > INT32_MAX) return -1;
  if (!HMAC(EVP_sha256(), secret, (int)klen, data, len, out, &olen) || olen != SHA256_LEN)
    return -1;
  return 0;
}

static json_t *decode_json_part(const char *s, size_t n) {
  size_t len = 0;
  unsigned char *raw = b64url_decode(s, n, &len);
  if (!raw) return NULL;
  json_t *j = json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, NULL);
  free(raw);
  if (j && !json_is_object(j)) {
    json_decref(j);
    return NULL;
  }
  return j;
}

/* NumericDate (seconds, integer or real) -> *out; -1 if not a number. */
static int numeric_date(json_t *v, double *out) {
  if (!json_is_number(v)) return -1;
  *out = json_number_value(v);
  return 0;
}

static int check_header(const char *s, size_t n, const char **why) {
  json_t *hdr = decode_json_part(s, n);
  if (!hdr) {
    *why = "malformed token header";
    return -1;
  }
  json_t *alg = json_object_get(hdr, "alg");
  int ok = json_is_string(alg) && strcmp(json_string_value(alg), "HS256") == 0;
  /* We implement no header extensions, so any critical one is refused. */
  int has_crit = json_object_get(hdr, "crit") != NULL;
  json_decref(hdr);
  if (!ok) {
    *why = "token algorithm is not HS256";
    return -1;
  }
  if (has_crit) {
    *why = "token has critical header extensions";
    return -1;
  }
  return 0;
}

static int check_claims(json_t *claims, int64_t now, char *subbuf, size_t sublen,
                        const char **why) {
  double exp, nbf;
  json_t *e = json_object_get(claims, "exp");
  if (!e || numeric_date(e, &exp) < 0) {
    *why = "token has no valid exp";
    return -1;
  }
  if ((double)now >= exp) {
    *why = "token expired";
    return -1;
  }
  json_t *nb = json_object_get(claims, "nbf");
  if (nb) {
    if (numeric_date(nb, &nbf) < 0) {
      *why = "token nbf is not a number";
      return -1;
    }
    if ((double)now < nbf) {
      *why = "token not valid yet";
      return -1;
    }
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

int nd_jwt_verify(const char *token, const char *secret, int64_t now, char *subbuf,
                  size_t sublen, const char **why) {
  const char *dummy;
  if (!why) why = &dummy;
  if (!token || !*token) {
    *why = "missing token";
    return -1;
  }
  if (!secret || !*secret) {
    *why = "no token secret configured";
    return -1;
  }
  const char *d1 = strchr(token, '.');
  const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
  if (!d1 || !d2 || strchr(d2 + 1, '.') || d1 == token || d2 == d1 + 1 || d2[1] == '\0') {
    *why = "malformed token";
    return -1;
  }
  if (check_header(token, (size_t)(d1 - token), why) < 0) return -1;

  size_t siglen = 0;
  unsigned char *sig = b64url_decode(d2 + 1, strlen(d2 + 1), &siglen);
  unsigned char mac[SHA256_LEN];
  int sig_ok = sig && siglen == SHA256_LEN &&
               hs256(secret, token, (size_t)(d2 - token), mac) == 0 &&
               CRYPTO_memcmp(sig, mac, SHA256_LEN) == 0;
  free(sig);
  if (!sig_ok) {
    *why = "bad token signature";
    return -1;
  }
  json_t *claims = decode_json_part(d1 + 1, (size_t)(d2 - d1 - 1));
  if (!claims) {
    *why = "malformed token claims";
    return -1;
  }
  int rc = check_claims(claims, now, subbuf, sublen, why);
  json_decref(claims);
  return rc;
}

char *nd_jwt_sign(const char *secret, const char *sub, int64_t exp) {
  if (!secret || !sub) return NULL;
  static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
  json_t *claims = json_pack("{s:s, s:I}", "sub", sub, "exp", (json_int_t)exp);
  char *payload = claims ? json_dumps(claims, JSON_COMPACT) : NULL;
  json_decref(claims);
  if (!payload) return NULL;
  nd_buf b;
  nd_buf_init(&b);
  unsigned char mac[SHA256_LEN];
  int ok = b64url_append(&b, (const unsigned char *)header, sizeof header - 1) == 0 &&
           nd_buf_puts(&b, ".") == 0 &&
           b64url_append(&b, (const unsigned char *)payload, strlen(payload)) == 0 &&
           hs256(secret, b.data, b.len, mac) == 0 && nd_buf_puts(&b, ".") == 0 &&
           b64url_append(&b, mac, sizeof mac) == 0;
  free(payload);
  if (!ok) {
    nd_buf_free(&b);
    return NULL;
  }
  return nd_buf_steal(&b, NULL);
}
