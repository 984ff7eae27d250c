/* notifd_req: accessors, the respond functions, dispatch to handlers with
 * auth, and per-route metrics.  A request is answered exactly once; the
 * answer goes to its sink (a connection or a local call) if that is still
 * there, and the request is freed after the answer (or, when answered
 * inside its handler, once the handler returns, so a second respond call
 * can still be refused with NOTIFD_ESTATE). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/auth.h"
#include "http/http_internal.h"
#include "log/log.h"

#define JSON_CT "application/json; charset=utf-8"
#define MAX_CTYPE 256

notifd_req *nd_req_alloc(size_t maxh, size_t headlen) {
  size_t extra = maxh * sizeof(nd_header) + (headlen ? headlen + 1 : 0);
  notifd_req *r = malloc(sizeof *r + extra);
  if (!r) return NULL;
  memset(r, 0, sizeof *r);
  r->hdrs = (nd_header *)(r + 1);
  if (headlen) r->head = (char *)(r->hdrs + maxh);
  r->route_label = "unmatched";
  nd_buf_init(&r->resp_hdrs);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  r->t0_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  return r;
}

void nd_req_free(notifd_req *r) {
  if (!r) return;
  if (r->dispatched && r->srv) nd_http_server_req_done(r->srv, r);
  nd_route_match_clear(&r->match);
  free(r->body);
  free(r->qbuf);
  free(r->qkv);
  if (r->json) json_decref(r->json);
  free(r->auth_subject);
  nd_buf_free(&r->resp_hdrs);
  if (r->head_heap) free(r->head);
  free(r);
}

/* ---- accessors --------------------------------------------------------- */
const char *nd_req_method(notifd_req *r) { return r ? nd_method_name(r->method) : NULL; }
const char *nd_req_path(notifd_req *r) { return r ? r->path : NULL; }

const char *nd_req_param(notifd_req *r, const char *name) {
  if (!r || !name) return NULL;
  for (size_t i = 0; i < r->match.nparams; i++)
    if (strcmp(r->match.names[i], name) == 0) return r->match.values[i];
  return NULL;
}

int nd_req_is_internal_local(const notifd_req *r) { return r && r->internal_local; }

const char *nd_req_header(notifd_req *r, const char *name) {
  if (!r || !name) return NULL;
  for (size_t i = 0; i < r->nhdrs; i++)
    if (strcasecmp(r->hdrs[i].name, name) == 0) return r->hdrs[i].value;
  return NULL;
}

const void *nd_req_body(notifd_req *r, size_t *len) {
  if (len) *len = r ? r->body_len : 0;
  if (!r) return NULL;
  return r->body ? r->body : "";
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* In-place form decoding of s[0..n) ('+' = space); NUL-terminates.  -1 on
 * a malformed escape or an encoded NUL. */
static int form_decode(char *s, size_t n) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '+') {
      c = ' ';
    } else if (c == '%') {
      int hi = n - i >= 3 ? hexval(s[i + 1]) : -1, lo = n - i >= 3 ? hexval(s[i + 2]) : -1;
      if (hi < 0 || lo < 0 || (hi | lo) == 0) return -1;
      c = (char)(hi * 16 + lo);
      i += 2;
    }
    s[o++] = c;
  }
  s[o] = '\0';
  return 0;
}

/* Splits the query once into decoded name/value pairs; pairs that fail to
 * decode are skipped (as Go's url.ParseQuery does). */
static void parse_query(notifd_req *r) {
  r->q_parsed = 1;
  if (!r->query || !*r->query) return;
  size_t n = strlen(r->query), pairs = 1;
  for (size_t i = 0; i < n; i++)
    if (r->query[i] == '&') pairs++;
  r->qbuf = malloc(n + 1);
  r->qkv = malloc(pairs * 2 * sizeof(char *));
  if (!r->qbuf || !r->qkv) {
    ND_WARN("http", "out of memory parsing a query string");
    return;
  }
  memcpy(r->qbuf, r->query, n + 1);
  char *p = r->qbuf;
  while (p) {
    char *amp = strchr(p, '&');
    if (amp) *amp = '\0';
    size_t len = strlen(p);
    if (len) {
      char *eq = memchr(p, '=', len);
      char *name = p, *value = eq ? eq + 1 : p + len;
      size_t nl = eq ? (size_t)(eq - p) : len, vl = eq ? len - nl - 1 : 0;
      if (form_decode(name, nl) == 0 && form_decode(value, vl) == 0) {
        r->qkv[2 * r->nq] = name;
        r->qkv[2 * r->nq + 1] = value;
        r->nq++;
      }
    }
    p = amp ? amp + 1 : NULL;
  }
}

