#include "pc_b64.h"

#include <stdint.h>

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void pc_b64url_put(pc_buf *b, const void *p, size_t n) {
  const unsigned char *s = p;
  char q[4];
  while (n >= 3) {
    uint32_t v = (uint32_t)s[0] << 16 | (uint32_t)s[1] << 8 | s[2];
    for (int k = 0; k < 4; k++) q[k] = alphabet[(v >> (18 - 6 * k)) & 63];
    pc_buf_put(b, q, 4);
    s += 3;
    n -= 3;
  }
  if (n == 0) return;
  /* 1 byte -> 2 characters, 2 bytes -> 3. */
  uint32_t v = (uint32_t)s[0] << 16 | (n == 2 ? (uint32_t)s[1] << 8 : 0);
  for (size_t k = 0; k <= n; k++) q[k] = alphabet[(v >> (18 - 6 * k)) & 63];
  pc_buf_put(b, q, n + 1);
}

static int sextet(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

long pc_b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap) {
  while (n > 0 && s[n - 1] == '=') n--;
  if (n % 4 == 1) return -1;
  size_t len = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
  if (len > cap) return -1;
  uint32_t acc = 0;
  unsigned bits = 0;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int v = sextet((unsigned char)s[i]);
    if (v < 0) return -1;
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  if (acc != 0) return -1; /* the unused low bits of the last character */
  return (long)o;
}
