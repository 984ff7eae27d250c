/* Email's renderings of Go times, on pc_time's civil-date arithmetic. */
#include "email_time.h"

#include <stdio.h>
#include <string.h>

#include "pc_time.h"

/* Zero time of Go: 0001-01-01T00:00:00Z. */
#define GO_ZERO_UNIX (-62135596800LL)

int email_time_parse_rfc3339(const char *s, email_time *out) {
  pc_rfc3339 t;
  if (pc_rfc3339_scan(s, &t) < 0) return -1;
  out->unix_s = t.unix_s;
  out->nanos = t.nsec;
  out->offset_s = t.offset_s;
  out->set = !(t.unix_s == GO_ZERO_UNIX && t.nsec == 0);
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

static void local_civil(const email_time *t, pc_civil *c) {
  if (!t->set) {
    pc_civil_from_unix(GO_ZERO_UNIX, c);
    return;
  }
  pc_civil_from_unix(t->unix_s + t->offset_s, c);
}

void email_time_format_rfc3339(const email_time *t, char *out, size_t n) {
  pc_civil c;
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
  pc_civil c;
  local_civil(t, &c);
  snprintf(out, n, "%04lld-%02d-%02d %02d:%02d:%02d", (long long)c.year, c.month, c.day, c.hour,
           c.min, c.sec);
}

void email_time_format_rfc5322(int64_t unix_s, char *out, size_t n) {
  static const char wd[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char mon[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  pc_civil c;
  pc_civil_from_unix(unix_s, &c);
  snprintf(out, n, "%s, %02d %s %04lld %02d:%02d:%02d +0000", wd[c.wday], c.day, mon[c.month - 1],
           (long long)c.year, c.hour, c.min, c.sec);
}
