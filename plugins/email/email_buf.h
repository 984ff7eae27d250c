/* Growable text buffer and small helpers for the email plugin (the plugin
 * links nothing from the host, so it carries its own). */
#ifndef EMAIL_BUF_H
#define EMAIL_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ebuf {
  char *data;  /* NUL-terminated when non-NULL */
  size_t len, cap;
  int oom;     /* an allocation failed; later appends are no-ops */
} ebuf;

void ebuf_init(ebuf *b);
int ebuf_append(ebuf *b, const void *p, size_t n); /* 0 or -1 */
int ebuf_puts(ebuf *b, const char *s);
int ebuf_putc(ebuf *b, char c);
int ebuf_printf(ebuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Takes the text (caller frees; never NULL unless OOM); resets `b`. */
char *ebuf_steal(ebuf *b, size_t *len);
void ebuf_free(ebuf *b);

/* strdup that tolerates NULL. */
char *email_strdup(const char *s);
char *email_strndup(const char *s, size_t n);
/* Fills `n` bytes from the kernel's random source (thread-safe). */
void email_random(void *out, size_t n);
/* 1 when the n bytes are valid UTF-8 without control characters other
 * than tab (as wanted for one-line values such as names). */
int email_utf8_printable(const char *s, size_t n);
/* 1 when s looks like a deliverable addr-spec we can put in headers and in
 * the SMTP envelope: local@domain, printable ASCII, no spaces, <, >, quotes
 * or control characters. */
int email_addr_valid(const char *s);

#endif
