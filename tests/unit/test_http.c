/* HTTP server: raw bytes over real loopback sockets to a server listening
 * on 127.0.0.1:0, with the loop pumped from the test thread.  Covers the
 * parser's edge cases, keep-alive, pipelining, timeouts, async answers,
 * JSON helpers, auth, limits, graceful stop, metrics and static files. */
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include <notifd/plugin.h>
#include "core/host.h"
#include "http/http.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "auth/auth.h"
#include "nd_test.h"
#include "util/buf.h"
#include "util/ipcount.h"
#include "util/ratelimit.h"

/* ---- fixture ------------------------------------------------------------ */
typedef struct th {
  struct event_base *base;
  notifd_host *h;
  nd_http_server *s;
  int port;
} th;

/* What handlers saw or did (tests run in their own process). */
static struct {
  int async_answered;
  int second_rc, header_after_rc;
  notifd_req *parked;
  int async_delay_ms;
} st;

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
  const char *ct = nd_req_header(r, "content-type");
  nd_respond(r, 200, ct ? ct : "application/octet-stream", b, len);
}

static void on_json(notifd_req *r, void *ud) {
  (void)ud;
  json_t *j = nd_req_json_or_400(r);
  if (!j) return;
  json_t *o = json_pack("{s:b, s:i}", "ok", 1, "n", (json_int_t)json_object_size(j));
  nd_respond_json(r, 200, o);
  json_decref(o);
}

static void async_fire(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  st.async_answered++;
  nd_respond(arg, 200, "text/plain", "late", 4);
}

static void on_async(notifd_req *r, void *ud) {
  th *t = ud;
  struct timeval tv = {0, (st.async_delay_ms ? st.async_delay_ms : 50) * 1000};
  ck_assert_int_eq(event_base_once(t->base, -1, EV_TIMEOUT, async_fire, r, &tv), 0);
}

static void on_never(notifd_req *r, void *ud) {
  (void)ud;
  st.parked = r;
}

static void on_item(notifd_req *r, void *ud) {
  (void)ud;
  const char *id = nd_req_param(r, "id");
  nd_respond(r, 200, "text/plain", id, strlen(id));
}

static void on_twice(notifd_req *r, void *ud) {
  (void)ud;
  ck_assert_int_eq(nd_respond(r, 201, NULL, NULL, 0), 0);
  st.second_rc = nd_respond(r, 200, NULL, NULL, 0);
  st.header_after_rc = nd_resp_header(r, "X-Late", "1");
}

static void on_query(notifd_req *r, void *ud) {
  (void)ud;
  json_t *o = json_object();
  const char *names[] = {"a", "b", "c", "bad", "sp ace"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const char *v = nd_req_query(r, names[i]);
    json_object_set_new(o, names[i], v ? json_string(v) : json_null());
  }
  const char *h = nd_req_header(r, "x-TEST");
  json_object_set_new(o, "hdr", h ? json_string(h) : json_null());
  json_object_set_new(o, "path", json_string(nd_req_path(r)));
  json_object_set_new(o, "method", json_string(nd_req_method(r)));
  nd_respond_json(r, 200, o);
  json_decref(o);
}

static void on_ok(notifd_req *r, void *ud) {
  (void)ud;
  nd_respond_error(r, 200, "fine");
}

static void on_client(notifd_req *r, void *ud) {
  (void)ud;
  char addr[64];
  if (nd_req_client_addr(r, addr, sizeof addr) < 0) snprintf(addr, sizeof addr, "?");
  nd_respond(r, 200, "text/plain", addr, strlen(addr));
}

static void add_routes(th *t) {
  nd_router *rt = t->h->router;
  ck_assert_int_eq(nd_router_add(rt, "GET", "/hello", on_hello, t, 0, 0, "t"), 0);
  ck_assert_int_eq(nd_router_add(rt, "POST", "/echo", on_echo, t, 0, 0, "t"), 0);
  ck_assert_int_eq(nd_router_add(rt, "POST", "/json", on_json, t, 0, 0, "t"), 0);
  ck_assert_int_eq(nd_router_add(rt, "GET", "/async", on_async, t, 0, 0, "t"), 0);
  ck_assert_int_eq(nd_router_add(rt, "GET", "/never", on_never, t, 0, 0, "t"), 0);
  ck_assert_int_eq(nd_router_add(rt, "GET", "/item/{id}", on_item, t, 0, 0, "t"), 0);
  ck_assert_int_eq(nd_router_add(rt, "GET", "/twice", on_twice, t, 0, 0, "t"), 0);
  ck_assert_int_eq(nd_router_add(rt, "GET", "/query", on_query, t, 0, 0, "t"), 0);
  ck_assert_int_eq(nd_router_add(rt, "POST", "/small", on_echo, t, 0, 10, "t"), 0);
  ck_assert_int_eq(nd_router_add(rt, "GET", "/internal", on_ok, t, NOTIFD_AUTH_INTERNAL, 0, "t"),
                   0);
  ck_assert_int_eq(nd_router_add(rt, "POST", "/tok", on_ok, t, NOTIFD_AUTH_TOKEN, 0, "t"), 0);
  ck_assert_int_eq(nd_router_add(rt, "GET", "/tok", on_ok, t, NOTIFD_AUTH_TOKEN, 0, "t"), 0);
  ck_assert_int_eq(nd_router_add(rt, "GET", "/client", on_client, t, 0, 0, "t"), 0);
}

typedef void (*cfg_fn)(nd_config *cfg);

static th *th_new_ex(cfg_fn tweak, int with_metrics) {
  memset(&st, 0, sizeof st);
  nd_log_configure(NOTIFD_LOG_WARN, 0);
  th *t = calloc(1, sizeof *t);
  t->base = event_base_new();
  t->h = calloc(1, sizeof *t->h);
  t->h->base = t->base;
  if (with_metrics) t->h->metrics = nd_metrics_new();
  t->h->router = nd_router_new();
  nd_config *c = &t->h->cfg;
  c->http_max_body = 1024 * 1024;
  c->http_max_header_bytes = 16 * 1024;
  c->http_max_connections = 1000;
  c->http_keepalive_ms = 60000;
  c->http_request_timeout_ms = 30000;
  if (tweak) tweak(c);
  add_routes(t);
  t->s = nd_http_server_new(t->h, t->h->router, 0);
  ck_assert_ptr_nonnull(t->s);
  ck_assert_int_eq(nd_http_server_listen(t->s, "127.0.0.1", 0, NULL), 0);
  t->port = nd_http_server_port(t->s);
  ck_assert_int_gt(t->port, 0);
  return t;
}

static th *th_new(cfg_fn tweak) { return th_new_ex(tweak, 0); }

static void th_free(th *t) {
  nd_http_server_free(t->s);
  nd_router_free(t->h->router);
  if (t->h->metrics) nd_metrics_free(t->h->metrics);
  event_base_free(t->base);
  free(t->h);
  free(t);
}

static void pump(th *t, int ms) {
  int64_t end = nd_now_ms() + ms;
  do {
    event_base_loop(t->base, EVLOOP_NONBLOCK);
    usleep(2000);
  } while (nd_now_ms() < end);
}

static int dial(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void send_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    ck_assert_int_gt(w, 0);
    p += w;
    n -= (size_t)w;
  }
}

#define SEND(fd, lit) send_all((fd), (lit), strlen(lit))

/* ---- temp files (local: nd_test.c needs the whole host linked) ---------- */
static char *tmpdir_new(void) {
  const char *base = getenv("TMPDIR");
  char tmpl[512];
  snprintf(tmpl, sizeof tmpl, "%s/nd-http-XXXXXX", base && *base ? base : "/tmp");
  char *d = mkdtemp(tmpl);
  ck_assert_ptr_nonnull(d);
  return strdup(d);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

static void rm_tree(const char *dir) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
}

/* ---- reading raw responses ---------------------------------------------- */
typedef struct tresp {
  int status;
  char head[4096];
  const char *body;
  size_t body_len;
} tresp;

static const char *find_hdr(const char *head, const char *name, char *out, size_t cap) {
  size_t nl = strlen(name);
  for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
    const char *line = p + 2;
    if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
      const char *v = line + nl + 1;
      while (*v == ' ') v++;
      const char *e = strstr(v, "\r\n");
      size_t n = e ? (size_t)(e - v) : strlen(v);
      if (n >= cap) n = cap - 1;
      memcpy(out, v, n);
      out[n] = '\0';
      return out;
    }
  }
  return NULL;
}

/* Complete responses in buf (1xx included); bit i of `head_mask` marks
 * response i as the answer to a HEAD (no body). */
