/* Outgoing HTTP (nd_http_call): libcurl multi on the loop against our own
 * server on 127.0.0.1, and in-process "local:" dispatch to the router.
 * Everything runs on one loop pumped by the test thread. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include <notifd/plugin.h>
#include "core/host.h"
#include "http/http.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "nd_test.h"
#include "util/buf.h"

typedef struct th {
  struct event_base *base;
  notifd_host *h;
  nd_http_server *s;
  int port;
  char url[128];
} th;

#define MAX_PARKED 4
static struct {
  notifd_req *parked[MAX_PARKED];
  int nparked;
} st;

/* ---- handlers ----------------------------------------------------------- */
static void on_hello(notifd_req *r, void *ud) {
  (void)ud;
  nd_respond(r, 200, "text/plain", "hello", 5);
}

static void on_echo(notifd_req *r, void *ud) {
  (void)ud;
  size_t len;
  const void *b = nd_req_body(r, &len);
  char n[32];
  snprintf(n, sizeof n, "%zu", len);
  nd_resp_header(r, "X-Body-Len", n);
  const char *expect = nd_req_header(r, "Expect");
  nd_resp_header(r, "X-Expect", expect ? expect : "-");
  const char *ct = nd_req_header(r, "Content-Type");
  nd_respond(r, 201, ct ? ct : "application/octet-stream", b, len);
}

static void on_query(notifd_req *r, void *ud) {
  (void)ud;
  json_t *o = json_object();
  const char *a = nd_req_query(r, "a"), *h = nd_req_header(r, "X-Test");
  json_object_set_new(o, "a", a ? json_string(a) : json_null());
  json_object_set_new(o, "hdr", h ? json_string(h) : json_null());
  json_object_set_new(o, "method", json_string(nd_req_method(r)));
  nd_respond_json(r, 200, o);
  json_decref(o);
}

static void on_never(notifd_req *r, void *ud) {
  (void)ud;
  ck_assert_int_lt(st.nparked, MAX_PARKED);
  st.parked[st.nparked++] = r;
}

static void async_fire(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  nd_respond(arg, 202, "text/plain", "late", 4);
}

static void on_async(notifd_req *r, void *ud) {
  th *t = ud;
  struct timeval tv = {0, 30000};
  ck_assert_int_eq(event_base_once(t->base, -1, EV_TIMEOUT, async_fire, r, &tv), 0);
}

static void on_internal(notifd_req *r, void *ud) {
  (void)ud;
  nd_respond_error(r, 200, "inside");
}

static th *th_new(const char *token) {
  memset(&st, 0, sizeof st);
  nd_log_configure(NOTIFD_LOG_WARN, 0);
  th *t = calloc(1, sizeof *t);
  t->base = event_base_new();
  t->h = calloc(1, sizeof *t->h);
  t->h->base = t->base;
  t->h->router = nd_router_new();
  t->h->metrics = nd_metrics_new();
  nd_config *c = &t->h->cfg;
  c->http_max_body = 1 << 20;
  c->http_max_header_bytes = 16384;
  c->http_max_connections = 1000;
  c->http_keepalive_ms = 60000;
  c->http_request_timeout_ms = 30000;
  c->internal_token = (char *)token;
  nd_router *rt = t->h->router;
  ck_assert_int_eq(nd_router_add(rt, "GET", "/hello", on_hello, t, 0, 0, "t"), 0);
  ck_assert_int_eq(nd_router_add(rt, "POST", "/echo", on_echo, t, 0, 0, "t"), 0);
  ck_assert_int_eq(nd_router_add(rt, "PUT", "/echo", on_echo, t, 0, 0, "t"), 0);
  ck_assert_int_eq(nd_router_add(rt, "POST", "/small", on_echo, t, 0, 8, "t"), 0);
  ck_assert_int_eq(nd_router_add(rt, "GET", "/query", on_query, t, 0, 0, "t"), 0);
  ck_assert_int_eq(nd_router_add(rt, "GET", "/never", on_never, t, 0, 0, "t"), 0);
  ck_assert_int_eq(nd_router_add(rt, "GET", "/async", on_async, t, 0, 0, "t"), 0);
  ck_assert_int_eq(
      nd_router_add(rt, "POST", "/internal", on_internal, t, NOTIFD_AUTH_INTERNAL, 0, "t"), 0);
  t->s = nd_http_server_new(t->h, rt, 0);
  ck_assert_int_eq(nd_http_server_listen(t->s, "127.0.0.1", 0, NULL), 0);
  t->port = nd_http_server_port(t->s);
  snprintf(t->url, sizeof t->url, "http://127.0.0.1:%d", t->port);
  return t;
}

