#include "chat_buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void chat_buf_init(chat_buf *b) { memset(b, 0, sizeof *b); }

static int reserve(chat_buf *b, size_t extra) {
  if (b->oom) return -1;
  if (extra > (size_t)-1 / 2 - b->len) {
    b->oom = 1;
    return -1;
  }
  size_t need = b->len + extra + 1;
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap *= 2;
  char *p = realloc(b->data, cap);
  if (!p) {
    b->oom = 1;
    return -1;
  }
  b->data = p;
  b->cap = cap;
  return 0;
}

int chat_buf_append(chat_buf *b, const void *p, size_t n) {
  if (reserve(b, n) < 0) return -1;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int chat_buf_puts(chat_buf *b, const char *s) { return chat_buf_append(b, s, strlen(s)); }

int chat_buf_putc(chat_buf *b, char c) { return chat_buf_append(b, &c, 1); }

int chat_buf_printf(chat_buf *b, const char *fmt, ...) {
  char small[128];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->oom = 1;
    return -1;
  }
  if ((size_t)n < sizeof small) return chat_buf_append(b, small, (size_t)n);
  if (reserve(b, (size_t)n) < 0) return -1;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

char *chat_buf_steal(chat_buf *b, size_t *len) {
  char *p = b->oom ? NULL : b->data;
  if (!p && !b->oom) p = calloc(1, 1); /* empty but valid */
  if (len) *len = p ? b->len : 0;
  if (b->oom) free(b->data);
  chat_buf_init(b);
  return p;
}

void chat_buf_free(chat_buf *b) {
  free(b->data);
  chat_buf_init(b);
}

char *chat_strndup(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (!p) return NULL;
  if (n) memcpy(p, s, n);
  p[n] = '\0';
  return p;
}