static int parse_resps(const char *buf, size_t len, tresp *out, int max, unsigned head_mask) {
  int n = 0;
  size_t off = 0;
  while (n < max && off < len) {
    const char *start = buf + off;
    const char *end = memmem(start, len - off, "\r\n\r\n", 4);
    if (!end) break;
    size_t hl = (size_t)(end - start) + 4;
    tresp *r = &out[n];
    memset(r, 0, sizeof *r);
    if (hl >= sizeof r->head || sscanf(start, "HTTP/1.1 %d", &r->status) != 1) return -1;
    memcpy(r->head, start, hl);
    r->head[hl] = '\0';
    char v[64];
    size_t bl = 0;
    if (r->status >= 200 && r->status != 204 && r->status != 304 && !(head_mask >> n & 1) &&
        find_hdr(r->head, "Content-Length", v, sizeof v))
      bl = strtoul(v, NULL, 10);
    if (off + hl + bl > len) break;
    r->body = start + hl;
    r->body_len = bl;
    off += hl + bl;
    n++;
  }
  return n;
}

typedef struct conv {
  char buf[65536];
  size_t len;
  int eof;
  tresp r[8];
  int n;
} conv;

/* Pumps the loop until `want` responses arrived (and EOF if want_eof), or
 * the timeout passed. */
static void wait_resps(th *t, int fd, conv *cv, int want, int want_eof, unsigned head_mask,
                       int ms) {
  int64_t end = nd_now_ms() + ms;
  for (;;) {
    event_base_loop(t->base, EVLOOP_NONBLOCK);
    struct pollfd p = {fd, POLLIN, 0};
    if (!cv->eof && poll(&p, 1, 2) > 0) {
      ssize_t n = recv(fd, cv->buf + cv->len, sizeof cv->buf - cv->len - 1, MSG_DONTWAIT);
      if (n > 0) cv->len += (size_t)n;
      else if (n == 0 || (errno != EAGAIN && errno != EINTR)) cv->eof = 1;
      cv->buf[cv->len] = '\0';
    } else if (cv->eof) {
      usleep(1000);
    }
    cv->n = parse_resps(cv->buf, cv->len, cv->r, 8, head_mask);
    if (cv->n >= want && (!want_eof || cv->eof)) return;
    if (nd_now_ms() > end) return;
  }
}

/* One request on a fresh connection; returns the conversation. */
static conv *roundtrip(th *t, const char *req, size_t len, int want_eof) {
  conv *cv = calloc(1, sizeof *cv);
  int fd = dial(t->port);
  ck_assert_int_ge(fd, 0);
  send_all(fd, req, len ? len : strlen(req));
  wait_resps(t, fd, cv, 1, want_eof, 0, 3000);
  close(fd);
  ck_assert_msg(cv->n >= 1, "no response to %.60s (got %zu bytes: %.200s)", req, cv->len, cv->buf);
  return cv;
}

static void expect_error(th *t, const char *req, int status, const char *msg_part) {
  conv *cv = roundtrip(t, req, 0, 1);
  ck_assert_msg(cv->r[0].status == status, "%.60s: status %d want %d", req, cv->r[0].status,
                status);
  char v[128];
  ck_assert_ptr_nonnull(find_hdr(cv->r[0].head, "Connection", v, sizeof v));
  ck_assert_str_eq(v, "close");
  ck_assert_msg(cv->eof, "connection not closed after %d", status);
  if (msg_part)
    ck_assert_msg(memmem(cv->r[0].body, cv->r[0].body_len, msg_part, strlen(msg_part)),
                  "body %.*s lacks %s", (int)cv->r[0].body_len, cv->r[0].body, msg_part);
  free(cv);
}

