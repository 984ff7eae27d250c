/* Go time.Time as the Go services parsed and wrote it (contract 0):
 * time.Parse(time.RFC3339, s) semantics and error texts, and
 * MarshalJSON's RFC 3339 with nanoseconds trimmed, keeping the zone
 * offset the value was parsed with. */
#ifndef PC_TIME_H
#define PC_TIME_H

#include <stddef.h>
#include <stdint.h>

#include "pc_buf.h"

typedef struct pc_time {
  int32_t year, month, day, hour, min, sec; /* wall clock in its own zone */
  int32_t nsec;
  int32_t offset_s;  /* zone offset east of UTC, seconds */
  uint8_t set;       /* 0 = Go's zero Time (never parsed) */
  uint8_t has_loc;   /* parsed with a numeric offset (Go keeps a *Location) */
} pc_time;

/* Parses like time.Parse(time.RFC3339, s[0..n)).  0, or -1 with Go's
 * *time.ParseError text appended to err (e.g. `parsing time "x" as
 * "2006-01-02T15:04:05Z07:00": cannot parse "x" as "2006"`). */
int pc_time_parse_rfc3339(const char *s, size_t n, pc_time *out, pc_buf *err);

/* Seconds since 0001-01-01T00:00:00Z of the instant. */
int64_t pc_time_abs_seconds(const pc_time *t);

/* validator's `required` on a time.Time: reflect zero, which only the
 * unset value and the zero instant written with "Z" are. */
int pc_time_is_zero_value(const pc_time *t);

/* Appends the JSON string Go's MarshalJSON writes ("0001-01-01T00:00:00Z"
 * for the unset value).  Returns -1 (nothing written) where Go's
 * marshaller fails: a zone offset of 24 hours or more. */
int pc_time_put_json(pc_buf *b, const pc_time *t);

/* time.Now() in the process's local zone. */
void pc_time_now(pc_time *out);

/* CLOCK_MONOTONIC in nanoseconds, for durations and deadlines. */
int64_t pc_mono_ns(void);

/* ---- Civil dates (proleptic Gregorian), pure arithmetic: no libc time
 * zones, so results never depend on TZ or locale. */

int pc_is_leap_year(int64_t y);
int pc_days_in_month(int64_t y, int m); /* m 1..12 */
/* Days since 1970-01-01 of y-m-d (any y; m 1..12). */
int64_t pc_days_from_civil(int64_t y, int m, int d);

typedef struct pc_civil {
  int64_t year;
  int month, day, hour, min, sec;
  int wday; /* 0 = Sunday */
} pc_civil;

/* The UTC wall clock of `unix_s` seconds since the epoch (any sign). */
void pc_civil_from_unix(int64_t unix_s, pc_civil *out);

/* ---- A lenient RFC 3339 reader for stored and generated times (Extended
 * JSON dates, history cursors, event timestamps) where Go's exact
 * time.Parse errors are not needed (pc_time_parse_rfc3339 has those):
 * YYYY-MM-DD, 'T' or 't', hh:mm:ss, an optional fraction after '.' or ','
 * (at most 9 digits), then 'Z', 'z', +hh:mm or +hhmm.  The whole string
 * must match. */
typedef struct pc_rfc3339 {
  int64_t unix_s;   /* the instant, seconds since 1970-01-01T00:00:00Z */
  int32_t nsec;     /* 0..999999999 */
  int32_t offset_s; /* the zone offset it was written with, east of UTC */
} pc_rfc3339;

/* 0, or -1 when malformed or out of range. */
int pc_rfc3339_scan(const char *s, pc_rfc3339 *out);

#endif
