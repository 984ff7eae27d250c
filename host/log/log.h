/* One-line structured logs (logfmt or JSON) to stderr.  Thread-safe. */
#ifndef ND_LOG_H
#define ND_LOG_H

#include <stdarg.h>
#include <stddef.h>

typedef struct nd_logger nd_logger;

/* Process-wide sink settings (the last host created wins; logs from two
 * hosts in one process interleave safely). */
void nd_log_configure(int level, int json);
int nd_log_level(void);

/* `component` is "host", "http", "ws", "bus", a plugin name, ... */
void nd_log(int level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void nd_logv(int level, const char *component, const char *fmt, va_list ap);

/* Rate-limited: for lines that can repeat once per message (a full disk, a
 * backend down).  Per call site (`site`, NULL = the format string) the first
 * ND_LOG_RL_BURST lines of each ND_LOG_RL_WINDOW_MS window are written; the
 * rest are counted and reported in one line ("N more like this in the last
 * 10s, the last: ...") once the window is over, by the site's next line or
 * by nd_log_limited_flush() (the host calls it every few seconds). */
#define ND_LOG_RL_WINDOW_MS 10000
#define ND_LOG_RL_BURST 10
void nd_log_limited(const void *site, int level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void nd_log_limitedv(const void *site, int level, const char *component, const char *fmt,
                     va_list ap);
void nd_log_limited_flush(void);

/* One line with fields after `msg`, in the configured format: logfmt
 * `key=value` (quoted when needed) or JSON members ("key":"value", or a
 * bare number when `num` is set).  Fields whose value is NULL are left
 * out.  For access lines and other records meant for machines. */
typedef struct nd_log_field {
  const char *key;   /* [a-z_]+, written as is */
  const char *value; /* NULL = field omitted */
  int num;           /* value is a number: unquoted in JSON */
} nd_log_field;
void nd_log_fields(int level, const char *component, const char *msg, const nd_log_field *f,
                   size_t n);

#define ND_ERROR(c, ...) nd_log(0, c, __VA_ARGS__)
#define ND_ERROR_RL(c, ...) nd_log_limited(NULL, 0, c, __VA_ARGS__)
#define ND_WARN_RL(c, ...) nd_log_limited(NULL, 1, c, __VA_ARGS__)
#define ND_WARN(c, ...) nd_log(1, c, __VA_ARGS__)
#define ND_INFO(c, ...) nd_log(2, c, __VA_ARGS__)
#define ND_DEBUG(c, ...) \
  do { if (nd_log_level() >= 3) nd_log(3, c, __VA_ARGS__); } while (0)

#endif