/* ---- tests -------------------------------------------------------------- */
START_TEST(basic_keepalive) {
  th *t = th_new(NULL);
  int fd = dial(t->port);
  conv cv = {0};
  SEND(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  wait_resps(t, fd, &cv, 1, 0, 0, 2000);
  ck_assert_int_eq(cv.n, 1);
  ck_assert_int_eq(cv.r[0].status, 200);
  ck_assert_uint_eq(cv.r[0].body_len, 5);
  ck_assert(memcmp(cv.r[0].body, "hello", 5) == 0);
  char v[128];
  ck_assert_str_eq(find_hdr(cv.r[0].head, "Content-Type", v, sizeof v), "text/plain");
  ck_assert_ptr_nonnull(find_hdr(cv.r[0].head, "Date", v, sizeof v));
  ck_assert(strstr(v, " GMT"));
  ck_assert_ptr_null(find_hdr(cv.r[0].head, "Connection", v, sizeof v));
  /* Same connection again. */
  SEND(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
  wait_resps(t, fd, &cv, 2, 0, 0, 2000);
  ck_assert_int_eq(cv.n, 2);
  ck_assert_int_eq(cv.r[1].status, 200);
  ck_assert(memcmp(cv.r[1].body, "abc", 3) == 0);
  ck_assert_str_eq(find_hdr(cv.r[1].head, "X-Body-Len", v, sizeof v), "3");
  ck_assert(!cv.eof);
  ck_assert_uint_eq(nd_http_server_connections(t->s), 1);
  close(fd);
  pump(t, 30);
  ck_assert_uint_eq(nd_http_server_connections(t->s), 0);
  th_free(t);
}
END_TEST

START_TEST(malformed_requests) {
  th *t = th_new(NULL);
  expect_error(t, "GARBAGE\r\n\r\n", 400, "malformed request line");
  expect_error(t, "GET  /hello HTTP/1.1\r\nHost: x\r\n\r\n", 400, NULL);
  expect_error(t, "GET /hello HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400, NULL);
  expect_error(t, "GET hello HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid request target");
  expect_error(t, "GET /hello HTTP/1.1\r\n\r\n", 400, "missing Host header");
  expect_error(t, "GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "repeated Host");
  expect_error(t, "GET /hello HTTP/1.1\r\nHost : x\r\n\r\n", 400, "invalid header name");
  expect_error(t, "GET /hello HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n", 400,
               "folding");
  expect_error(t, "GET /hello HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400, NULL);
  expect_error(t, "GET /hello HTTP/2.0\r\nHost: x\r\n\r\n", 505, NULL);
  expect_error(t, "BREW /hello HTTP/1.1\r\nHost: x\r\n\r\n", 501, "method not implemented");
  expect_error(t, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400,
               "invalid Content-Length");
  expect_error(t, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, NULL);
  expect_error(t, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
               400, "conflicting");
  expect_error(t,
               "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
               "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
               400, "both Content-Length and Transfer-Encoding");
  expect_error(t, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, NULL);
  expect_error(t, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
               400, NULL);
  expect_error(t, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n", 417, NULL);
  expect_error(t, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01z\r\n\r\n", 400,
               "invalid character in header value");
  expect_error(t, "GET /hel\x7flo HTTP/1.1\r\nHost: x\r\n\r\n", 400, NULL);
  /* A well-formed request still works on a fresh connection afterwards. */
  conv *cv = roundtrip(t, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0);
  ck_assert_int_eq(cv->r[0].status, 200);
  free(cv);
  th_free(t);
}
END_TEST

START_TEST(header_limits) {
  th *t = th_new(NULL);
  size_t big = 20000;
  char *req = malloc(big + 100);
  ck_assert_ptr_nonnull(req);
  static const char prefix[] = "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: ";
  size_t n = sizeof prefix - 1;
  memcpy(req, prefix, n);
  memset(req + n, 'a', big);
  strcpy(req + n + big, "\r\n\r\n");
  conv *cv = roundtrip(t, req, 0, 1);
  ck_assert_int_eq(cv->r[0].status, 431);
  ck_assert(cv->eof);
  free(cv);
  /* Just under the 16 KiB limit is fine. */
  size_t fits = 16 * 1024 - n - 4;
  memset(req + n, 'b', fits);
  strcpy(req + n + fits, "\r\n\r\n");
  cv = roundtrip(t, req, 0, 0);
  ck_assert_int_eq(cv->r[0].status, 200);
  free(cv);
  /* An endless request line is 414. */
  memcpy(req, "GET /", 5);
  memset(req + 5, 'a', big);
  strcpy(req + 5 + big, " HTTP/1.1\r\nHost: x\r\n\r\n");
  cv = roundtrip(t, req, 0, 1);
  ck_assert_int_eq(cv->r[0].status, 414);
  free(cv);
  /* Too many header lines. */
  int k = sprintf(req, "GET /hello HTTP/1.1\r\nHost: x\r\n");
  for (int i = 0; i < 200; i++) k += sprintf(req + k, "X:%d\r\n", i % 10);
  strcpy(req + k, "\r\n");
  cv = roundtrip(t, req, 0, 1);
  ck_assert_int_eq(cv->r[0].status, 431);
  free(cv);
  free(req);
  th_free(t);
}
END_TEST

START_TEST(body_limits) {
  th *t = th_new(NULL);
  /* Known from Content-Length: answered before the body is sent. */
  int fd = dial(t->port);
  SEND(fd, "POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n");
  conv cv = {0};
  wait_resps(t, fd, &cv, 1, 1, 0, 2000);
  ck_assert_int_eq(cv.n, 1);
  ck_assert_int_eq(cv.r[0].status, 413);
  ck_assert(memmem(cv.r[0].body, cv.r[0].body_len, "request body too large", 22));
  ck_assert(cv.eof);
  close(fd);
  /* Within the route's limit. */
  conv *c2 = roundtrip(t, "POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789",
                       0, 0);
  ck_assert_int_eq(c2->r[0].status, 200);
  free(c2);
  /* Chunked: 413 as soon as the sizes exceed the limit. */
  c2 = roundtrip(t,
                 "POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n",
                 0, 1);
  ck_assert_int_eq(c2->r[0].status, 413);
  free(c2);
  th_free(t);
}
END_TEST

START_TEST(server_default_body_limit) {
  th *t = th_new(NULL);
  /* /echo has no route limit: cfg.http_max_body (1 MiB) applies. */
  conv *cv = roundtrip(t, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n", 0,
                       1);
  ck_assert_int_eq(cv->r[0].status, 413);
  free(cv);
  th_free(t);
}
END_TEST

START_TEST(chunked_body) {
  th *t = th_new(NULL);
  conv *cv = roundtrip(t,
                       "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                       "Content-Type: text/x-test\r\n\r\n"
                       "5;name=val\r\nhello\r\nA\r\n world 123\r\n0\r\nX-Trailer: 1\r\n\r\n",
                       0, 0);
  ck_assert_int_eq(cv->r[0].status, 200);
  ck_assert_uint_eq(cv->r[0].body_len, 15);
  ck_assert(memcmp(cv->r[0].body, "hello world 123", 15) == 0);
  char v[64];
  ck_assert_str_eq(find_hdr(cv->r[0].head, "Content-Type", v, sizeof v), "text/x-test");
  free(cv);
  /* Byte-by-byte delivery of a chunked body works too. */
  const char *req = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "3\r\nabc\r\n0\r\n\r\n";
  int fd = dial(t->port);
  for (const char *p = req; *p; p++) {
    send_all(fd, p, 1);
    pump(t, 1);
  }
  conv c2 = {0};
  wait_resps(t, fd, &c2, 1, 0, 0, 2000);
  ck_assert_int_eq(c2.n, 1);
  ck_assert_int_eq(c2.r[0].status, 200);
  ck_assert(memcmp(c2.r[0].body, "abc", 3) == 0);
  close(fd);
  expect_error(t, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400,
               "malformed chunked body");
  expect_error(t,
               "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
               400, NULL);
  th_free(t);
}
END_TEST

START_TEST(pipelining_in_order) {
  th *t = th_new(NULL);
  int fd = dial(t->port);
  const char *req = "GET /item/1 HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /async HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /item/3 HTTP/1.1\r\nHost: x\r\n\r\n"
                    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nfour"
                    "GET /item/5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                    "GET /item/6 HTTP/1.1\r\nHost: x\r\n\r\n";
  send_all(fd, req, strlen(req));
  conv cv = {0};
  wait_resps(t, fd, &cv, 5, 1, 0, 3000);
  ck_assert_int_eq(cv.n, 5);
  const char *want[] = {"1", "late", "3", "four", "5"};
  for (int i = 0; i < 5; i++) {
    ck_assert_int_eq(cv.r[i].status, 200);
    ck_assert_msg(cv.r[i].body_len == strlen(want[i]) &&
                      memcmp(cv.r[i].body, want[i], cv.r[i].body_len) == 0,
                  "response %d: %.*s", i, (int)cv.r[i].body_len, cv.r[i].body);
  }
  char v[32];
  ck_assert_str_eq(find_hdr(cv.r[4].head, "Connection", v, sizeof v), "close");
  ck_assert(cv.eof); /* the request after "Connection: close" is never answered */
  ck_assert_int_eq(st.async_answered, 1);
  close(fd);
  th_free(t);
}
END_TEST

START_TEST(pipelining_flood) {
  /* A client that pipelines far more than it reads: the server must stop
   * reading (bounded output) and resume, answering everything in order. */
  th *t = th_new(NULL);
  enum { N = 60000 };
  nd_buf req;
  nd_buf_init(&req);
  for (int i = 0; i < N; i++) nd_buf_printf(&req, "GET /item/%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
  ck_assert(!req.oom);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int small = 4096; /* so the kernel cannot absorb all the answers */
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t->port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  size_t sent = 0;
  int64_t end = nd_now_ms() + 20000;
  /* Phase 1: write everything without reading a byte. */
  while (sent < req.len && nd_now_ms() < end) {
    ssize_t w = send(fd, req.data + sent, req.len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w > 0) sent += (size_t)w;
    event_base_loop(t->base, EVLOOP_NONBLOCK);
  }
  pump(t, 50);
  /* Phase 2: read everything. */
  nd_buf in;
  nd_buf_init(&in);
  int next = 0;
  size_t off = 0;
  while (next < N && nd_now_ms() < end) {
    if (sent < req.len) {
      ssize_t w = send(fd, req.data + sent, req.len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (w > 0) sent += (size_t)w;
    }
    event_base_loop(t->base, EVLOOP_NONBLOCK);
    char chunk[65536];
    ssize_t n = recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n > 0) nd_buf_append(&in, chunk, (size_t)n);
    ck_assert(n != 0);
    tresp r;
    while (parse_resps(in.data + off, in.len - off, &r, 1, 0) == 1) {
      char want[16];
      int wl = snprintf(want, sizeof want, "%d", next);
      ck_assert_msg(r.status == 200 && r.body_len == (size_t)wl && memcmp(r.body, want, (size_t)wl) == 0,
                    "answer %d out of order: %.*s", next, (int)r.body_len, r.body);
      off = (size_t)(r.body + r.body_len - in.data);
      next++;
    }
  }
  ck_assert_int_eq(next, N);
  nd_buf_free(&in);
  nd_buf_free(&req);
  close(fd);
  th_free(t);
}
END_TEST

START_TEST(http10) {
  th *t = th_new(NULL);
  conv *cv = roundtrip(t, "GET /hello HTTP/1.0\r\n\r\n", 0, 1);
  ck_assert_int_eq(cv->r[0].status, 200);
  ck_assert(cv->eof);
  char v[64];
  ck_assert_str_eq(find_hdr(cv->r[0].head, "Connection", v, sizeof v), "close");
  ck_assert(strncmp(cv->buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
  free(cv);
  /* 1.0 keep-alive on request */
  int fd = dial(t->port);
  conv c2 = {0};
  SEND(fd, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  wait_resps(t, fd, &c2, 1, 0, 0, 2000);
  ck_assert_int_eq(c2.n, 1);
  ck_assert_str_eq(find_hdr(c2.r[0].head, "Connection", v, sizeof v), "keep-alive");
  SEND(fd, "GET /item/2 HTTP/1.0\r\n\r\n");
  wait_resps(t, fd, &c2, 2, 1, 0, 2000);
  ck_assert_int_eq(c2.n, 2);
  ck_assert(memcmp(c2.r[1].body, "2", 1) == 0);
  ck_assert(c2.eof);
  close(fd);
  /* 1.1 with Connection: close */
  cv = roundtrip(t, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 0, 1);
  ck_assert(cv->eof);
  free(cv);
  th_free(t);
}
END_TEST

static void short_timeouts(nd_config *c) {
  c->http_request_timeout_ms = 200;
  c->http_keepalive_ms = 300;
}

START_TEST(timeouts) {
  th *t = th_new(short_timeouts);
  /* Incomplete head: 408 then close. */
  int fd = dial(t->port);
  SEND(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n");
  conv cv = {0};
  int64_t t0 = nd_now_ms();
  wait_resps(t, fd, &cv, 1, 1, 0, 2000);
  ck_assert_int_eq(cv.n, 1);
  ck_assert_int_eq(cv.r[0].status, 408);
  ck_assert(cv.eof);
  ck_assert_int_ge(nd_now_ms() - t0, 150);
  close(fd);
  /* Slowly dribbled bytes do not extend the deadline. */
  fd = dial(t->port);
  memset(&cv, 0, sizeof cv);
  t0 = nd_now_ms();
  for (int i = 0; i < 6 && !cv.eof; i++) {
    send(fd, "X", 1, MSG_NOSIGNAL);
    wait_resps(t, fd, &cv, 1, 1, 0, 60);
  }
  wait_resps(t, fd, &cv, 1, 1, 0, 1000);
  ck_assert_int_eq(cv.r[0].status, 408);
  ck_assert_int_lt(nd_now_ms() - t0, 350);
  close(fd);
  /* Incomplete body: 408 too. */
  fd = dial(t->port);
  memset(&cv, 0, sizeof cv);
  SEND(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
  wait_resps(t, fd, &cv, 1, 1, 0, 2000);
  ck_assert_int_eq(cv.r[0].status, 408);
  close(fd);
  /* Idle keep-alive: closed quietly after keepalive_ms. */
  fd = dial(t->port);
  memset(&cv, 0, sizeof cv);
  SEND(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  wait_resps(t, fd, &cv, 1, 0, 0, 1000);
  ck_assert_int_eq(cv.n, 1);
  ck_assert(!cv.eof);
  t0 = nd_now_ms();
  wait_resps(t, fd, &cv, 1, 1, 0, 2000);
  ck_assert(cv.eof);
  ck_assert_int_eq(cv.n, 1);
  ck_assert_int_ge(nd_now_ms() - t0, 200);
  close(fd);
  pump(t, 20);
  ck_assert_uint_eq(nd_http_server_connections(t->s), 0);
  th_free(t);
}
END_TEST

START_TEST(json_helpers) {
  th *t = th_new(NULL);
  conv *cv = roundtrip(t, "POST /json HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\r\n{\"a\":1,\"b\":2}",
                       0, 0);
  ck_assert_int_eq(cv->r[0].status, 200);
  ck_assert(cv->r[0].body_len == 17 && memcmp(cv->r[0].body, "{\"ok\":true,\"n\":2}", 17) == 0);
  char v[64];
  ck_assert_str_eq(find_hdr(cv->r[0].head, "Content-Type", v, sizeof v),
                   "application/json; charset=utf-8");
  free(cv);
  /* Malformed: 400 with jansson's message and position. */
  cv = roundtrip(t, "POST /json HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n{\"a\":1,}", 0, 0);
  ck_assert_int_eq(cv->r[0].status, 400);
  ck_assert_msg(memmem(cv->r[0].body, cv->r[0].body_len, "{\"error\":\"invalid JSON: ", 24) &&
                    memmem(cv->r[0].body, cv->r[0].body_len, "at line 1 column 8", 18),
                "%.*s", (int)cv->r[0].body_len, cv->r[0].body);
  ck_assert(!cv->eof); /* an answered error, not a protocol error */
  free(cv);
  /* Invalid UTF-8 inside a string. */
  cv = roundtrip(t, "POST /json HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n{\"a\":\"\xff\"}", 0,
                 0);
  ck_assert_int_eq(cv->r[0].status, 400);
  ck_assert_msg(memmem(cv->r[0].body, cv->r[0].body_len, "invalid JSON: ", 14) &&
                    memmem(cv->r[0].body, cv->r[0].body_len, "0xff", 4),
                "%.*s", (int)cv->r[0].body_len, cv->r[0].body);
  free(cv);
  /* A bad token quoted by jansson stays a readable message. */
  cv = roundtrip(t, "POST /json HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n[\x01]", 0, 0);
  ck_assert_int_eq(cv->r[0].status, 400);
  ck_assert_msg(memmem(cv->r[0].body, cv->r[0].body_len, "invalid JSON: invalid token near '?'", 36),
                "%.*s", (int)cv->r[0].body_len, cv->r[0].body);
  free(cv);
  /* Duplicate keys are refused. */
  cv = roundtrip(t, "POST /json HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\r\n{\"a\":1,\"a\":2}",
                 0, 0);
  ck_assert_int_eq(cv->r[0].status, 400);
  ck_assert(memmem(cv->r[0].body, cv->r[0].body_len, "duplicate", 9));
  free(cv);
  /* Empty body. */
  cv = roundtrip(t, "POST /json HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 0, 0);
  ck_assert_int_eq(cv->r[0].status, 400);
  free(cv);
  th_free(t);
}
END_TEST

START_TEST(async_answer) {
  th *t = th_new(NULL);
  st.async_delay_ms = 100;
  int fd = dial(t->port);
  SEND(fd, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n");
  conv cv = {0};
  wait_resps(t, fd, &cv, 1, 0, 0, 50);
  ck_assert_int_eq(cv.n, 0);
  ck_assert_uint_eq(nd_http_server_inflight(t->s), 1);
  wait_resps(t, fd, &cv, 1, 0, 0, 2000);
  ck_assert_int_eq(cv.n, 1);
  ck_assert(memcmp(cv.r[0].body, "late", 4) == 0);
  ck_assert_uint_eq(nd_http_server_inflight(t->s), 0);
  ck_assert(!cv.eof);
  close(fd);
  th_free(t);
}
END_TEST

START_TEST(client_gone_before_answer) {
  th *t = th_new(NULL);
  st.async_delay_ms = 150;
  int fd = dial(t->port);
  SEND(fd, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n");
  for (int i = 0; i < 100 && nd_http_server_inflight(t->s) == 0; i++) pump(t, 2);
  ck_assert_uint_eq(nd_http_server_inflight(t->s), 1);
  close(fd);
  pump(t, 40);
  ck_assert_int_eq(st.async_answered, 0);
  pump(t, 250);
  ck_assert_int_eq(st.async_answered, 1); /* answered into the void, no crash */
  ck_assert_uint_eq(nd_http_server_inflight(t->s), 0);
  ck_assert_uint_eq(nd_http_server_connections(t->s), 0);
  /* A parked request whose client left, answered after the server was
   * freed: dropped without touching freed memory (ASan would tell). */
  fd = dial(t->port);
  SEND(fd, "GET /never HTTP/1.1\r\nHost: x\r\n\r\n");
  for (int i = 0; i < 100 && !st.parked; i++) pump(t, 2);
  ck_assert_ptr_nonnull(st.parked);
  close(fd);
  pump(t, 20);
  notifd_req *parked = st.parked;
  nd_http_server_free(t->s);
  t->s = NULL;
  ck_assert_str_eq(nd_req_path(parked), "/never");
  ck_assert_int_eq(nd_respond(parked, 200, NULL, "x", 1), 0);
  th_free(t);
}
END_TEST

START_TEST(routing_errors_and_head) {
  th *t = th_new(NULL);
  conv *cv = roundtrip(t, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0);
  ck_assert_int_eq(cv->r[0].status, 404);
  ck_assert(cv->r[0].body_len == 21 && memcmp(cv->r[0].body, "{\"error\":\"not found\"}", 21) == 0);
  ck_assert(!cv->eof);
  free(cv);
  cv = roundtrip(t, "DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0);
  ck_assert_int_eq(cv->r[0].status, 405);
  char v[64];
  ck_assert_str_eq(find_hdr(cv->r[0].head, "Allow", v, sizeof v), "GET, HEAD");
  ck_assert(memcmp(cv->r[0].body, "{\"error\":\"method not allowed\"}", 30) == 0);
  free(cv);
  /* 404 for a POST with a small body keeps the connection usable. */
  int fd = dial(t->port);
  conv c2 = {0};
  SEND(fd, "POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
           "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"
           "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  wait_resps(t, fd, &c2, 3, 0, 1u << 1, 2000);
  ck_assert_int_eq(c2.n, 3);
  ck_assert_int_eq(c2.r[0].status, 404);
  /* HEAD: GET's headers, no body. */
  ck_assert_int_eq(c2.r[1].status, 200);
  ck_assert_str_eq(find_hdr(c2.r[1].head, "Content-Length", v, sizeof v), "5");
  ck_assert_int_eq(c2.r[2].status, 200);
  ck_assert(c2.r[2].body_len == 5 && memcmp(c2.r[2].body, "hello", 5) == 0);
  ck_assert_uint_eq(c2.len, (size_t)(c2.r[2].body + 5 - c2.buf)); /* nothing extra */
  close(fd);
  th_free(t);
}
END_TEST

START_TEST(query_headers_params) {
  th *t = th_new(NULL);
  conv *cv = roundtrip(t,
                       "GET /query?a=1&b=x+y%21&a=2&c&bad=%zz&sp%20ace=%E2%9C%93 HTTP/1.1\r\n"
                       "Host: x\r\nX-Test:   spaced value  \r\n\r\n",
                       0, 0);
  ck_assert_int_eq(cv->r[0].status, 200);
  json_error_t e;
  json_t *o = json_loadb(cv->r[0].body, cv->r[0].body_len, 0, &e);
  ck_assert_ptr_nonnull(o);
  ck_assert_str_eq(json_string_value(json_object_get(o, "a")), "1");
  ck_assert_str_eq(json_string_value(json_object_get(o, "b")), "x y!");
  ck_assert_str_eq(json_string_value(json_object_get(o, "c")), "");
  ck_assert(json_is_null(json_object_get(o, "bad")));
  ck_assert_str_eq(json_string_value(json_object_get(o, "sp ace")), "\xe2\x9c\x93");
  ck_assert_str_eq(json_string_value(json_object_get(o, "hdr")), "spaced value");
  ck_assert_str_eq(json_string_value(json_object_get(o, "path")), "/query");
  ck_assert_str_eq(json_string_value(json_object_get(o, "method")), "GET");
  json_decref(o);
  free(cv);
  /* Absolute-form target. */
  cv = roundtrip(t, "GET http://example.com/item/abs%20x?q=1 HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0);
  ck_assert_int_eq(cv->r[0].status, 200);
  ck_assert(cv->r[0].body_len == 5 && memcmp(cv->r[0].body, "abs x", 5) == 0);
  free(cv);
  th_free(t);
}
END_TEST

START_TEST(respond_twice) {
  th *t = th_new(NULL);
  conv *cv = roundtrip(t, "GET /twice HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0);
  ck_assert_int_eq(cv->r[0].status, 201);
  ck_assert_int_eq(st.second_rc, NOTIFD_ESTATE);
  ck_assert_int_eq(st.header_after_rc, NOTIFD_ESTATE);
  char v[16];
  ck_assert_str_eq(find_hdr(cv->r[0].head, "Content-Length", v, sizeof v), "0");
  free(cv);
  th_free(t);
}
END_TEST

START_TEST(expect_continue) {
  th *t = th_new(NULL);
  int fd = dial(t->port);
  SEND(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  conv cv = {0};
  wait_resps(t, fd, &cv, 1, 0, 0, 2000);
  ck_assert_int_eq(cv.n, 1);
  ck_assert_int_eq(cv.r[0].status, 100);
  SEND(fd, "hello");
  wait_resps(t, fd, &cv, 2, 0, 0, 2000);
  ck_assert_int_eq(cv.n, 2);
  ck_assert_int_eq(cv.r[1].status, 200);
  ck_assert(memcmp(cv.r[1].body, "hello", 5) == 0);
  close(fd);
  /* Over the limit: the final status instead of 100, then close. */
  fd = dial(t->port);
  memset(&cv, 0, sizeof cv);
  SEND(fd, "POST /small HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 50\r\n\r\n");
  wait_resps(t, fd, &cv, 1, 1, 0, 2000);
  ck_assert_int_eq(cv.n, 1);
  ck_assert_int_eq(cv.r[0].status, 413);
  close(fd);
  th_free(t);
}
END_TEST

static void two_conns(nd_config *c) { c->http_max_connections = 2; }

START_TEST(max_connections) {
  th *t = th_new(two_conns);
  int a = dial(t->port), b = dial(t->port);
  for (int i = 0; i < 100 && nd_http_server_connections(t->s) < 2; i++) pump(t, 2);
  ck_assert_uint_eq(nd_http_server_connections(t->s), 2);
  int c = dial(t->port);
  conv cv = {0};
  wait_resps(t, c, &cv, 1, 1, 0, 2000);
  ck_assert_int_eq(cv.n, 1);
  ck_assert_int_eq(cv.r[0].status, 503);
  ck_assert(cv.eof);
  close(c);
  close(a);
  pump(t, 20);
  /* A slot is free again. */
  conv *c2 = roundtrip(t, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0);
  ck_assert_int_eq(c2->r[0].status, 200);
  free(c2);
  close(b);
  th_free(t);
}
END_TEST

static void with_token(nd_config *c) { c->internal_token = "s3cret"; }

START_TEST(auth_internal) {
  th *t = th_new(with_token);
  conv *cv = roundtrip(t, "GET /internal HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0);
  ck_assert_int_eq(cv->r[0].status, 401);
  ck_assert(memmem(cv->r[0].body, cv->r[0].body_len, "missing internal token", 22));
  free(cv);
  cv = roundtrip(t, "GET /internal HTTP/1.1\r\nHost: x\r\nX-Notifd-Internal-Token: nope\r\n\r\n", 0,
                 0);
  ck_assert_int_eq(cv->r[0].status, 401);
  free(cv);
  cv = roundtrip(t, "GET /internal HTTP/1.1\r\nHost: x\r\nx-notifd-internal-token: s3cret\r\n\r\n",
                 0, 0);
  ck_assert_int_eq(cv->r[0].status, 200);
  free(cv);
  th_free(t);
}
END_TEST

START_TEST(graceful_stop) {
  th *t = th_new(NULL);
  int idle = dial(t->port), busy = dial(t->port);
  conv ci = {0}, cb = {0};
  SEND(idle, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  wait_resps(t, idle, &ci, 1, 0, 0, 2000);
  ck_assert_int_eq(ci.n, 1);
  SEND(busy, "GET /never HTTP/1.1\r\nHost: x\r\n\r\n");
  for (int i = 0; i < 100 && !st.parked; i++) pump(t, 2);
  ck_assert_ptr_nonnull(st.parked);
  ck_assert_uint_eq(nd_http_server_inflight(t->s), 1);
  nd_http_server_stop_accepting(t->s);
  ck_assert_int_eq(nd_http_server_port(t->s), -1);
  ck_assert_int_lt(dial(t->port), 0); /* listener closed */
  wait_resps(t, idle, &ci, 1, 1, 0, 1000);
  ck_assert(ci.eof); /* idle keep-alive closed */
  ck_assert_uint_eq(nd_http_server_connections(t->s), 1);
  nd_respond(st.parked, 200, "text/plain", "bye", 3);
  ck_assert_uint_eq(nd_http_server_inflight(t->s), 0);
  wait_resps(t, busy, &cb, 1, 1, 0, 2000);
  ck_assert_int_eq(cb.n, 1);
  char v[16];
  ck_assert_str_eq(find_hdr(cb.r[0].head, "Connection", v, sizeof v), "close");
  ck_assert(cb.eof);
  ck_assert_uint_eq(nd_http_server_connections(t->s), 0);
  close(idle);
  close(busy);
  th_free(t);
}
END_TEST

START_TEST(metrics_recorded) {
  th *t = th_new_ex(NULL, 1);
  int fd = dial(t->port);
  conv cv = {0};
  SEND(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na"
           "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nb"
           "GET /item/9 HTTP/1.1\r\nHost: x\r\n\r\n"
           "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
  wait_resps(t, fd, &cv, 4, 0, 0, 2000);
  ck_assert_int_eq(cv.n, 4);
  nd_metric *req, *dur, *conns;
  static const char *const rl[] = {"route", "method", "status", NULL};
  static const char *const dl[] = {"route", "method", NULL};
  ck_assert_int_eq(nd_metric_register(t->h->metrics, ND_METRIC_COUNTER,
                                      "notifd_http_requests_total", "", rl, NULL, 0, &req),
                   0);
  ck_assert_int_eq(nd_metric_register(t->h->metrics, ND_METRIC_HISTOGRAM,
                                      "notifd_http_request_duration_seconds", "", dl, NULL, 0,
                                      &dur),
                   0);
  ck_assert_int_eq(nd_metric_register(t->h->metrics, ND_METRIC_GAUGE, "notifd_http_connections",
                                      "", NULL, NULL, 0, &conns),
                   0);
  const char *echo[] = {"/echo", "POST", "200"}, *item[] = {"/item/{id}", "GET", "200"},
             *nope[] = {"unmatched", "GET", "404"}, *echo_d[] = {"/echo", "POST"};
  ck_assert(nd_metric_value(req, echo) == 2);
  ck_assert(nd_metric_value(req, item) == 1);
  ck_assert(nd_metric_value(req, nope) == 1);
  ck_assert(nd_metric_value(dur, echo_d) == 2); /* observation count */
  ck_assert(nd_metric_value(conns, NULL) == 1);
  close(fd);
  pump(t, 20);
  ck_assert(nd_metric_value(conns, NULL) == 0);
  char *text = NULL;
  size_t len = 0;
  ck_assert_int_eq(nd_metrics_render(t->h->metrics, &text, &len), 0);
  ck_assert_msg(strstr(text, "notifd_http_requests_total{route=\"/echo\",method=\"POST\",status="
                             "\"200\"} 2"),
                "%s", text);
  free(text);
  th_free(t);
}
END_TEST

/* ---- static files ------------------------------------------------------- */
static char *static_root;

static void with_static(nd_config *c) { c->static_dir = static_root; }

START_TEST(static_files) {
  char *top = tmpdir_new();
  char p[512];
  snprintf(p, sizeof p, "%s/www", top);
  mkdir(p, 0755);
  snprintf(p, sizeof p, "%s/www/sub", top);
  mkdir(p, 0755);
  snprintf(p, sizeof p, "%s/www/index.html", top);
  write_file(p, "<h1>hi</h1>");
  snprintf(p, sizeof p, "%s/www/app.js", top);
  write_file(p, "let x = 1;");
  snprintf(p, sizeof p, "%s/www/style.CSS", top);
  write_file(p, "body{}");
  snprintf(p, sizeof p, "%s/www/sub/index.html", top);
  write_file(p, "sub");
  snprintf(p, sizeof p, "%s/www/.hidden", top);
  write_file(p, "no");
  snprintf(p, sizeof p, "%s/secret.txt", top);
  write_file(p, "secret");
  char link[512];
  snprintf(link, sizeof link, "%s/www/link.txt", top);
  ck_assert_int_eq(symlink("../secret.txt", link), 0);
  snprintf(p, sizeof p, "%s/www", top);
  static_root = p;
  th *t = th_new(with_static);

  conv *cv = roundtrip(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0);
  char v[128], etag[128];
  ck_assert_int_eq(cv->r[0].status, 200);
  ck_assert(cv->r[0].body_len == 11 && memcmp(cv->r[0].body, "<h1>hi</h1>", 11) == 0);
  ck_assert_str_eq(find_hdr(cv->r[0].head, "Content-Type", v, sizeof v),
                   "text/html; charset=utf-8");
  ck_assert_str_eq(find_hdr(cv->r[0].head, "Cache-Control", v, sizeof v), "no-cache");
  ck_assert_ptr_nonnull(find_hdr(cv->r[0].head, "Last-Modified", v, sizeof v));
  ck_assert_ptr_nonnull(find_hdr(cv->r[0].head, "ETag", etag, sizeof etag));
  free(cv);

  char req[512];
  snprintf(req, sizeof req, "GET /index.html HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"zz\", %s\r\n\r\n",
           etag);
  cv = roundtrip(t, req, 0, 0);
  ck_assert_int_eq(cv->r[0].status, 304);
  ck_assert_uint_eq(cv->r[0].body_len, 0);
  free(cv);

  cv = roundtrip(t, "GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0);
  ck_assert_str_eq(find_hdr(cv->r[0].head, "Content-Type", v, sizeof v),
                   "text/javascript; charset=utf-8");
  free(cv);
  cv = roundtrip(t, "GET /style.CSS HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0);
  ck_assert_str_eq(find_hdr(cv->r[0].head, "Content-Type", v, sizeof v), "text/css; charset=utf-8");
  free(cv);
  cv = roundtrip(t, "GET /sub?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0);
  ck_assert_int_eq(cv->r[0].status, 301);
  ck_assert_str_eq(find_hdr(cv->r[0].head, "Location", v, sizeof v), "/sub/?x=1");
  free(cv);
  /* Never a Location another host could be read from ("//sub/"). */
  cv = roundtrip(t, "GET //sub HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0);
  ck_assert_int_eq(cv->r[0].status, 404);
  ck_assert_ptr_null(find_hdr(cv->r[0].head, "Location", v, sizeof v));
  free(cv);
  cv = roundtrip(t, "GET /\\sub HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0);
  ck_assert_int_eq(cv->r[0].status, 404);
  free(cv);
  cv = roundtrip(t, "GET /sub/ HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0);
  ck_assert(cv->r[0].status == 200 && cv->r[0].body_len == 3);
  free(cv);
  static const char *const denied[] = {"/../secret.txt", "/%2e%2e/secret.txt", "/sub/../../secret.txt",
                                       "/link.txt", "/.hidden", "/missing.png", "/%00"};
  for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++) {
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", denied[i]);
    cv = roundtrip(t, req, 0, 0);
    ck_assert_msg(cv->r[0].status == 404, "%s -> %d", denied[i], cv->r[0].status);
    free(cv);
  }
  /* Routes win over files; other methods are not static. */
  cv = roundtrip(t, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0);
  ck_assert(cv->r[0].body_len == 5);
  free(cv);
  cv = roundtrip(t, "POST /app.js HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 0, 0);
  ck_assert_int_eq(cv->r[0].status, 404);
  free(cv);
  th_free(t);
  rm_tree(top);
  free(top);
}
END_TEST

START_TEST(listen_errors_and_admin) {
  char *top = tmpdir_new();
  char p[512];
  snprintf(p, sizeof p, "%s/file.txt", top);
  write_file(p, "static");
  static_root = top;
  th *t = th_new(with_static);
  /* The port is taken: an error naming the address, nothing listening. */
  nd_http_server *dup = nd_http_server_new(t->h, t->h->router, 1);
  nd_errors errs;
  nd_errors_init(&errs);
  ck_assert_int_lt(nd_http_server_listen(dup, "127.0.0.1", t->port, &errs), 0);
  ck_assert_uint_eq(errs.n, 1);
  char msg[512];
  snprintf(msg, sizeof msg, "admin: cannot listen on 127.0.0.1:%d: ", t->port);
  ck_assert_msg(strstr(errs.msgs[0], msg), "%s", errs.msgs[0]);
  ck_assert_int_eq(nd_http_server_port(dup), -1);
  ck_assert_int_lt(nd_http_server_listen(dup, "no-such-host.invalid", 0, &errs), 0);
  ck_assert_uint_eq(errs.n, 2);
  ck_assert_int_lt(nd_http_server_listen(dup, "127.0.0.1", 70000, &errs), 0);
  /* An admin server on a free port serves routes but never static files. */
  ck_assert_int_eq(nd_http_server_listen(dup, "127.0.0.1", 0, &errs), 0);
  ck_assert_int_eq(nd_http_server_listen(dup, "127.0.0.1", 0, &errs), NOTIFD_ESTATE);
  int public_port = t->port;
  t->port = nd_http_server_port(dup);
  conv *cv = roundtrip(t, "GET /file.txt HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0);
  ck_assert_int_eq(cv->r[0].status, 404);
  free(cv);
  cv = roundtrip(t, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0);
  ck_assert_int_eq(cv->r[0].status, 200);
  free(cv);
  t->port = public_port;
  cv = roundtrip(t, "GET /file.txt HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0);
  ck_assert_int_eq(cv->r[0].status, 200);
  char v[64];
  ck_assert_str_eq(find_hdr(cv->r[0].head, "Content-Type", v, sizeof v), "text/plain; charset=utf-8");
  free(cv);
  nd_http_server_free(dup);
  nd_errors_free(&errs);
  th_free(t);
  rm_tree(top);
  free(top);
}
END_TEST

/* ---- limits against anonymous clients ------------------------------------ */
START_TEST(strict_crlf) {
  th *t = th_new(NULL);
  expect_error(t, "GET /hello HTTP/1.1\nHost: x\r\n\r\n", 400, "bare LF in request head");
  expect_error(t, "GET /hello HTTP/1.1\r\nHost: x\n\r\n", 400, "bare LF in request head");
  expect_error(t, "GET /hello HTTP/1.1\r\nHost: x\r\n\n", 400, "bare LF in request head");
  expect_error(t, "\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bare LF in request head");
  expect_error(t, "GET /hello HTTP/1.1\r\nX-A: a\rb\r\nHost: x\r\n\r\n", 400,
               "bare CR in request head");
  expect_error(t, "GET /hello\r HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bare CR in request head");
  /* Empty CRLF lines before the request line are still ignored. */
  conv *cv = roundtrip(t, "\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0);
  ck_assert_int_eq(cv->r[0].status, 200);
  free(cv);
  static const char *const chunked[][2] = {
      {"3\nabc\r\n0\r\n\r\n", "bare LF in chunked body"},
      {"3\r\nabc\n0\r\n\r\n", "bare LF in chunked body"},
      {"3\r\nabc\r\n0\n\r\n", "bare LF in chunked body"},
      {"3\r\nabc\r\n0\r\n\n", "bare LF in chunked body"},
      {"3\r\nabc\r\n0\r\nX-T: a\rb\r\n\r\n", "bare CR in chunked body"},
      {"3;x=\ry\r\nabc\r\n0\r\n\r\n", "bare CR in chunked body"},
      {"3\r\nabc\r\r\n0\r\n\r\n", "bare CR in chunked body"},
  };
  for (size_t i = 0; i < sizeof chunked / sizeof chunked[0]; i++) {
    char req[256];
    snprintf(req, sizeof req,
             "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%s",
             chunked[i][0]);
    expect_error(t, req, 400, chunked[i][1]);
  }
  /* A trailer line over the 16 KiB limit is 431 whether or not it ends in
   * a bare LF: the answer must not depend on how the bytes arrive (in
   * pieces, the limit is reached before the line's end). */
  static const char trailer_head[] =
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: ";
  size_t tn = sizeof trailer_head - 1, big = 17 * 1024;
  char *req = malloc(tn + big + 2);
  ck_assert_ptr_nonnull(req);
  memcpy(req, trailer_head, tn);
  memset(req + tn, 'a', big);
  strcpy(req + tn + big, "\n");
  expect_error(t, req, 431, NULL);
  free(req);
  th_free(t);
}
END_TEST

static void short_idle(nd_config *c) {
  c->http_idle_timeout_ms = 150;
  c->http_keepalive_ms = 60000;
}

START_TEST(idle_timeout_first_byte) {
  th *t = th_new(short_idle);
  /* Silent from the start: closed after idle_timeout, without an answer. */
  int fd = dial(t->port);
  conv cv = {0};
  int64_t t0 = nd_now_ms();
  wait_resps(t, fd, &cv, 1, 1, 0, 3000);
  ck_assert(cv.eof);
  ck_assert_int_eq(cv.n, 0);
  ck_assert_int_ge(nd_now_ms() - t0, 100);
  close(fd);
  /* After a request, keep-alive (60 s here) governs: still open well past
   * idle_timeout. */
  fd = dial(t->port);
  memset(&cv, 0, sizeof cv);
  SEND(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  wait_resps(t, fd, &cv, 1, 0, 0, 2000);
  ck_assert_int_eq(cv.n, 1);
  wait_resps(t, fd, &cv, 2, 1, 0, 500);
  ck_assert(!cv.eof);
  SEND(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  wait_resps(t, fd, &cv, 2, 0, 0, 2000);
  ck_assert_int_eq(cv.n, 2);
  close(fd);
  th_free(t);
}
END_TEST

static double gauge(th *t, const char *name) {
  nd_metric *m = NULL;
  ck_assert_int_eq(nd_metric_register(t->h->metrics, ND_METRIC_GAUGE, name, "", NULL, NULL, 0, &m),
                   0);
  return nd_metric_value(m, NULL);
}

/* Pumps until the gauge reads `want` (or 3 s pass); returns the last value. */
static double wait_gauge(th *t, const char *name, double want) {
  double v = -1;
  for (int64_t end = nd_now_ms() + 3000; nd_now_ms() < end; pump(t, 2))
    if ((v = gauge(t, name)) == want) break;
  return v;
}

static void small_pending(nd_config *c) { c->http_max_pending_body = 3000; }

#define PENDING "notifd_http_pending_body_bytes"

START_TEST(pending_body_cap) {
  th *t = th_new_ex(small_pending, 1);
  char body[2000];
  memset(body, 'b', sizeof body);
  /* A holds 1500 bytes of a 2000-byte body. */
  int a = dial(t->port);
  SEND(a, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n");
  send_all(a, body, 1500);
  ck_assert(wait_gauge(t, PENDING, 1500) == 1500);
  /* B's 1600 would make 3100 > 3000: 503 and closed. */
  int b = dial(t->port);
  SEND(b, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n");
  send_all(b, body, 1600);
  conv cb = {0};
  wait_resps(t, b, &cb, 1, 1, 0, 3000);
  ck_assert_int_eq(cb.n, 1);
  ck_assert_int_eq(cb.r[0].status, 503);
  ck_assert(memmem(cb.r[0].body, cb.r[0].body_len,
                   "server busy: too many unfinished request bodies", 47));
  ck_assert(cb.eof);
  close(b);
  ck_assert(gauge(t, PENDING) == 1500);
  /* Chunked: C declares a 1000-byte chunk (reserved up front) and is
   * still within the cap; D's does not fit. */
  int c = dial(t->port);
  SEND(c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\nabc");
  double v = -1;
  for (int64_t end = nd_now_ms() + 3000; nd_now_ms() < end && (v = gauge(t, PENDING)) <= 1500;)
    pump(t, 2);
  ck_assert_msg(v > 2500 && v <= 3000, "pending %g", v);
  int d = dial(t->port);
  SEND(d, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\nabc");
  conv cd = {0};
  wait_resps(t, d, &cd, 1, 1, 0, 3000);
  ck_assert_int_eq(cd.r[0].status, 503);
  close(d);
  /* C going away returns its bytes; A finishing returns its own. */
  close(c);
  ck_assert(wait_gauge(t, PENDING, 1500) == 1500);
  send_all(a, body, 500);
  conv ca = {0};
  wait_resps(t, a, &ca, 1, 0, 0, 3000);
  ck_assert_int_eq(ca.r[0].status, 200);
  ck_assert_uint_eq(ca.r[0].body_len, 2000);
  ck_assert(gauge(t, PENDING) == 0);
  /* Room again: a body that needed more than what was left goes through. */
  SEND(a, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n");
  send_all(a, body, 1000);
  ck_assert(wait_gauge(t, PENDING, 1000) == 1000);
  send_all(a, body, 1000);
  wait_resps(t, a, &ca, 2, 0, 0, 3000);
  ck_assert_int_eq(ca.r[1].status, 200);
  ck_assert(gauge(t, PENDING) == 0);
  close(a);
  th_free(t);
}
END_TEST

static void two_per_ip(nd_config *c) {
  static char *none[] = {NULL};
  c->http_max_conns_per_ip = 2;
  c->http_trusted_proxies = none;
}

START_TEST(per_ip_cap) {
  th *t = th_new(two_per_ip);
  int a = dial(t->port), b = dial(t->port);
  for (int i = 0; i < 100 && nd_http_server_connections(t->s) < 2; i++) pump(t, 2);
  ck_assert_uint_eq(nd_http_server_connections(t->s), 2);
  int c = dial(t->port);
  conv cv = {0};
  wait_resps(t, c, &cv, 1, 1, 0, 2000);
  ck_assert_int_eq(cv.n, 1);
  ck_assert_int_eq(cv.r[0].status, 503);
  ck_assert(memmem(cv.r[0].body, cv.r[0].body_len, "too many connections from this address", 38));
  close(c);
  close(a);
  for (int i = 0; i < 100 && nd_http_server_connections(t->s) > 1; i++) pump(t, 2);
  /* A slot is free again; an untrusted peer's X-Forwarded-For is ignored. */
  conv *c2 = roundtrip(t, "GET /client HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.7\r\n\r\n",
                       0, 0);
  ck_assert_int_eq(c2->r[0].status, 200);
  ck_assert(c2->r[0].body_len == 9 && memcmp(c2->r[0].body, "127.0.0.1", 9) == 0);
  free(c2);
  close(b);
  th_free(t);
}
END_TEST

static void trusted_default(nd_config *c) { c->http_max_conns_per_ip = 1; }

START_TEST(trusted_proxy_uncapped_and_forwarded_for) {
  /* Loopback is a trusted proxy by default: not capped, and its
   * X-Forwarded-For names the client. */
  th *t = th_new(trusted_default);
  int a = dial(t->port), b = dial(t->port);
  conv *cv = roundtrip(t,
                       "GET /client HTTP/1.1\r\nHost: x\r\n"
                       "X-Forwarded-For: 10.9.9.9, 2001:db8::5\r\n\r\n",
                       0, 0);
  ck_assert_int_eq(cv->r[0].status, 200);
  ck_assert_msg(cv->r[0].body_len == 11 && memcmp(cv->r[0].body, "2001:db8::5", 11) == 0, "%.*s",
                (int)cv->r[0].body_len, cv->r[0].body);
  free(cv);
  cv = roundtrip(t, "GET /client HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: not-an-ip\r\n\r\n", 0, 0);
  ck_assert(cv->r[0].body_len == 9 && memcmp(cv->r[0].body, "127.0.0.1", 9) == 0);
  free(cv);
  close(a);
  close(b);
  th_free(t);
}
END_TEST

#define RL_SECRET "rl-secret"

static void rate_one(nd_config *c) {
  c->jwt_secret = RL_SECRET;
  c->http_rate = 1;
  c->http_rate_burst = 2;
}

START_TEST(rate_limit_per_user) {
  th *t = th_new(rate_one);
  char *alice = nd_jwt_sign(RL_SECRET, "alice", time(NULL) + 60);
  char *bob = nd_jwt_sign(RL_SECRET, "bob", time(NULL) + 60);
  char req[1024];
  int fd = dial(t->port);
  conv cv = {0};
  for (int i = 0; i < 3; i++) {
    snprintf(req, sizeof req,
             "POST /tok HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 2\r\n\r\n{}",
             alice);
    SEND(fd, req);
    wait_resps(t, fd, &cv, i + 1, 0, 0, 2000);
    ck_assert_int_eq(cv.n, i + 1);
  }
  ck_assert_int_eq(cv.r[0].status, 200);
  ck_assert_int_eq(cv.r[1].status, 200);
  ck_assert_int_eq(cv.r[2].status, 429);
  char v[32];
  ck_assert_str_eq(find_hdr(cv.r[2].head, "Retry-After", v, sizeof v), "1");
  ck_assert(memmem(cv.r[2].body, cv.r[2].body_len, "rate limit exceeded", 19));
  ck_assert(!cv.eof); /* the body was skipped: the connection goes on */
  /* Reads are not limited; another user has a bucket of their own. */
  snprintf(req, sizeof req, "GET /tok HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", alice);
  SEND(fd, req);
  wait_resps(t, fd, &cv, 4, 0, 0, 2000);
  ck_assert_int_eq(cv.r[3].status, 200);
  snprintf(req, sizeof req,
           "POST /tok HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 0\r\n\r\n",
           bob);
  SEND(fd, req);
  wait_resps(t, fd, &cv, 5, 0, 0, 2000);
  ck_assert_int_eq(cv.r[4].status, 200);
  /* Anonymous writes (no subject) are not limited. */
  for (int i = 0; i < 4; i++) {
    conv *c2 = roundtrip(t, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx", 0, 0);
    ck_assert_int_eq(c2->r[0].status, 200);
    free(c2);
  }
  close(fd);
  free(alice);
  free(bob);
  th_free(t);
}
END_TEST

START_TEST(ratelimit_buckets) {
  nd_ratelimit *rl = nd_ratelimit_new(2, 3, 4); /* 2/s, burst 3, 4 keys */
  ck_assert_ptr_nonnull(rl);
  ck_assert_ptr_null(nd_ratelimit_new(0, 3, 4));
  ck_assert_ptr_null(nd_ratelimit_new(1, 0.5, 4));
  int64_t wait = 0;
  for (int i = 0; i < 3; i++) ck_assert_int_eq(nd_ratelimit_take(rl, "a", 1000, &wait), 1);
  ck_assert_int_eq(nd_ratelimit_peek(rl, "a", 1000, &wait), 0);
  ck_assert_int_eq(nd_ratelimit_take(rl, "a", 1000, &wait), 0);
  ck_assert_int_eq(wait, 500); /* one token per 500 ms */
  ck_assert_int_eq(nd_ratelimit_take(rl, "a", 1200, &wait), 0);
  ck_assert_int_eq(wait, 300);
  ck_assert_int_eq(nd_ratelimit_take(rl, "a", 1500, &wait), 1);
  ck_assert_int_eq(nd_ratelimit_peek(rl, "b", 1500, &wait), 1);
  ck_assert_uint_eq(nd_ratelimit_count(rl), 1); /* peek creates nothing */
  /* Bounded: the least recently used key goes when the table is full. */
  for (int i = 0; i < 10; i++) {
    char k[8];
    snprintf(k, sizeof k, "k%d", i);
    nd_ratelimit_take(rl, k, 1500, &wait);
    ck_assert_uint_le(nd_ratelimit_count(rl), 4);
  }
  /* Buckets that refilled are dropped as they are met. */
  nd_ratelimit_take(rl, "z", 100000, &wait);
  nd_ratelimit_take(rl, "z", 100000, &wait);
  ck_assert_uint_le(nd_ratelimit_count(rl), 3);
  nd_ratelimit_forget(rl, "z");
  ck_assert_int_eq(nd_ratelimit_peek(rl, "z", 100000, &wait), 1);
  nd_ratelimit_free(rl);
}
END_TEST

START_TEST(ipcount_entries) {
  static const char *const trusted[] = {"10.0.0.1", "::1", "bogus", NULL};
  nd_ipcount *m = nd_ipcount_new(2, trusted);
  ck_assert_ptr_nonnull(m);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(0x0a000002); /* 10.0.0.2 */
  struct sockaddr_in6 mapped = {.sin6_family = AF_INET6};
  ck_assert_int_eq(inet_pton(AF_INET6, "::ffff:10.0.0.2", &mapped.sin6_addr), 1);
  int over = 0;
  nd_ipent *e1 = nd_ipcount_acquire(m, (struct sockaddr *)&a, &over);
  nd_ipent *e2 = nd_ipcount_acquire(m, (struct sockaddr *)&mapped, &over);
  ck_assert_ptr_eq(e1, e2); /* the IPv4-mapped form is the same address */
  ck_assert_uint_eq(nd_ipent_count(e1), 2);
  ck_assert_ptr_null(nd_ipcount_acquire(m, (struct sockaddr *)&a, &over));
  ck_assert_int_eq(over, 1);
  char buf[64];
  ck_assert_str_eq(nd_ipent_text(e1, buf, sizeof buf), "10.0.0.2");
  ck_assert(!nd_ipent_trusted(e1));
  struct sockaddr_in6 lo6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  nd_ipent *t[3];
  for (int i = 0; i < 3; i++) ck_assert_ptr_nonnull(t[i] = nd_ipcount_acquire(m, (struct sockaddr *)&lo6, &over));
  ck_assert(nd_ipent_trusted(t[0]));
  ck_assert_str_eq(nd_ipent_text(t[0], buf, sizeof buf), "::1");
  ck_assert(nd_ip_valid("192.0.2.1") && nd_ip_valid("2001:db8::1") && !nd_ip_valid("host"));
  /* The owner lets go first; the table lives until its last entry. */
  nd_ipcount_free(m);
  nd_ipcount_release(e1);
  nd_ipcount_release(e2);
  for (int i = 0; i < 3; i++) nd_ipcount_release(t[i]);
}
END_TEST

static char *cors_list[] = {"https://app.example", NULL};
static void with_cors(nd_config *c) { c->http_cors_origins = cors_list; }

START_TEST(cors_headers_and_preflight) {
  th *t = th_new(with_cors);
  char v[128];
  conv *cv = roundtrip(t, "GET /hello HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n\r\n", 0,
                       0);
  ck_assert_int_eq(cv->r[0].status, 200);
  ck_assert_str_eq(find_hdr(cv->r[0].head, "Access-Control-Allow-Origin", v, sizeof v),
                   "https://app.example");
  ck_assert_str_eq(find_hdr(cv->r[0].head, "Vary", v, sizeof v), "Origin");
  free(cv);
  cv = roundtrip(t, "GET /hello HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n\r\n", 0, 0);
  ck_assert_int_eq(cv->r[0].status, 200);
  ck_assert_ptr_null(find_hdr(cv->r[0].head, "Access-Control-Allow-Origin", v, sizeof v));
  free(cv);
  const char *pre = "OPTIONS /echo HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n"
                    "Access-Control-Request-Method: POST\r\n"
                    "Access-Control-Request-Headers: content-type\r\n\r\n";
  cv = roundtrip(t, pre, 0, 0);
  ck_assert_int_eq(cv->r[0].status, 204);
  ck_assert_str_eq(find_hdr(cv->r[0].head, "Access-Control-Allow-Origin", v, sizeof v),
                   "https://app.example");
  ck_assert_str_eq(find_hdr(cv->r[0].head, "Access-Control-Allow-Methods", v, sizeof v), "POST");
  ck_assert_str_eq(find_hdr(cv->r[0].head, "Access-Control-Allow-Headers", v, sizeof v),
                   "Authorization, Content-Type");
  ck_assert_ptr_nonnull(find_hdr(cv->r[0].head, "Access-Control-Max-Age", v, sizeof v));
  free(cv);
  /* Unlisted origin, or a path nothing routes: no preflight answer. */
  cv = roundtrip(t,
                 "OPTIONS /echo HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n"
                 "Access-Control-Request-Method: POST\r\n\r\n",
                 0, 0);
  ck_assert_int_eq(cv->r[0].status, 405);
  ck_assert_ptr_null(find_hdr(cv->r[0].head, "Access-Control-Allow-Origin", v, sizeof v));
  free(cv);
  cv = roundtrip(t,
                 "OPTIONS /nope HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n"
                 "Access-Control-Request-Method: POST\r\n\r\n",
                 0, 0);
  ck_assert_int_eq(cv->r[0].status, 404);
  free(cv);
  th_free(t);
  /* Not configured: no CORS headers, preflights are plain 405s. */
  t = th_new(NULL);
  cv = roundtrip(t, pre, 0, 0);
  ck_assert_int_eq(cv->r[0].status, 405);
  ck_assert_ptr_null(find_hdr(cv->r[0].head, "Access-Control-Allow-Origin", v, sizeof v));
  free(cv);
  th_free(t);
}
END_TEST

START_TEST(origin_helpers) {
  ck_assert(nd_origin_same_host("http://Example.com:8080", "example.COM:8080"));
  ck_assert(!nd_origin_same_host("http://example.com", "example.com:8080"));
  ck_assert(!nd_origin_same_host("http://evil.example", "example.com"));
  ck_assert(!nd_origin_same_host("null", "null"));
  ck_assert(!nd_origin_same_host("http://a", NULL));
  char *any[] = {"*", NULL}, *one[] = {"https://A.example", NULL};
  ck_assert(nd_origin_listed(any, "https://x"));
  ck_assert(nd_origin_listed(one, "https://a.example"));
  ck_assert(!nd_origin_listed(one, "https://b.example"));
  ck_assert(!nd_origin_listed(NULL, "https://a.example"));
}
END_TEST

Suite *nd_test_suite(void) {
  Suite *s = suite_create("http");
  TCase *tc = tcase_create("server");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, basic_keepalive);
  tcase_add_test(tc, malformed_requests);
  tcase_add_test(tc, header_limits);
  tcase_add_test(tc, body_limits);
  tcase_add_test(tc, server_default_body_limit);
  tcase_add_test(tc, chunked_body);
  tcase_add_test(tc, pipelining_in_order);
  tcase_add_test(tc, pipelining_flood);
  tcase_add_test(tc, http10);
  tcase_add_test(tc, timeouts);
  tcase_add_test(tc, json_helpers);
  tcase_add_test(tc, async_answer);
  tcase_add_test(tc, client_gone_before_answer);
  tcase_add_test(tc, routing_errors_and_head);
  tcase_add_test(tc, query_headers_params);
  tcase_add_test(tc, respond_twice);
  tcase_add_test(tc, expect_continue);
  tcase_add_test(tc, max_connections);
  tcase_add_test(tc, auth_internal);
  tcase_add_test(tc, graceful_stop);
  tcase_add_test(tc, metrics_recorded);
  tcase_add_test(tc, static_files);
  tcase_add_test(tc, listen_errors_and_admin);
  suite_add_tcase(s, tc);
  TCase *lim = tcase_create("limits");
  tcase_set_timeout(lim, 30);
  tcase_add_test(lim, strict_crlf);
  tcase_add_test(lim, idle_timeout_first_byte);
  tcase_add_test(lim, pending_body_cap);
  tcase_add_test(lim, per_ip_cap);
  tcase_add_test(lim, trusted_proxy_uncapped_and_forwarded_for);
  tcase_add_test(lim, rate_limit_per_user);
  tcase_add_test(lim, ratelimit_buckets);
  tcase_add_test(lim, ipcount_entries);
  tcase_add_test(lim, cors_headers_and_preflight);
  tcase_add_test(lim, origin_helpers);
  suite_add_tcase(s, lim);
  return s;
}
