/* A growable byte buffer for plugin-side code.  Allocation failures are
 * sticky: every append after one is a no-op and `oom` stays set, so a
 * writer checks once at the end. */
#ifndef PC_BUF_H
#define PC_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct pc_buf {
  char *data; /* NUL-terminated whenever len > 0 or after pc_buf_cstr */
  size_t len, cap;
  int oom;
} pc_buf;

void pc_buf_init(pc_buf *b);
void pc_buf_free(pc_buf *b);
void pc_buf_reset(pc_buf *b); /* len = 0, keeps the memory and clears oom */
void pc_buf_put(pc_buf *b, const void *p, size_t n);
void pc_buf_puts(pc_buf *b, const char *s);
void pc_buf_putc(pc_buf *b, char c);
void pc_buf_printf(pc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends `s` percent-encoded for a URL path segment or query value: every
 * byte but A-Z a-z 0-9 - _ . ~ becomes %XX. */
void pc_buf_put_url_escaped(pc_buf *b, const char *s);
/* The contents as a C string ("" when empty), or NULL after OOM. */
const char *pc_buf_cstr(pc_buf *b);
/* Hands the malloc'd, NUL-terminated contents to the caller (NULL after
 * OOM); the buffer is left empty. */
char *pc_buf_steal(pc_buf *b, size_t *len);

#endif