static void pump(th *t, int ms) {
  int64_t end = nd_now_ms() + ms;
  do {
    event_base_loop(t->base, EVLOOP_NONBLOCK);
    usleep(1000);
  } while (nd_now_ms() < end);
}

static void th_free(th *t) {
  for (int i = 0; i < st.nparked; i++)
    if (st.parked[i]) nd_respond(st.parked[i], 500, NULL, NULL, 0);
  if (t->h->httpc) nd_httpc_free(t->h->httpc);
  t->h->httpc = NULL;
  nd_http_server_free(t->s);
  nd_router_free(t->h->router);
  nd_metrics_free(t->h->metrics);
  event_base_free(t->base);
  free(t->h);
  free(t);
}

/* ---- one call, waited for ------------------------------------------------ */
typedef struct result {
  int done;
  int32_t status;
  char body[4096];
  size_t len;
  char ctype[128], extra[128], expect[64];
  int64_t at;
} result;

static void on_result(int32_t status, notifd_http_resp *resp, void *ud) {
  result *r = ud;
  r->done++;
  r->status = status;
  r->at = nd_now_ms();
  if (!resp) return;
  size_t len;
  const char *b = nd_http_resp_body(resp, &len);
  ck_assert_ptr_nonnull(b);
  size_t keep = len < sizeof r->body ? len : sizeof r->body - 1;
  memcpy(r->body, b, keep);
  r->body[keep] = '\0';
  r->len = len;
  const char *ct = nd_http_resp_header(resp, "content-type");
  const char *x = nd_http_resp_header(resp, "X-Body-Len");
  const char *e = nd_http_resp_header(resp, "X-Expect");
  snprintf(r->expect, sizeof r->expect, "%s", e ? e : "");
  snprintf(r->ctype, sizeof r->ctype, "%s", ct ? ct : "");
  snprintf(r->extra, sizeof r->extra, "%s", x ? x : "");
  ck_assert_ptr_null(nd_http_resp_header(resp, "X-Absent"));
}

/* `ms` is how long the callback should take at most; the deadline is
 * generous (30 s at least) so that a loaded machine only makes the test
 * slower, never failed. */
static void wait_done(th *t, result *r, int ms) {
  if (ms < 30000) ms = 30000;
  int64_t end = nd_now_ms() + ms;
  while (!r->done && nd_now_ms() < end) {
    event_base_loop(t->base, EVLOOP_NONBLOCK);
    usleep(500);
  }
  ck_assert_msg(r->done == 1, "no callback within %d ms", ms);
}

static int call(th *t, const char *method, const char *url, const char *body,
                const char *const *headers, int64_t timeout_ms, int internal, result *r) {
  memset(r, 0, sizeof *r);
  notifd_http_client_req q = {sizeof q};
  q.method = method;
  q.url = url;
  q.headers = headers;
  q.body = body;
  q.body_len = body ? strlen(body) : 0;
  q.timeout_ms = timeout_ms;
  q.internal_auth = (uint32_t)internal;
  int rc = nd_http_call(t->h, &q, on_result, r);
  if (rc == 0) ck_assert_int_eq(r->done, 0); /* never called back synchronously */
  return rc;
}

static const char *u(th *t, const char *path) {
  static char buf[4][256];
  static int i;
  char *b = buf[i++ % 4];
  if (strncmp(path, "local:", 6) == 0)
    snprintf(b, 256, "%s", path);
  else
    snprintf(b, 256, "%s%s", t->url, path);
  return b;
}