const char *nd_req_query(notifd_req *r, const char *name) {
  if (!r || !name) return NULL;
  if (!r->q_parsed) parse_query(r);
  for (size_t i = 0; i < r->nq; i++)
    if (strcmp(r->qkv[2 * i], name) == 0) return r->qkv[2 * i + 1];
  return NULL;
}

json_t *nd_req_json_or_400(notifd_req *r) {
  if (!r) return NULL;
  if (r->json_parsed) return r->json;
  r->json_parsed = 1;
  json_error_t err;
  /* Duplicate keys are refused: two parsers must never disagree about
   * what a message said.  Invalid UTF-8 is refused by jansson itself. */
  r->json = json_loadb(r->body ? r->body : "", r->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                       &err);
  if (!r->json && !r->answered) {
    char msg[JSON_ERROR_TEXT_LENGTH + 96];
    snprintf(msg, sizeof msg, "invalid JSON: %s at line %d column %d", err.text, err.line,
             err.column);
    /* jansson quotes the offending input ("near '...'"): no control
     * characters in the message, and never invalid UTF-8. */
    int utf8 = nd_utf8_valid(msg, strlen(msg));
    for (char *p = msg; *p; p++)
      if ((unsigned char)*p < 0x20 || (!utf8 && (unsigned char)*p >= 0x80)) *p = '?';
    nd_respond_error(r, 400, msg);
  }
  return r->json;
}

const char *nd_req_auth_subject(notifd_req *r) { return r ? r->auth_subject : NULL; }

void nd_req_set_auth_subject(notifd_req *r, const char *sub) {
  if (!r) return;
  char *copy = nd_strdup(sub);
  if (sub && !copy) return; /* keep the old value rather than lose it */
  free(r->auth_subject);
  r->auth_subject = copy;
}

/* ---- responses --------------------------------------------------------- */
static int is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int text_ok(const char *v) {
  for (; *v; v++) {
    unsigned char c = (unsigned char)*v;
    if ((c < 0x20 && c != '\t') || c == 0x7f) return 0;
  }
  return 1;
}

int nd_resp_header(notifd_req *r, const char *name, const char *value) {
  if (!r || !name || !value || !*name) return NOTIFD_EINVAL;
  if (r->answered) return NOTIFD_ESTATE;
  for (const char *c = name; *c; c++)
    if (!is_tchar((unsigned char)*c)) return NOTIFD_EINVAL;
  if (!text_ok(value)) return NOTIFD_EINVAL;
  /* Framing and connection management belong to the server. */
  if (strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Transfer-Encoding") == 0 ||
      strcasecmp(name, "Connection") == 0 || strcasecmp(name, "Date") == 0 ||
      strcasecmp(name, "Keep-Alive") == 0 || strcasecmp(name, "Upgrade") == 0)
    return NOTIFD_EINVAL;
  size_t before = r->resp_hdrs.len;
  if (nd_buf_puts(&r->resp_hdrs, name) < 0 || nd_buf_append(&r->resp_hdrs, ": ", 2) < 0 ||
      nd_buf_puts(&r->resp_hdrs, value) < 0 || nd_buf_append(&r->resp_hdrs, "\r\n", 2) < 0) {
    if (!r->resp_hdrs.oom) r->resp_hdrs.len = before;
    return NOTIFD_ENOMEM;
  }
  return 0;
}

static void record_metrics(notifd_req *r, int status) {
  const nd_http_metrics *m = r->metrics;
  if (!m || (!m->requests && !m->duration)) return;
  char st[4];
  nd_status_digits(status, st);
  const char *values[3] = {r->route_label, nd_method_name(r->method), st};
  nd_metric_add(m->requests, values, 1);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  nd_metric_observe(m->duration, values, (double)(now - r->t0_ns) / 1e9);
}

/* Common end of every respond function.  Frees `heap` unless the sink
 * took it. */
