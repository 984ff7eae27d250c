/* Structured one-line logs.  Each line is formatted into a local buffer and
 * written with one write(2), so lines from several threads never interleave. */
#include "log/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int g_level = 2; /* info */
static atomic_int g_json = 0;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void nd_log_configure(int level, int json) {
  if (level < 0) level = 0;
  if (level > 3) level = 3;
  atomic_store(&g_level, level);
  atomic_store(&g_json, json ? 1 : 0);
}

int nd_log_level(void) { return atomic_load(&g_level); }

/* Appends `s` escaped for a quoted logfmt / JSON string. */
static size_t put_escaped(char *out, size_t pos, size_t cap, const char *s) {
  for (; *s && pos + 7 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      out[pos++] = '\\';
      out[pos++] = (char)c;
    } else if (c == '\n') {
      out[pos++] = '\\';
      out[pos++] = 'n';
    } else if (c < 0x20) {
      pos += (size_t)snprintf(out + pos, cap - pos, "\\u%04x", c);
    } else {
      out[pos++] = (char)c;
    }
  }
  return pos;
}

void nd_logv(int level, const char *component, const char *fmt, va_list ap) {
  if (level > atomic_load(&g_level)) return;
  if (level < 0) level = 0;
  if (level > 3) level = 3;
  char msg[2048];
  vsnprintf(msg, sizeof msg, fmt, ap);

  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char when[40];
  size_t w = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(when + w, sizeof when - w, ".%03ldZ", ts.tv_nsec / 1000000);

  char line[4096];
  size_t pos;
  if (atomic_load(&g_json)) {
    pos = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"comp\":\"",
                           when, level_names[level]);
    pos = put_escaped(line, pos, sizeof line, component ? component : "-");
    pos += (size_t)snprintf(line + pos, sizeof line - pos, "\",\"msg\":\"");
    pos = put_escaped(line, pos, sizeof line, msg);
    if (pos + 3 > sizeof line) pos = sizeof line - 3;
    line[pos++] = '"';
    line[pos++] = '}';
  } else {
    pos = (size_t)snprintf(line, sizeof line, "ts=%s level=%s comp=%s msg=\"", when,
                           level_names[level], component ? component : "-");
    pos = put_escaped(line, pos, sizeof line, msg);
    if (pos + 2 > sizeof line) pos = sizeof line - 2;
    line[pos++] = '"';
  }
  line[pos++] = '\n';
  ssize_t r = write(STDERR_FILENO, line, pos);
  (void)r;
}

void nd_log(int level, const char *component, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  nd_logv(level, component, fmt, ap);
  va_end(ap);
}
