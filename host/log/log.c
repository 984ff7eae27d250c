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

/* logfmt: a value goes bare unless it is empty or holds a space, '=',
 * '"', a backslash or a control character. */
static int needs_quotes(const char *s) {
  if (!*s) return 1;
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c <= ' ' || c == '=' || c == '"' || c == '\\' || c == 0x7f) return 1;
  }
  return 0;
}

static void emit(int level, const char *component, const char *msg, const nd_log_field *f,
                 size_t nf) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char when[40];
  size_t w = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(when + w, sizeof when - w, ".%03ldZ", ts.tv_nsec / 1000000);

  /* Content stays below `cap`, so the closing '}' (JSON) and the newline
   * always fit; put_escaped leaves room for a closing quote. */
  char line[4096];
  const size_t cap = sizeof line - 2;
  int json = atomic_load(&g_json);
  size_t pos;
  if (json) {
    pos = (size_t)snprintf(line, cap, "{\"ts\":\"%s\",\"level\":\"%s\",\"comp\":\"", when,
                           level_names[level]);
    pos = put_escaped(line, pos, cap, component ? component : "-");
    pos += (size_t)snprintf(line + pos, cap - pos, "\",\"msg\":\"");
  } else {
    pos = (size_t)snprintf(line, cap, "ts=%s level=%s comp=%s msg=\"", when, level_names[level],
                           component ? component : "-");
  }
  pos = put_escaped(line, pos, cap, msg);
  line[pos++] = '"';
  for (size_t i = 0; i < nf; i++) {
    if (!f[i].value || pos + 24 + strlen(f[i].key) >= cap) continue;
    pos += (size_t)snprintf(line + pos, cap - pos, json ? ",\"%s\":" : " %s=", f[i].key);
    int quote = json ? !f[i].num : needs_quotes(f[i].value);
    if (quote) line[pos++] = '"';
    pos = put_escaped(line, pos, cap, f[i].value);
    if (quote) line[pos++] = '"';
  }
  if (json) line[pos++] = '}';
  line[pos++] = '\n';
  ssize_t r = write(STDERR_FILENO, line, pos);
  (void)r;
}

void nd_logv(int level, const char *component, const char *fmt, va_list ap) {
  if (level > atomic_load(&g_level)) return;
  if (level < 0) level = 0;
  if (level > 3) level = 3;
  char msg[2048];
  vsnprintf(msg, sizeof msg, fmt, ap);
  emit(level, component, msg, NULL, 0);
}

void nd_log_fields(int level, const char *component, const char *msg, const nd_log_field *f,
                   size_t n) {
  if (level > atomic_load(&g_level)) return;
  if (level < 0) level = 0;
  if (level > 3) level = 3;
  emit(level, component, msg ? msg : "", f, n);
}

void nd_log(int level, const char *component, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  nd_logv(level, component, fmt, ap);
  va_end(ap);
}