static int answer(notifd_req *r, int32_t status, const char *ctype, const void *body, size_t len,
                  char *heap) {
  if (r->resp_hdrs.oom) {
    /* A header could not be stored: answering without it could be wrong
     * (e.g. a missing Location), so say what happened instead. */
    nd_buf_free(&r->resp_hdrs);
    free(heap);
    static const char oom[] = "{\"error\":\"out of memory\"}";
    ctype = JSON_CT;
    body = oom;
    len = sizeof oom - 1;
    heap = NULL;
    status = 500;
  }
  r->answered = 1;
  record_metrics(r, status);
  nd_resp_view v = {status, ctype, r->resp_hdrs.data, r->resp_hdrs.len, body, len, heap};
  if (r->deliver) r->deliver(r->sink, r, &v);
  free(v.body_heap);
  if (r->dispatched && r->srv) nd_http_server_req_done(r->srv, r);
  r->dispatched = 0;
  if (!r->in_handler) nd_req_free(r);
  return 0;
}

static int check_answer(notifd_req *r, int32_t status, const char *ctype) {
  if (!r) return NOTIFD_EINVAL;
  if (r->answered) return NOTIFD_ESTATE;
  if (status < 200 || status > 599) return NOTIFD_EINVAL;
  if (ctype && (strlen(ctype) > MAX_CTYPE || !text_ok(ctype))) return NOTIFD_EINVAL;
  return 0;
}

int nd_respond(notifd_req *r, int32_t status, const char *content_type, const void *body,
               size_t len) {
  int rc = check_answer(r, status, content_type);
  if (rc) return rc;
  if (!body) len = 0;
  return answer(r, status, content_type, body, len, NULL);
}

int nd_respond_heap(notifd_req *r, int32_t status, const char *content_type, char *body,
                    size_t len) {
  int rc = check_answer(r, status, content_type);
  if (rc) {
    free(body);
    return rc;
  }
  return answer(r, status, content_type, body, body ? len : 0, body);
}

int nd_respond_json(notifd_req *r, int32_t status, const json_t *body) {
  int rc = check_answer(r, status, NULL);
  if (rc) return rc;
  if (!body) return NOTIFD_EINVAL;
  char *s = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
  if (!s) {
    ND_ERROR("http", "response JSON could not be serialized (invalid value or out of memory)");
    return nd_respond_error(r, 500, "response could not be serialized");
  }
  return answer(r, status, JSON_CT, s, strlen(s), s);
}

int nd_respond_error(notifd_req *r, int32_t status, const char *msg) {
  int rc = check_answer(r, status, NULL);
  if (rc) return rc;
  if (!msg || !nd_utf8_valid(msg, strlen(msg))) msg = nd_status_reason(status);
  json_t *o = json_object();
  json_t *s = json_string(msg);
  char *text = NULL;
  if (o && s && json_object_set_new(o, "error", s) == 0) {
    s = NULL;
    text = json_dumps(o, JSON_COMPACT);
  }
  json_decref(s);
  json_decref(o);
  if (!text) {
    static const char oom[] = "{\"error\":\"out of memory\"}";
    return answer(r, status, JSON_CT, oom, sizeof oom - 1, NULL);
  }
  return answer(r, status, JSON_CT, text, strlen(text), text);
}

int nd_req_answer_routing(notifd_req *r, int status, const char *allow) {
  if (status == 405) {
    if (allow && *allow) nd_resp_header(r, "Allow", allow);
    return nd_respond_error(r, 405, "method not allowed");
  }
  return nd_respond_error(r, status, status == 404 ? "not found" : nd_status_reason(status));
}

/* ---- dispatch ---------------------------------------------------------- */
int nd_req_auth_ok(notifd_req *r, const char **why) {
  *why = NULL;
  if (!r->route || r->route->auth == NOTIFD_AUTH_NONE) return 1;
  if (r->host && nd_auth_check(r->host, r->route->auth, r, NULL, why) == 0) return 1;
  if (!*why) *why = "unauthorized";
  return 0;
}

void nd_req_run_handler(notifd_req *r) {
  r->in_handler = 1;
  if (r->srv) {
    r->dispatched = 1;
    nd_http_server_req_dispatched(r->srv, r);
  }
  r->route->handler(r, r->route->ud);
  r->in_handler = 0;
  if (r->answered) nd_req_free(r);
}
