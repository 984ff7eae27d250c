/* Structured one-line logs.  Each line is formatted into a local buffer and
 * written with one write(2), so lines from several threads never interleave. */
#include "log/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
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
  if (level < 0) level = 0;
  if (level > 3) level = 3;
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

/* ---- rate-limited lines ----
 * One slot per call site (its format string), shared by every thread: the
 * first ND_LOG_RL_BURST lines of a window pass, the rest are counted and
 * reported in one line when the window has passed (by the next line of that
 * site or by nd_log_limited_flush). */
#define RL_SLOTS 256

typedef struct rl_slot {
  const void *site;
  int level;
  char comp[32];
  int64_t start_ms;
  uint32_t passed;
  uint64_t suppressed;
  char last[512]; /* the last suppressed line */
} rl_slot;

static rl_slot rl_slots[RL_SLOTS];
static pthread_mutex_t rl_mu = PTHREAD_MUTEX_INITIALIZER;

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct rl_summary {
  int level;
  char comp[32];
  uint64_t n;
  char last[512];
} rl_summary;

/* Takes the slot's count if its window is over (mutex held). */
static int rl_take(rl_slot *s, int64_t now, rl_summary *out) {
  if (now - s->start_ms < ND_LOG_RL_WINDOW_MS) return 0;
  int have = s->suppressed > 0;
  if (have) {
    out->level = s->level;
    memcpy(out->comp, s->comp, sizeof out->comp);
    out->n = s->suppressed;
    memcpy(out->last, s->last, sizeof out->last);
  }
  s->start_ms = now;
  s->passed = 0;
  s->suppressed = 0;
  return have;
}

static void rl_report(const rl_summary *r) {
  char line[700];
  snprintf(line, sizeof line, "%llu more like this in the last %ds, the last: %s",
           (unsigned long long)r->n, ND_LOG_RL_WINDOW_MS / 1000, r->last);
  emit(r->level, r->comp, line, NULL, 0);
}

void nd_log_limitedv(const void *site, int level, const char *component, const char *fmt,
                     va_list ap) {
  if (level > atomic_load(&g_level)) return;
  char msg[2048];
  vsnprintf(msg, sizeof msg, fmt, ap);
  if (!site) site = fmt;
  uintptr_t hv = (uintptr_t)site;
  size_t i = (size_t)((hv >> 4) ^ (hv >> 12)) % RL_SLOTS;
  int64_t now = mono_ms();
  rl_summary sum;
  int have_sum = 0, pass = 1;
  pthread_mutex_lock(&rl_mu);
  rl_slot *s = NULL;
  for (size_t k = 0; k < RL_SLOTS; k++) {
    rl_slot *c = &rl_slots[(i + k) % RL_SLOTS];
    if (c->site == site || !c->site) {
      s = c;
      break;
    }
  }
  if (s) { /* a full table logs everything, as before */
    if (!s->site) {
      s->site = site;
      s->level = level;
      snprintf(s->comp, sizeof s->comp, "%s", component ? component : "-");
      s->start_ms = now;
    } else {
      have_sum = rl_take(s, now, &sum);
    }
    if (s->passed < ND_LOG_RL_BURST) {
      s->passed++;
    } else {
      pass = 0;
      s->suppressed++;
      size_t ml = strlen(msg);
      if (ml >= sizeof s->last) ml = sizeof s->last - 1;
      memcpy(s->last, msg, ml);
      s->last[ml] = '\0';
    }
  }
  pthread_mutex_unlock(&rl_mu);
  if (have_sum) rl_report(&sum);
  if (pass) emit(level, component, msg, NULL, 0);
}

void nd_log_limited(const void *site, int level, const char *component, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  nd_log_limitedv(site, level, component, fmt, ap);
  va_end(ap);
}

void nd_log_limited_flush(void) {
  int64_t now = mono_ms();
  for (size_t i = 0; i < RL_SLOTS; i++) {
    rl_summary sum;
    int have = 0;
    pthread_mutex_lock(&rl_mu);
    if (rl_slots[i].site && rl_slots[i].suppressed) have = rl_take(&rl_slots[i], now, &sum);
    pthread_mutex_unlock(&rl_mu);
    if (have) rl_report(&sum);
  }
}