/* ---- tests -------------------------------------------------------------- */
START_TEST(status_body_headers) {
  th *t = th_new(NULL);
  result r;
  static const char *const hdrs[] = {"X-Test: hi there", NULL};
  ck_assert_int_eq(call(t, "GET", u(t, "/query?a=x%20y"), NULL, hdrs, 0, 0, &r), 0);
  wait_done(t, &r, 3000);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.body, "{\"a\":\"x y\",\"hdr\":\"hi there\",\"method\":\"GET\"}");
  ck_assert_str_eq(r.ctype, "application/json; charset=utf-8");

  static const char *const ct[] = {"Content-Type: text/x-mine", NULL};
  ck_assert_int_eq(call(t, "POST", u(t, "/echo"), "abc", ct, 0, 0, &r), 0);
  wait_done(t, &r, 3000);
  ck_assert_int_eq(r.status, 201);
  ck_assert_str_eq(r.body, "abc");
  ck_assert_str_eq(r.ctype, "text/x-mine");
  ck_assert_str_eq(r.extra, "3");

  /* A body without Content-Type goes as JSON. */
  ck_assert_int_eq(call(t, "PUT", u(t, "/echo"), "{\"k\":1}", NULL, 0, 0, &r), 0);
  wait_done(t, &r, 3000);
  ck_assert_int_eq(r.status, 201);
  ck_assert_str_eq(r.ctype, "application/json");
  ck_assert_str_eq(r.body, "{\"k\":1}");

  /* A larger body, sent without "Expect: 100-continue" (curl would wait up
   * to a second for a 100 that notifd's server never needs to send). */
  char *big = malloc(200001);
  memset(big, 'z', 200000);
  big[200000] = '\0';
  ck_assert_int_eq(call(t, "POST", u(t, "/echo"), big, ct, 0, 0, &r), 0);
  wait_done(t, &r, 3000);
  ck_assert_int_eq(r.status, 201);
  ck_assert_str_eq(r.extra, "200000");
  ck_assert_str_eq(r.expect, "-");
  free(big);

  ck_assert_int_eq(call(t, "GET", u(t, "/nope"), NULL, NULL, 0, 0, &r), 0);
  wait_done(t, &r, 3000);
  ck_assert_int_eq(r.status, 404);
  ck_assert_str_eq(r.body, "{\"error\":\"not found\"}");
  ck_assert_uint_eq(nd_httpc_inflight(t->h->httpc), 0);
  th_free(t);
}
END_TEST

START_TEST(keepalive_reuse) {
  th *t = th_new(NULL);
  result r;
  for (int i = 0; i < 5; i++) {
    ck_assert_int_eq(call(t, "GET", u(t, "/hello"), NULL, NULL, 0, 0, &r), 0);
    wait_done(t, &r, 3000);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "hello");
  }
  pump(t, 20);
  ck_assert_uint_eq(nd_http_server_connections(t->s), 1);
  th_free(t);
}
END_TEST

START_TEST(timeout_against_silent_handler) {
  th *t = th_new(NULL);
  result r;
  int64_t t0 = nd_now_ms();
  ck_assert_int_eq(call(t, "GET", u(t, "/never"), NULL, NULL, 200, 0, &r), 0);
  wait_done(t, &r, 3000);
  ck_assert_int_eq(r.status, NOTIFD_ETIMEDOUT);
  ck_assert_int_ge(r.at - t0, 180); /* not before it (load only delays it) */
  ck_assert_int_eq(st.nparked, 1);
  pump(t, 30);
  /* curl closed the connection; the late answer goes nowhere. */
  ck_assert_int_eq(nd_respond(st.parked[0], 200, NULL, "x", 1), 0);
  st.parked[0] = NULL;
  ck_assert_uint_eq(nd_http_server_inflight(t->s), 0);
  th_free(t);
}
END_TEST

