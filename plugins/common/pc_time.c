#include "pc_time.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define LAYOUT "2006-01-02T15:04:05Z07:00"

int pc_is_leap_year(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int pc_days_in_month(int64_t y, int m) {
  static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && pc_is_leap_year(y)) return 29;
  return d[m - 1];
}

/* H. Hinnant's days_from_civil / civil_from_days (public-domain
 * algorithms), in 400-year eras. */
int64_t pc_days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void pc_civil_from_unix(int64_t t, pc_civil *c) {
  int64_t days = t / 86400, rem = t % 86400;
  if (rem < 0) {
    rem += 86400;
    days--;
  }
  c->hour = (int)(rem / 3600);
  c->min = (int)(rem % 3600 / 60);
  c->sec = (int)(rem % 60);
  int64_t wd = (days + 4) % 7; /* 1970-01-01 was a Thursday */
  c->wday = (int)(wd < 0 ? wd + 7 : wd);
  int64_t z = days + 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  c->day = (int)(doy - (153 * mp + 2) / 5 + 1);
  c->month = (int)(mp < 10 ? mp + 3 : mp - 9);
  c->year = yoe + era * 400 + (c->month <= 2);
}

static int fixed_digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

int pc_rfc3339_scan(const char *s, pc_rfc3339 *out) {
  int y, mo, d, h, mi, sec;
  if (!s || strlen(s) < 20) return -1;
  if (fixed_digits(s, 4, &y) || s[4] != '-' || fixed_digits(s + 5, 2, &mo) || s[7] != '-' ||
      fixed_digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
      fixed_digits(s + 11, 2, &h) || s[13] != ':' || fixed_digits(s + 14, 2, &mi) ||
      s[16] != ':' || fixed_digits(s + 17, 2, &sec))
    return -1;
  if (mo < 1 || mo > 12 || d < 1 || d > pc_days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59)
    return -1;
  const char *p = s + 19;
  int32_t nsec = 0;
  if (*p == '.' || *p == ',') {
    p++;
    int nd = 0;
    while (*p >= '0' && *p <= '9') {
      if (nd < 9) nsec = nsec * 10 + (*p - '0');
      nd++;
      p++;
    }
    if (nd == 0 || nd > 9) return -1;
    for (int i = nd; i < 9; i++) nsec *= 10;
  }
  int32_t off = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int sign = *p == '-' ? -1 : 1, oh, om;
    p++;
    if (fixed_digits(p, 2, &oh)) return -1;
    p += 2;
    if (*p == ':') p++;
    if (fixed_digits(p, 2, &om) || oh > 23 || om > 59) return -1;
    p += 2;
    off = sign * (oh * 3600 + om * 60);
  } else {
    return -1;
  }
  if (*p) return -1;
  out->unix_s = pc_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
  out->nsec = nsec;
  out->offset_s = off;
  return 0;
}

/* Go's time.quote: "..." with \xHH for control and non-ASCII bytes. */
static void go_quote(pc_buf *b, const char *s, size_t n) {
  pc_buf_putc(b, '"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x80 || c < 0x20) {
      pc_buf_printf(b, "\\x%02x", c);
    } else {
      if (c == '"' || c == '\\') pc_buf_putc(b, '\\');
      pc_buf_putc(b, (char)c);
    }
  }
  pc_buf_putc(b, '"');
}

/* ParseError with no message: cannot parse <rest> as <elem>. */
static int elem_error(pc_buf *err, const char *s, size_t n, const char *rest, size_t rn,
                      const char *elem) {
  pc_buf_puts(err, "parsing time ");
  go_quote(err, s, n);
  pc_buf_puts(err, " as ");
  go_quote(err, LAYOUT, strlen(LAYOUT));
  pc_buf_puts(err, ": cannot parse ");
  go_quote(err, rest, rn);
  pc_buf_puts(err, " as ");
  go_quote(err, elem, strlen(elem));
  return -1;
}

static int msg_error(pc_buf *err, const char *s, size_t n, const char *msg) {
  pc_buf_puts(err, "parsing time ");
  go_quote(err, s, n);
  pc_buf_puts(err, msg);
  return -1;
}

static int digit(const char *v, size_t n, size_t i) { return i < n && v[i] >= '0' && v[i] <= '9'; }

