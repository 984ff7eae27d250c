/* Growable byte buffer for the chat plugins (plugins see only the SDK, so
 * they carry their own).  Allocation failure is sticky: later appends are
 * no-ops and `oom` stays set, so a caller checks once at the end. */
#ifndef CHAT_BUF_H
#define CHAT_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct chat_buf {
  char *data; /* NUL-terminated when non-NULL */
  size_t len, cap;
  int oom;
} chat_buf;

void chat_buf_init(chat_buf *b);
int chat_buf_append(chat_buf *b, const void *p, size_t n); /* 0 or -1 */
int chat_buf_puts(chat_buf *b, const char *s);
int chat_buf_putc(chat_buf *b, char c);
int chat_buf_printf(chat_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Takes the data (caller frees); NULL after an allocation failure.  The
 * buffer is reset either way. */
char *chat_buf_steal(chat_buf *b, size_t *len);
void chat_buf_free(chat_buf *b);

/* strdup of n bytes; NULL on OOM. */
char *chat_strndup(const char *s, size_t n);

#endif
