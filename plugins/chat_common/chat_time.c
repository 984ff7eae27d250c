#include "chat_time.h"

#include <string.h>
#include <time.h>

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * public-domain algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = (unsigned)(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = (unsigned)(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
  return q;
}

int chat_time_format(int64_t ms, char out[CHAT_TIME_TEXT_MAX]) {
  if (ms < CHAT_TIME_MIN_MS || ms > CHAT_TIME_MAX_MS) return -1;
  int64_t days = floor_div(ms, 86400000);
  int64_t rem = ms - days * 86400000; /* 0 .. 86399999 */
  int64_t y;
  unsigned mo, d;
  civil_from_days(days, &y, &mo, &d);
  unsigned msec = (unsigned)(rem % 1000);
  unsigned secs = (unsigned)(rem / 1000);
  /* Fixed-width fields written by hand: the ranges are known here. */
  const unsigned vals[] = {(unsigned)y, mo, d, secs / 3600, secs / 60 % 60, secs % 60, msec};
  const int widths[] = {4, 2, 2, 2, 2, 2, 3};
  const char seps[] = {'-', '-', 'T', ':', ':', '.', 'Z'};
  char *p = out;
  for (int f = 0; f < 7; f++) {
    unsigned v = vals[f];
    for (int k = widths[f] - 1; k >= 0; k--) {
      p[k] = (char)('0' + v % 10);
      v /= 10;
    }
    p += widths[f];
    *p++ = seps[f];
  }
  /* Go's RFC3339Nano: trailing zero digits of the fraction are trimmed,
   * and a whole second has no fraction at all. */
  p--; /* at 'Z' */
  char *end = p;
  while (end[-1] == '0') end--;
  if (end[-1] == '.') end--;
  *end++ = 'Z';
  *end = '\0';
  return 0;
}

static int digits(const char *s, int n, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  *out = v;
  return 0;
}

static int is_leap(unsigned y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int chat_time_parse(const char *s, int64_t *ms) {
  static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  unsigned y, mo, d, h, mi, se;
  size_t n = strlen(s);
  if (n < 20) return -1;
  if (digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
      digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || digits(s + 11, 2, &h) ||
      s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &se))
    return -1;
  if (mo < 1 || mo > 12 || d < 1) return -1;
  unsigned dim = mdays[mo - 1] + (mo == 2 && is_leap(y));
  if (d > dim || h > 23 || mi > 59 || se > 59) return -1;
  const char *p = s + 19;
  unsigned frac_ms = 0;
  if (*p == '.' || *p == ',') {
    p++;
    int nd = 0;
    while (*p >= '0' && *p <= '9') {
      if (nd < 3) frac_ms = frac_ms * 10 + (unsigned)(*p - '0');
      nd++;
      p++;
    }
    if (nd == 0 || nd > 9) return -1;
    for (int k = nd; k < 3; k++) frac_ms *= 10;
  }
  int64_t offset_min = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int sign = *p == '-' ? -1 : 1;
    unsigned oh, om;
    p++;
    if (digits(p, 2, &oh)) return -1;
    p += 2;
    if (*p == ':') p++;
    if (digits(p, 2, &om)) return -1;
    p += 2;
    if (oh > 23 || om > 59) return -1;
    offset_min = sign * (int64_t)(oh * 60 + om);
  } else {
    return -1;
  }
  if (*p) return -1;
  int64_t days = days_from_civil((int64_t)y, mo, d);
  int64_t secs = days * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + se - offset_min * 60;
  *ms = secs * 1000 + frac_ms;
  return 0;
}

int64_t chat_time_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