START_TEST(connection_refused) {
  th *t = th_new(NULL);
  /* A port that was free a moment ago. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t sl = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &sl);
  close(fd);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/x", ntohs(a.sin_port));
  result r;
  ck_assert_int_eq(call(t, "GET", url, NULL, NULL, 1000, 0, &r), 0);
  wait_done(t, &r, 3000);
  ck_assert_int_eq(r.status, NOTIFD_ECLOSED);
  th_free(t);
}
END_TEST

START_TEST(bad_arguments) {
  th *t = th_new(NULL);
  result r;
  ck_assert_int_eq(call(t, "GET", "ftp://127.0.0.1/x", NULL, NULL, 0, 0, &r), NOTIFD_EINVAL);
  ck_assert_int_eq(call(t, "BREW", u(t, "/hello"), NULL, NULL, 0, 0, &r), NOTIFD_EINVAL);
  static const char *const bad[] = {"X-A: 1\r\nX-B: 2", NULL};
  ck_assert_int_eq(call(t, "GET", u(t, "/hello"), NULL, bad, 0, 0, &r), NOTIFD_EINVAL);
  static const char *const nocolon[] = {"nocolon", NULL};
  ck_assert_int_eq(call(t, "GET", u(t, "/hello"), NULL, nocolon, 0, 0, &r), NOTIFD_EINVAL);
  ck_assert_int_eq(call(t, "GET", "local:hello", NULL, NULL, 0, 0, &r), NOTIFD_EINVAL);
  ck_assert_int_eq(call(t, "GET", "local:/a b", NULL, NULL, 0, 0, &r), NOTIFD_EINVAL);
  /* Internal auth without a configured token. */
  ck_assert_int_eq(call(t, "POST", u(t, "/internal"), NULL, NULL, 0, 1, &r), NOTIFD_EINVAL);
  notifd_http_client_req tiny = {4};
  ck_assert_int_eq(nd_http_call(t->h, &tiny, on_result, &r), NOTIFD_EINVAL);
  pump(t, 20);
  ck_assert_int_eq(r.done, 0);
  th_free(t);
}
END_TEST

START_TEST(internal_auth_header) {
  th *t = th_new("tok-123");
  result r;
  ck_assert_int_eq(call(t, "POST", u(t, "/internal"), "{}", NULL, 0, 1, &r), 0);
  wait_done(t, &r, 3000);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.body, "{\"error\":\"inside\"}");
  ck_assert_int_eq(call(t, "POST", u(t, "/internal"), "{}", NULL, 0, 0, &r), 0);
  wait_done(t, &r, 3000);
  ck_assert_int_eq(r.status, 401);
  /* The same through local: dispatch. */
  ck_assert_int_eq(call(t, "POST", "local:/internal", "{}", NULL, 0, 1, &r), 0);
  wait_done(t, &r, 1000);
  ck_assert_int_eq(r.status, 200);
  ck_assert_int_eq(call(t, "POST", "local:/internal", "{}", NULL, 0, 0, &r), 0);
  wait_done(t, &r, 1000);
  ck_assert_int_eq(r.status, 401);
  ck_assert_str_eq(r.body, "{\"error\":\"missing internal token\"}");
  th_free(t);
}
END_TEST

/* Without a configured token, in-process local: calls that ask for
 * internal auth are trusted; network calls and local calls without the
 * flag are still refused. */
START_TEST(internal_auth_local_without_token) {
  th *t = th_new(NULL);
  result r;
  ck_assert_int_eq(call(t, "POST", "local:/internal", "{}", NULL, 0, 1, &r), 0);
  wait_done(t, &r, 1000);
  ck_assert_int_eq(r.status, 200);
  ck_assert_int_eq(call(t, "POST", "local:/internal", "{}", NULL, 0, 0, &r), 0);
  wait_done(t, &r, 1000);
  ck_assert_int_eq(r.status, 401);
  ck_assert_int_eq(call(t, "POST", u(t, "/internal"), "{}", NULL, 0, 0, &r), 0);
  wait_done(t, &r, 3000);
  ck_assert_int_eq(r.status, 401);
  th_free(t);
}
END_TEST

