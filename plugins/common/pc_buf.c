#include "pc_buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pc_buf_init(pc_buf *b) { memset(b, 0, sizeof *b); }

void pc_buf_free(pc_buf *b) {
  free(b->data);
  pc_buf_init(b);
}

void pc_buf_reset(pc_buf *b) {
  b->len = 0;
  b->oom = 0;
  if (b->data) b->data[0] = '\0';
}

/* Room for `n` more bytes plus a NUL; 0 or -1 (sets oom). */
static int reserve(pc_buf *b, size_t n) {
  if (b->oom) return -1;
  if (n > ((size_t)-1) / 2 - b->len - 1) {
    b->oom = 1;
    return -1;
  }
  size_t need = b->len + n + 1;
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap *= 2;
  char *d = realloc(b->data, cap);
  if (!d) {
    b->oom = 1;
    return -1;
  }
  b->data = d;
  b->cap = cap;
  return 0;
}

void pc_buf_put(pc_buf *b, const void *p, size_t n) {
  if (reserve(b, n) < 0) return;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void pc_buf_puts(pc_buf *b, const char *s) { pc_buf_put(b, s, strlen(s)); }

void pc_buf_putc(pc_buf *b, char c) { pc_buf_put(b, &c, 1); }

void pc_buf_printf(pc_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char small[256];
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->oom = 1;
    return;
  }
  if ((size_t)n < sizeof small) {
    pc_buf_put(b, small, (size_t)n);
    return;
  }
  if (reserve(b, (size_t)n) < 0) return;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

const char *pc_buf_cstr(pc_buf *b) {
  if (reserve(b, 0) < 0) return NULL;
  b->data[b->len] = '\0';
  return b->data;
}

char *pc_buf_steal(pc_buf *b, size_t *len) {
  if (!pc_buf_cstr(b)) {
    pc_buf_free(b);
    if (len) *len = 0;
    return NULL;
  }
  char *d = b->data;
  if (len) *len = b->len;
  pc_buf_init(b);
  return d;
}

void pc_buf_put_url_escaped(pc_buf *b, const char *s) {
  static const char hexd[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
        *p == '-' || *p == '_' || *p == '.' || *p == '~') {
      pc_buf_putc(b, (char)*p);
    } else {
      char e[3] = {'%', hexd[*p >> 4], hexd[*p & 15]};
      pc_buf_put(b, e, 3);
    }
  }
}
