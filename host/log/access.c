/* Access lines: field names and formats in one place (see access.h). */
#include "log/access.h"

#include <stdio.h>

#include "log/log.h"

#define INFO 2

void nd_access_request(const char *method, const char *path, int status, size_t bytes,
                       int64_t duration_ns, const char *user, const char *remote) {
  if (nd_log_level() < INFO) return;
  char st[16], by[24], ms[32];
  snprintf(st, sizeof st, "%d", status);
  snprintf(by, sizeof by, "%zu", bytes);
  snprintf(ms, sizeof ms, "%.3f", duration_ns > 0 ? (double)duration_ns / 1e6 : 0.0);
  const nd_log_field f[] = {
      {"method", method ? method : "-", 0}, {"path", path ? path : "-", 0},
      {"status", st, 1},                    {"bytes", by, 1},
      {"duration_ms", ms, 1},               {"user", user, 0},
      {"remote", remote, 0},
  };
  nd_log_fields(INFO, "access", "request", f, sizeof f / sizeof f[0]);
}

void nd_access_ws_open(const char *channel, const char *key, const char *user,
                       const char *remote, const char *protocol) {
  if (nd_log_level() < INFO) return;
  const nd_log_field f[] = {
      {"channel", channel, 0}, {"key", key, 0},           {"user", user, 0},
      {"remote", remote, 0},   {"protocol", protocol, 0},
  };
  nd_log_fields(INFO, "access", "ws open", f, sizeof f / sizeof f[0]);
}

void nd_access_ws_close(const char *channel, const char *key, const char *user,
                        int64_t duration_ms, int code) {
  if (nd_log_level() < INFO) return;
  char ms[24], cd[16];
  snprintf(ms, sizeof ms, "%lld", (long long)(duration_ms > 0 ? duration_ms : 0));
  snprintf(cd, sizeof cd, "%d", code);
  const nd_log_field f[] = {
      {"channel", channel, 0}, {"key", key, 0},  {"user", user, 0},
      {"duration_ms", ms, 1},  {"code", cd, 1},
  };
  nd_log_fields(INFO, "access", "ws close", f, sizeof f / sizeof f[0]);
}
