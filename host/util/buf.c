#include "util/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void nd_buf_init(nd_buf *b) { memset(b, 0, sizeof *b); }

int nd_buf_reserve(nd_buf *b, size_t extra) {
  if (b->oom) return -1;
  if (extra > SIZE_MAX / 2 - b->len - 1) { b->oom = 1; return -1; }
  size_t need = b->len + extra + 1;
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap *= 2;
  char *p = realloc(b->data, cap);
  if (!p) { b->oom = 1; return -1; }
  b->data = p;
  b->cap = cap;
  return 0;
}

int nd_buf_append(nd_buf *b, const void *p, size_t n) {
  if (nd_buf_reserve(b, n) < 0) return -1;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int nd_buf_puts(nd_buf *b, const char *s) { return nd_buf_append(b, s, strlen(s)); }

int nd_buf_vprintf(nd_buf *b, const char *fmt, va_list ap) {
  va_list cp;
  va_copy(cp, ap);
  int n = vsnprintf(NULL, 0, fmt, cp);
  va_end(cp);
  if (n < 0 || nd_buf_reserve(b, (size_t)n) < 0) return -1;
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
  return 0;
}

int nd_buf_printf(nd_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int r = nd_buf_vprintf(b, fmt, ap);
  va_end(ap);
  return r;
}

char *nd_buf_steal(nd_buf *b, size_t *len) {
  char *d = b->oom ? NULL : b->data;
  if (b->oom) free(b->data);
  if (!d && !b->oom) d = calloc(1, 1);
  if (len) *len = d ? b->len : 0;
  nd_buf_init(b);
  return d;
}

void nd_buf_free(nd_buf *b) {
  free(b->data);
  nd_buf_init(b);
}

char *nd_strdup(const char *s) { return s ? strdup(s) : NULL; }

char *nd_strndup(const char *s, size_t n) { return s ? strndup(s, n) : NULL; }

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char *nd_url_decode(const char *s, size_t n, int plus_is_space) {
  char *out = malloc(n + 1);
  if (!out) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%') {
      if (n - i < 3) { free(out); return NULL; }
      int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);
      if (hi < 0 || lo < 0) { free(out); return NULL; }
      out[o++] = (char)(hi * 16 + lo);
      i += 2;
    } else if (s[i] == '+' && plus_is_space) {
      out[o++] = ' ';
    } else {
      out[o++] = s[i];
    }
  }
  out[o] = '\0';
  return out;
}

int nd_utf8_valid(const void *p, size_t n) {
  const unsigned char *s = p;
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) { i++; continue; }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else return 0;
    if (n - i < len) return 0;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    i += len;
  }
  return 1;
}

int64_t nd_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t nd_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