/* Go's getnum: one or two digits (exactly two when `fixed`); -1 = bad. */
static int getnum(const char *v, size_t n, int fixed, int *out, size_t *used) {
  if (!digit(v, n, 0)) return -1;
  if (!digit(v, n, 1)) {
    if (fixed) return -1;
    *out = v[0] - '0';
    *used = 1;
    return 0;
  }
  *out = (v[0] - '0') * 10 + (v[1] - '0');
  *used = 2;
  return 0;
}

int pc_time_parse_rfc3339(const char *s, size_t n, pc_time *out, pc_buf *err) {
  memset(out, 0, sizeof *out);
  const char *v = s; /* remaining value */
  size_t vn = n;
  int year = 0, month = 0, day = 0, hour = 0, min = 0, sec = 0, nsec = 0;
  int offset = 0, utc = 0;
  size_t used;

  /* The layout's elements with the literal prefix before each. */
  static const struct {
    char prefix;
    const char *elem;
  } steps[] = {{0, "2006"}, {'-', "01"}, {'-', "02"}, {'T', "15"},
               {':', "04"}, {':', "05"}, {0, "Z07:00"}};
  for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
    if (steps[k].prefix) {
      if (vn == 0 || v[0] != steps[k].prefix) {
        char pre[2] = {steps[k].prefix, 0};
        return elem_error(err, s, n, v, vn, pre);
      }
      v++;
      vn--;
    }
    const char *hold = v;
    size_t holdn = vn;
    const char *range = NULL;
    int bad = 0;
    switch (k) {
      case 0: /* 2006: four digits */
        if (vn < 4 || !digit(v, vn, 0)) {
          bad = 1;
          break;
        }
        for (int d = 0; d < 4; d++) {
          if (!digit(v, vn, (size_t)d)) bad = 1;
          year = year * 10 + (v[d] - '0');
        }
        if (!bad) {
          v += 4;
          vn -= 4;
        }
        break;
      case 1: /* 01 */
        if (getnum(v, vn, 1, &month, &used) < 0) {
          bad = 1;
          break;
        }
        v += used;
        vn -= used;
        if (month <= 0 || month > 12) range = "month";
        break;
      case 2: /* 02: validated against the month after the loop */
        if (getnum(v, vn, 1, &day, &used) < 0) {
          bad = 1;
          break;
        }
        v += used;
        vn -= used;
        break;
      case 3: /* 15: one or two digits */
        if (getnum(v, vn, 0, &hour, &used) < 0) {
          bad = 1;
          break;
        }
        v += used;
        vn -= used;
        if (hour >= 24) range = "hour";
        break;
      case 4: /* 04 */
        if (getnum(v, vn, 1, &min, &used) < 0) {
          bad = 1;
          break;
        }
        v += used;
        vn -= used;
        if (min >= 60) range = "minute";
        break;
      case 5: /* 05, then an optional fraction the layout does not name */
        if (getnum(v, vn, 1, &sec, &used) < 0) {
          bad = 1;
          break;
        }
        v += used;
        vn -= used;
        if (sec >= 60) {
          range = "second";
          break;
        }
        if (vn >= 2 && (v[0] == '.' || v[0] == ',') && digit(v, vn, 1)) {
          size_t nd = 2;
          while (nd < vn && digit(v, vn, nd)) nd++;
          size_t take = nd > 10 ? 10 : nd; /* Go keeps nine digits */
          int ns = 0;
          for (size_t d = 1; d < take; d++) ns = ns * 10 + (v[d] - '0');
          for (size_t d = take; d < 10; d++) ns *= 10;
          nsec = ns;
          v += nd;
          vn -= nd;
        }
        break;
      default: /* Z07:00 */
        if (vn >= 1 && v[0] == 'Z') {
          v++;
          vn--;
          utc = 1;
          break;
        }
        if (vn < 6 || v[3] != ':') {
          bad = 1;
          break;
        }
        {
          /* As Go: the range is checked even when a later part failed,
           * and a range error wins over a syntax error. */
          int hr = 0, mm = 0;
          size_t u2;
          if (getnum(v + 1, 2, 1, &hr, &u2) < 0) {
            hr = 0;
            bad = 1;
          }
          if (!bad && getnum(v + 4, 2, 1, &mm, &u2) < 0) {
            mm = 0;
            bad = 1;
          }
          if (hr > 24) range = "time zone offset hour";
          if (mm > 60) range = "time zone offset minute";
          offset = (hr * 60 + mm) * 60;
          if (v[0] == '-') offset = -offset;
          else if (v[0] != '+') bad = 1;
          v += 6;
          vn -= 6;
        }
        break;
    }
    if (range) {
      pc_buf_puts(err, "parsing time ");
      go_quote(err, s, n);
      pc_buf_printf(err, ": %s out of range", range);
      return -1;
    }
    if (bad) return elem_error(err, s, n, hold, holdn, steps[k].elem);
  }
  if (vn > 0) {
    pc_buf buf;
    pc_buf_init(&buf);
    pc_buf_puts(&buf, ": extra text: ");
    go_quote(&buf, v, vn);
    int rc = msg_error(err, s, n, pc_buf_cstr(&buf) ? buf.data : "");
    pc_buf_free(&buf);
    return rc;
  }
  if (day < 1 || day > pc_days_in_month(year, month)) return msg_error(err, s, n, ": day out of range");
  out->year = year;
  out->month = month;
  out->day = day;
  out->hour = hour;
  out->min = min;
  out->sec = sec;
  out->nsec = nsec;
  out->offset_s = utc ? 0 : offset;
  out->has_loc = utc ? 0 : 1;
  out->set = 1;
  return 0;
}

