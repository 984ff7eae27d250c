#include "chat_time.h"

#include <string.h>
#include <time.h>

#include "pc_time.h"

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
  return q;
}

int chat_time_format(int64_t ms, char out[CHAT_TIME_TEXT_MAX]) {
  if (ms < CHAT_TIME_MIN_MS || ms > CHAT_TIME_MAX_MS) return -1;
  int64_t secs = floor_div(ms, 1000);
  pc_civil c;
  pc_civil_from_unix(secs, &c);
  unsigned msec = (unsigned)(ms - secs * 1000);
  /* Fixed-width fields written by hand: the ranges are known here. */
  const unsigned vals[] = {(unsigned)c.year, (unsigned)c.month, (unsigned)c.day,
                           (unsigned)c.hour, (unsigned)c.min, (unsigned)c.sec, msec};
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

int chat_time_parse(const char *s, int64_t *ms) {
  pc_rfc3339 t;
  if (pc_rfc3339_scan(s, &t) < 0) return -1;
  *ms = t.unix_s * 1000 + t.nsec / 1000000; /* the fraction truncated to ms */
  return 0;
}

int64_t chat_time_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
