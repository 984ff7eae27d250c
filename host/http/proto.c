/* HTTP vocabulary shared by server and client: methods, status texts,
 * header blocks, and the HTTP metric families. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http/http_internal.h"

static const char *const method_names[ND_M_COUNT] = {
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS",
};

int nd_method_index(const char *s, size_t n) {
  for (int i = 0; i < ND_M_COUNT; i++)
    if (strlen(method_names[i]) == n && memcmp(method_names[i], s, n) == 0) return i;
  return -1;
}

const char *nd_method_name(int m) {
  return m >= 0 && m < ND_M_COUNT ? method_names[m] : "UNKNOWN";
}

const char *nd_status_reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 101: return "Switching Protocols";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 206: return "Partial Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 303: return "See Other";
  case 304: return "Not Modified";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 411: return "Length Required";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 417: return "Expectation Failed";
  case 422: return "Unprocessable Content";
  case 426: return "Upgrade Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  default: break;
  }
  if (status < 200) return "Informational";
  if (status < 300) return "Success";
  if (status < 400) return "Redirection";
  if (status < 500) return "Client Error";
  return "Server Error";
}

void nd_status_digits(int status, char out[4]) {
  if (status < 100 || status > 999) status = 0;
  out[0] = (char)('0' + status / 100);
  out[1] = (char)('0' + status / 10 % 10);
  out[2] = (char)('0' + status % 10);
  out[3] = '\0';
}

static const char *const wdays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void nd_http_date(time_t t, char out[40]) {
  struct tm tm;
  gmtime_r(&t, &tm);
  /* Not strftime: %a and %b follow the locale, HTTP dates must not. */
  snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d GMT", wdays[tm.tm_wday % 7], tm.tm_mday,
           months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

const char *nd_hdr_block_find(const char *block, size_t len, const char *name) {
  size_t i = 0;
  while (i < len) {
    const char *n = block + i;
    size_t nl = strlen(n);
    const char *v = n + nl + 1;
    size_t vl = strlen(v);
    if (strcasecmp(n, name) == 0) return v;
    i += nl + 1 + vl + 1;
  }
  return NULL;
}

int nd_hdr_block_add_line(nd_buf *b, const char *line, size_t n) {
  while (n && (line[n - 1] == '\r' || line[n - 1] == '\n')) n--;
  const char *colon = memchr(line, ':', n);
  if (!colon || colon == line) return -1;
  size_t nl = (size_t)(colon - line);
  const char *v = colon + 1, *end = line + n;
  while (v < end && (*v == ' ' || *v == '\t')) v++;
  while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
  if (memchr(line, '\0', n)) return -1;
  if (nd_buf_append(b, line, nl) < 0 || nd_buf_append(b, "", 1) < 0 ||
      nd_buf_append(b, v, (size_t)(end - v)) < 0 || nd_buf_append(b, "", 1) < 0)
    return -1;
  return 0;
}

void nd_http_metrics_init(nd_http_metrics *m, nd_metrics *reg) {
  memset(m, 0, sizeof *m);
  if (!reg) return;
  static const char *const req_labels[] = {"route", "method", "status", NULL};
  static const char *const dur_labels[] = {"route", "method", NULL};
  /* A failed registration leaves the handle NULL: metrics are best effort,
   * never a reason to refuse traffic. */
  if (nd_metric_register(reg, ND_METRIC_COUNTER, "notifd_http_requests_total",
                         "HTTP requests answered, by route pattern, method and status.",
                         req_labels, NULL, 0, &m->requests) < 0)
    m->requests = NULL;
  if (nd_metric_register(reg, ND_METRIC_HISTOGRAM, "notifd_http_request_duration_seconds",
                         "Time from a complete request head to its answer.", dur_labels, NULL, 0,
                         &m->duration) < 0)
    m->duration = NULL;
  if (nd_metric_register(reg, ND_METRIC_GAUGE, "notifd_http_connections",
                         "Open HTTP connections (websockets excluded).", NULL, NULL, 0,
                         &m->connections) < 0)
    m->connections = NULL;
  if (nd_metric_register(reg, ND_METRIC_GAUGE, "notifd_http_pending_body_bytes",
                         "Bytes held for request bodies not yet complete (all connections).",
                         NULL, NULL, 0, &m->pending_body) < 0)
    m->pending_body = NULL;
}
