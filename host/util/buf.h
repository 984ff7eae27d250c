/* Growable byte buffer and small string helpers shared by host areas. */
#ifndef ND_BUF_H
#define ND_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nd_buf {
  char *data;   /* always NUL-terminated when non-NULL */
  size_t len, cap;
  int oom;      /* set once an allocation failed; later appends are no-ops */
} nd_buf;

void nd_buf_init(nd_buf *b);
int nd_buf_reserve(nd_buf *b, size_t extra);          /* 0 or -1 */
int nd_buf_append(nd_buf *b, const void *p, size_t n);
int nd_buf_puts(nd_buf *b, const char *s);
int nd_buf_printf(nd_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int nd_buf_vprintf(nd_buf *b, const char *fmt, va_list ap);
/* Takes the data (caller frees); the buffer is reset. */
char *nd_buf_steal(nd_buf *b, size_t *len);
void nd_buf_free(nd_buf *b);

/* strdup/strndup that tolerate NULL input (return NULL). */
char *nd_strdup(const char *s);
char *nd_strndup(const char *s, size_t n);
/* Percent-decodes `n` bytes of s ('+' -> ' ' when plus_is_space);
 * returns malloc'd NUL-terminated text or NULL on OOM / bad escape. */
char *nd_url_decode(const char *s, size_t n, int plus_is_space);
/* 1 if the n bytes are valid UTF-8 (no overlongs, surrogates, > U+10FFFF). */
int nd_utf8_valid(const void *p, size_t n);
/* Monotonic milliseconds and wall-clock milliseconds. */
int64_t nd_now_ms(void);
int64_t nd_wall_ms(void);

#endif