START_TEST(local_dispatch) {
  th *t = th_new(NULL);
  result r;
  static const char *const hdrs[] = {"X-Test:  local ", NULL};
  ck_assert_int_eq(call(t, "GET", "local:/query?a=1%2B1", NULL, hdrs, 0, 0, &r), 0);
  wait_done(t, &r, 1000);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.body, "{\"a\":\"1+1\",\"hdr\":\"local\",\"method\":\"GET\"}");
  ck_assert_str_eq(r.ctype, "application/json; charset=utf-8");
  ck_assert_int_eq(nd_http_server_connections(t->s), 0); /* no socket involved */

  static const char *const ct[] = {"Content-Type: text/plain", NULL};
  ck_assert_int_eq(call(t, "POST", "local:/echo", "payload", ct, 0, 0, &r), 0);
  wait_done(t, &r, 1000);
  ck_assert_int_eq(r.status, 201);
  ck_assert_str_eq(r.body, "payload");
  ck_assert_str_eq(r.extra, "7");
  ck_assert_str_eq(r.ctype, "text/plain");

  /* A body without Content-Type is JSON here too. */
  ck_assert_int_eq(call(t, "POST", "local:/echo", "{}", NULL, 0, 0, &r), 0);
  wait_done(t, &r, 1000);
  ck_assert_str_eq(r.ctype, "application/json");

  ck_assert_int_eq(call(t, "GET", "local:/nope", NULL, NULL, 0, 0, &r), 0);
  wait_done(t, &r, 1000);
  ck_assert_int_eq(r.status, 404);
  ck_assert_str_eq(r.body, "{\"error\":\"not found\"}");
  ck_assert_int_eq(call(t, "DELETE", "local:/echo", NULL, NULL, 0, 0, &r), 0);
  wait_done(t, &r, 1000);
  ck_assert_int_eq(r.status, 405);
  ck_assert_int_eq(call(t, "POST", "local:/small", "123456789", NULL, 0, 0, &r), 0);
  wait_done(t, &r, 1000);
  ck_assert_int_eq(r.status, 413);
  /* The listener's http.max_body (1 MiB here) is not a local call's limit:
   * its body was made in this process. */
  size_t big_len = (1u << 20) + 10;
  char *big = malloc(big_len + 1);
  ck_assert_ptr_nonnull(big);
  memset(big, 'b', big_len);
  big[big_len] = '\0';
  ck_assert_int_eq(call(t, "POST", "local:/echo", big, ct, 0, 0, &r), 0);
  wait_done(t, &r, 1000);
  ck_assert_int_eq(r.status, 201);
  ck_assert_uint_eq(r.len, big_len);
  free(big);

  /* The handler answers later. */
  ck_assert_int_eq(call(t, "GET", "local:/async", NULL, NULL, 0, 0, &r), 0);
  wait_done(t, &r, 1000);
  ck_assert_int_eq(r.status, 202);
  ck_assert_str_eq(r.body, "late");

  /* HEAD through a GET route: headers, no body. */
  ck_assert_int_eq(call(t, "HEAD", "local:/hello", NULL, NULL, 0, 0, &r), 0);
  wait_done(t, &r, 1000);
  ck_assert_int_eq(r.status, 200);
  ck_assert_uint_eq(r.len, 0);

  /* Never answered: times out; the late answer is dropped. */
  int64_t t0 = nd_now_ms();
  ck_assert_int_eq(call(t, "GET", "local:/never", NULL, NULL, 100, 0, &r), 0);
  wait_done(t, &r, 1000);
  ck_assert_int_eq(r.status, NOTIFD_ETIMEDOUT);
  ck_assert_int_ge(r.at - t0, 90);
  ck_assert_int_eq(nd_respond(st.parked[0], 200, NULL, "x", 1), 0);
  st.parked[0] = NULL;
  ck_assert_uint_eq(nd_httpc_inflight(t->h->httpc), 0);

  /* Per-route metrics count local requests too. */
  nd_metric *m;
  static const char *const rl[] = {"route", "method", "status", NULL};
  ck_assert_int_eq(nd_metric_register(t->h->metrics, ND_METRIC_COUNTER,
                                      "notifd_http_requests_total", "", rl, NULL, 0, &m),
                   0);
  const char *v[] = {"/echo", "POST", "201"};
  ck_assert(nd_metric_value(m, v) == 3);
  th_free(t);
}
END_TEST

