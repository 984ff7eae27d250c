/* Unpadded base64url (RFC 4648 section 5), as JWS and JWK use it.  Plain
 * encoding, done here rather than through OpenSSL's padded base64. */
#include "auth/jwt_internal.h"

#include <stdlib.h>

static int b64url_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

unsigned char *nd_b64url_decode(const char *s, size_t n, size_t *outlen) {
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

int nd_b64url_append(nd_buf *b, const unsigned char *p, size_t n) {
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
