/* Timestamps as Go keeps them: an instant plus the UTC offset it was
 * written with, so that echoes and "YYYY-MM-DD HH:MM:SS" renderings show the
 * sender's own wall clock (contract 0 and 7). */
#ifndef EMAIL_TIME_H
#define EMAIL_TIME_H

#include <stddef.h>
#include <stdint.h>

typedef struct email_time {
  int64_t unix_s;      /* seconds since 1970-01-01T00:00:00Z */
  int32_t nanos;       /* 0..999999999 */
  int32_t offset_s;    /* zone offset east of UTC, seconds */
  int32_t set;         /* 0 = Go's zero time (0001-01-01T00:00:00Z) */
} email_time;

/* Parses RFC 3339 ("2006-01-02T15:04:05.999999999Z07:00") as pc_rfc3339_scan
 * does.  0 or -1. */
int email_time_parse_rfc3339(const char *s, email_time *out);
/* From Unix milliseconds, UTC. */
void email_time_from_unix_ms(int64_t ms, email_time *out);
/* Go's RFC3339Nano rendering: trailing fractional zeros trimmed, "Z" for
 * offset 0; the zero time renders "0001-01-01T00:00:00Z".  `out` >= 40. */
void email_time_format_rfc3339(const email_time *t, char *out, size_t n);
/* "2006-01-02 15:04:05" in the time's own offset (Go's purchase body). */
void email_time_format_plain(const email_time *t, char *out, size_t n);
/* RFC 5322 Date header value for Unix seconds, in UTC:
 * "Mon, 02 Jan 2006 15:04:05 +0000". */
void email_time_format_rfc5322(int64_t unix_s, char *out, size_t n);

#endif
