/* Civil-date arithmetic (proleptic Gregorian, any year 1..9999) without
 * libc's time zone machinery, so results never depend on TZ or locale. */
#include "email_time.h"

#include <stdio.h>
#include <string.h>

/* Zero time of Go: 0001-01-01T00:00:00Z. */
#define GO_ZERO_UNIX (-62135596800LL)

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

typedef struct civil {
  int64_t year;
  int month, day, hour, min, sec, wday; /* wday 0 = Sunday */
} civil;

static void civil_from_unix(int64_t t, civil *c) {
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

static int digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

static int days_in_month(int y, int m) {
  static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
  return dm[m - 1];
}

int email_time_parse_rfc3339(const char *s, email_time *out) {
  int y, mo, d, h, mi, sec;
  if (!s || strlen(s) < 20) return -1;
  if (digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
      digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || digits(s + 11, 2, &h) ||
      s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &sec))
    return -1;
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59)
    return -1;
  const char *p = s + 19;
  int32_t nanos = 0;
  if (*p == '.') {
    p++;
    int nd = 0;
    while (*p >= '0' && *p <= '9') {
      if (nd < 9) nanos = nanos * 10 + (*p - '0');
      nd++;
      p++;
    }
    if (nd == 0) return -1;
    for (int i = nd; i < 9; i++) nanos *= 10;
  }
  int32_t off = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int oh, om;
    if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
      return -1;
    off = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
    p += 6;
  } else {
    return -1;
  }
  if (*p) return -1;
  out->unix_s = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
  out->nanos = nanos;
  out->offset_s = off;
  out->set = !(out->unix_s == GO_ZERO_UNIX && nanos == 0);
  return 0;
}

void email_time_from_unix_ms(int64_t ms, email_time *out) {
  int64_t s = ms / 1000, r = ms % 1000;
  if (r < 0) {
    r += 1000;
    s--;
  }
  out->unix_s = s;
  out->nanos = (int32_t)(r * 1000000);
  out->offset_s = 0;
  out->set = !(s == GO_ZERO_UNIX && r == 0);
}

static void local_civil(const email_time *t, civil *c) {
  if (!t->set) {
    civil_from_unix(GO_ZERO_UNIX, c);
    return;
  }
  civil_from_unix(t->unix_s + t->offset_s, c);
}

void email_time_format_rfc3339(const email_time *t, char *out, size_t n) {
  civil c;
  local_civil(t, &c);
  char frac[16] = "";
  if (t->set && t->nanos) {
    snprintf(frac, sizeof frac, ".%09d", (int)t->nanos);
    size_t l = strlen(frac);
    while (l > 1 && frac[l - 1] == '0') frac[--l] = '\0';
  }
  char zone[16] = "Z";
  int32_t off = t->set ? t->offset_s : 0;
  if (off) {
    int32_t a = off < 0 ? -off : off;
    snprintf(zone, sizeof zone, "%c%02d:%02d", off < 0 ? '-' : '+', (int)(a / 3600),
             (int)(a % 3600 / 60));
  }
  snprintf(out, n, "%04lld-%02d-%02dT%02d:%02d:%02d%s%s", (long long)c.year, c.month, c.day,
           c.hour, c.min, c.sec, frac, zone);
}

void email_time_format_plain(const email_time *t, char *out, size_t n) {
  civil c;
  local_civil(t, &c);
  snprintf(out, n, "%04lld-%02d-%02d %02d:%02d:%02d", (long long)c.year, c.month, c.day, c.hour,
           c.min, c.sec);
}

void email_time_format_rfc5322(int64_t unix_s, char *out, size_t n) {
  static const char wd[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char mon[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  civil c;
  civil_from_unix(unix_s, &c);
  snprintf(out, n, "%s, %02d %s %04lld %02d:%02d:%02d +0000", wd[c.wday], c.day, mon[c.month - 1],
           (long long)c.year, c.hour, c.min, c.sec);
}