static void count_cb(int32_t status, notifd_http_resp *resp, void *ud) {
  (void)status;
  (void)resp;
  (*(int *)ud)++;
}

START_TEST(free_cancels_without_callbacks) {
  th *t = th_new(NULL);
  int calls = 0;
  notifd_http_client_req q = {sizeof q};
  q.method = "GET";
  q.url = u(t, "/never");
  ck_assert_int_eq(nd_http_call(t->h, &q, count_cb, &calls), 0);
  q.url = "local:/never";
  ck_assert_int_eq(nd_http_call(t->h, &q, count_cb, &calls), 0);
  for (int i = 0; i < 200 && st.nparked < 2; i++) pump(t, 2);
  ck_assert_int_eq(st.nparked, 2);
  /* Not even started yet (handlers run from the next loop turn). */
  q.url = "local:/hello";
  ck_assert_int_eq(nd_http_call(t->h, &q, count_cb, &calls), 0);
  ck_assert_uint_eq(nd_httpc_inflight(t->h->httpc), 3);
  nd_httpc_free(t->h->httpc);
  t->h->httpc = NULL;
  pump(t, 50);
  ck_assert_int_eq(calls, 0);
  th_free(t); /* answers the parked requests: dropped */
}
END_TEST

typedef struct freeing {
  th *t;
  int fired;
} freeing;

static void free_in_cb(int32_t status, notifd_http_resp *resp, void *ud) {
  (void)status;
  (void)resp;
  freeing *f = ud;
  f->fired++;
  nd_httpc_free(f->t->h->httpc);
  f->t->h->httpc = NULL;
}

START_TEST(free_from_inside_callback) {
  th *t = th_new(NULL);
  freeing f = {t, 0};
  int other = 0;
  notifd_http_client_req q = {sizeof q};
  q.url = u(t, "/hello");
  ck_assert_int_eq(nd_http_call(t->h, &q, free_in_cb, &f), 0);
  q.url = u(t, "/never");
  ck_assert_int_eq(nd_http_call(t->h, &q, count_cb, &other), 0);
  for (int i = 0; i < 500 && !f.fired; i++) pump(t, 2);
  ck_assert_int_eq(f.fired, 1);
  pump(t, 30);
  ck_assert_int_eq(other, 0);
  /* A new client comes up lazily on the next call. */
  result r;
  ck_assert_int_eq(call(t, "GET", "local:/hello", NULL, NULL, 0, 0, &r), 0);
  wait_done(t, &r, 1000);
  ck_assert_int_eq(r.status, 200);
  th_free(t);
}
END_TEST

START_TEST(many_concurrent) {
  th *t = th_new(NULL);
  enum { N = 64 };
  result *rs = calloc(N, sizeof *rs);
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(call(t, "POST", i % 2 ? u(t, "/echo") : "local:/echo", "x", NULL, 0, 0,
                          &rs[i]),
                     0);
  for (int i = 0; i < N; i++) {
    wait_done(t, &rs[i], 5000);
    ck_assert_int_eq(rs[i].status, 201);
    ck_assert_str_eq(rs[i].body, "x");
  }
  free(rs);
  th_free(t);
}
END_TEST

Suite *nd_test_suite(void) {
  Suite *s = suite_create("httpc");
  TCase *tc = tcase_create("client");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, status_body_headers);
  tcase_add_test(tc, keepalive_reuse);
  tcase_add_test(tc, timeout_against_silent_handler);
  tcase_add_test(tc, connection_refused);
  tcase_add_test(tc, bad_arguments);
  tcase_add_test(tc, internal_auth_header);
  tcase_add_test(tc, internal_auth_local_without_token);
  tcase_add_test(tc, local_dispatch);
  tcase_add_test(tc, free_cancels_without_callbacks);
  tcase_add_test(tc, free_from_inside_callback);
  tcase_add_test(tc, many_concurrent);
  suite_add_tcase(s, tc);
  return s;
}
