/* Small helpers of the email plugin (its text buffer is pc_buf from
 * plugins/common, linked in as the other plugins do). */
#ifndef EMAIL_UTIL_H
#define EMAIL_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "pc_buf.h"

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