int64_t pc_time_abs_seconds(const pc_time *t) {
  if (!t->set) return 0;
  /* 0001-01-01 is 719162 days before 1970-01-01 */
  int64_t days = pc_days_from_civil(t->year, t->month, t->day) + 719162;
  return days * 86400 + t->hour * 3600 + t->min * 60 + t->sec - t->offset_s;
}

int pc_time_is_zero_value(const pc_time *t) {
  if (!t->set) return 1;
  return !t->has_loc && t->nsec == 0 && pc_time_abs_seconds(t) == 0;
}

/* Writes v as exactly `width` decimal digits (v >= 0, fits). */
static char *put_digits(char *p, int v, int width) {
  for (int i = width - 1; i >= 0; i--) {
    p[i] = (char)('0' + v % 10);
    v /= 10;
  }
  return p + width;
}

/* Go's time.Time MarshalJSON (RFC 3339 with trailing-zero-trimmed
 * nanoseconds).  Formatted by hand: it runs for every notification frame,
 * where four snprintf calls showed in profiles. */
int pc_time_put_json(pc_buf *b, const pc_time *t) {
  if (!t->set) {
    pc_buf_puts(b, "\"0001-01-01T00:00:00Z\"");
    return 0;
  }
  int off = t->offset_s;
  int aoff = off < 0 ? -off : off;
  if (aoff / 60 / 60 >= 24) return -1; /* "timezone hour outside of range [0,23]" */
  if (t->year < 0 || t->year > 9999) return -1;
  char tmp[48], *p = tmp;
  *p++ = '"';
  p = put_digits(p, t->year, 4);
  *p++ = '-';
  p = put_digits(p, t->month, 2);
  *p++ = '-';
  p = put_digits(p, t->day, 2);
  *p++ = 'T';
  p = put_digits(p, t->hour, 2);
  *p++ = ':';
  p = put_digits(p, t->min, 2);
  *p++ = ':';
  p = put_digits(p, t->sec, 2);
  if (t->nsec > 0 && t->nsec < 1000000000) {
    *p++ = '.';
    char *frac = p;
    p = put_digits(p, t->nsec, 9);
    while (p > frac + 1 && p[-1] == '0') p--;
  }
  if (off == 0) {
    *p++ = 'Z';
  } else {
    *p++ = off < 0 ? '-' : '+';
    p = put_digits(p, aoff / 3600, 2);
    *p++ = ':';
    p = put_digits(p, (aoff / 60) % 60, 2);
  }
  *p++ = '"';
  pc_buf_put(b, tmp, (size_t)(p - tmp));
  return 0;
}

int64_t pc_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void pc_time_now(pc_time *out) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  time_t secs = ts.tv_sec;
  memset(out, 0, sizeof *out);
  if (!localtime_r(&secs, &tm)) gmtime_r(&secs, &tm);
  out->year = tm.tm_year + 1900;
  out->month = tm.tm_mon + 1;
  out->day = tm.tm_mday;
  out->hour = tm.tm_hour;
  out->min = tm.tm_min;
  out->sec = tm.tm_sec;
  out->nsec = (int32_t)ts.tv_nsec;
  out->offset_s = (int32_t)tm.tm_gmtoff;
  out->has_loc = 1;
  out->set = 1;
}
