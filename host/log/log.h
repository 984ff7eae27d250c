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
#define ND_WARN(c, ...) nd_log(1, c, __VA_ARGS__)
#define ND_INFO(c, ...) nd_log(2, c, __VA_ARGS__)
#define ND_DEBUG(c, ...) \
  do { if (nd_log_level() >= 3) nd_log(3, c, __VA_ARGS__); } while (0)

#endif
