/* Websocket layer end to end: a host assembled by hand (event base, hub,
 * HTTP server) on its own loop thread, and a raw RFC 6455 client over real
 * TCP sockets in the test thread. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "core/host.h"
#include "http/http.h"
#include "metrics/metrics.h"
#include "nd_test.h"
#include "ws/ws.h"
#include "ws/ws_frame.h"
#include "ws/ws_internal.h"
#include "util/buf.h"

#define SECRET "ws-test-secret"
#define INTERNAL "internal-shared-token"

/* ---- the hand-made host ------------------------------------------------- */

typedef struct th {
  notifd_host *h;
  pthread_t thr;
  volatile int stop;
  int port;
  notifd_ws_channel *chat, *echo, *tok, *v2;
  notifd_ws_conn *paused;    /* the /v2 connection opened with pause=1 */
  char v2_proto[32], v2_subject[32]; /* what the last /v2 on_open saw */
  pthread_mutex_t mu;
  int opens, closes, last_close_code;
  int messages;
} th;

static th *T; /* the host of the running test (one per forked test) */

static void on_open(notifd_ws_conn *c, void *ud) {
  th *t = ud;
  (void)c;
  pthread_mutex_lock(&t->mu);
  t->opens++;
  pthread_mutex_unlock(&t->mu);
}

static void on_close(notifd_ws_conn *c, int32_t code, void *ud) {
  th *t = ud;
  ck_assert_ptr_nonnull(nd_ws_conn_key(c));
  pthread_mutex_lock(&t->mu);
  t->closes++;
  t->last_close_code = code;
  pthread_mutex_unlock(&t->mu);
}

static void on_echo(notifd_ws_conn *c, const void *data, size_t len, int32_t is_text, void *ud) {
  th *t = ud;
  pthread_mutex_lock(&t->mu);
  t->messages++;
  pthread_mutex_unlock(&t->mu);
  if (len >= 2 && memcmp(data, "q:", 2) == 0) return; /* counted, not echoed */
  if (len == 5 && memcmp(data, "close", 5) == 0) {
    nd_ws_close(c, 4001, "asked to");
    return;
  }
  if (len == 3 && memcmp(data, "api", 3) == 0) {
    /* Argument checks of the connection API, answered as one text frame. */
    int bad = 0;
    size_t big = t->h->cfg.ws_max_queue_bytes + 1;
    char *huge = calloc(1, big);
    if (nd_ws_close(c, 1005, NULL) != NOTIFD_EINVAL) bad |= 1;
    if (nd_ws_close(c, 1000, "\xff") != NOTIFD_EINVAL) bad |= 2;
    if (nd_ws_send(c, "\xff", 1, 1) != NOTIFD_EINVAL) bad |= 4;
    /* Larger than the queue limit: it goes out on an idle queue (the
     * client reads it before the answer). */
    if (!huge || nd_ws_send(c, huge, big, 0) != 0) bad |= 8;
    if (!nd_ws_conn_param(c, "k") || strcmp(nd_ws_conn_param(c, "k"), nd_ws_conn_key(c))) bad |= 16;
    if (nd_ws_conn_param(c, "nope")) bad |= 32;
    nd_ws_conn_set_data(c, huge);
    if (nd_ws_conn_data(c) != huge) bad |= 64;
    nd_ws_conn_set_data(c, NULL);
    free(huge);
    char out[32];
    int n = snprintf(out, sizeof out, "api:%d", bad);
    nd_ws_send(c, out, (size_t)n, 1);
    return;
  }
  nd_ws_send(c, data, len, is_text);
}

/* /v2: records the negotiated subprotocol and the user; a key starting
 * with "paused" takes the connection out of its key's publishes and greets
 * it with ws_send. */
static void on_v2_open(notifd_ws_conn *c, void *ud) {
  th *t = ud;
  const char *p = nd_ws_conn_subprotocol(c), *s = nd_ws_conn_subject(c);
  pthread_mutex_lock(&t->mu);
  snprintf(t->v2_proto, sizeof t->v2_proto, "%s", p ? p : "-");
  snprintf(t->v2_subject, sizeof t->v2_subject, "%s", s ? s : "-");
  t->opens++;
  pthread_mutex_unlock(&t->mu);
  if (strncmp(nd_ws_conn_key(c), "paused", 6) == 0) {
    ck_assert_int_eq(nd_ws_conn_pause(c), 0);
    ck_assert_int_eq(nd_ws_conn_pause(c), 0); /* idempotent */
    ck_assert_int_eq(nd_ws_send(c, "replay", 6, 1), 0);
    t->paused = c;
  }
}

static void on_v2_close(notifd_ws_conn *c, int32_t code, void *ud) {
  th *t = ud;
  (void)code;
  if (t->paused == c) t->paused = NULL;
}

static void on_internal(notifd_req *r, void *ud) {
  (void)ud;
  nd_respond(r, 200, "text/plain", "ok", 2);
}

static void *loop_main(void *arg) {
  th *t = arg;
  while (!t->stop) event_base_loop(t->h->base, EVLOOP_ONCE | EVLOOP_NO_EXIT_ON_EMPTY);
  return NULL;
}

typedef void (*cfg_fn)(nd_config *cfg);

static void set_defaults(nd_config *c) {
  c->listen_address = "127.0.0.1";
  c->http_max_body = 1 << 20;
  c->http_max_header_bytes = 16384;
  c->http_max_connections = 10000;
  c->http_keepalive_ms = 60000;
  c->http_request_timeout_ms = 30000;
  c->shutdown_deadline_ms = 10000;
  c->jwt_secret = SECRET;
  c->internal_token = INTERNAL;
  c->ws_ping_interval_ms = 25000;
  c->ws_pong_timeout_ms = 10000;
  c->ws_handshake_timeout_ms = 10000;
  c->ws_max_message = 65536;
  c->ws_max_queue_bytes = 1 << 20;
  c->ws_max_queue_frames = 1024;
  c->ws_max_connections = 100000;
  c->ws_max_per_key = 64;
  c->workers = 1;
}

static th *th_start(cfg_fn tweak) {
  static int threads_on;
  if (!threads_on) {
    evthread_use_pthreads();
    threads_on = 1;
  }
  th *t = calloc(1, sizeof *t);
  ck_assert_ptr_nonnull(t);
  pthread_mutex_init(&t->mu, NULL);
  notifd_host *h = calloc(1, sizeof *h);
  ck_assert_ptr_nonnull(h);
  t->h = h;
  h->base = event_base_new();
  ck_assert_ptr_nonnull(h->base);
  set_defaults(&h->cfg);
  if (tweak) tweak(&h->cfg);
  nd_errors_init(&h->errs);
  h->metrics = nd_metrics_new();
  h->router = nd_router_new();
  h->ws = nd_ws_hub_new(h);
  ck_assert_ptr_nonnull(h->ws);

  h->phase = ND_PHASE_INIT;
  static const char *const chat_req[] = {"sender_id", "receiver_id", NULL};
  notifd_ws_channel_opts o = {sizeof o};
  o.path = "/chat/subscribe-websocket";
  o.key_param = "stream_id";
  o.required_params = chat_req;
  o.on_open = on_open;
  o.on_close = on_close;
  o.ud = t;
  ck_assert_int_eq(nd_ws_channel_add(h->ws, NULL, &o, &t->chat), 0);
  ck_assert_int_eq(nd_ws_channel_add(h->ws, NULL, &o, &t->echo), NOTIFD_EEXIST);

  notifd_ws_channel_opts e = {sizeof e};
  e.path = "/echo";
  e.key_param = "k";
  e.on_open = on_open;
  e.on_message = on_echo;
  e.on_close = on_close;
  e.ud = t;
  ck_assert_int_eq(nd_ws_channel_add(h->ws, NULL, &e, &t->echo), 0);

  static const char *const tok_subjects[] = {"sender_id", "receiver_id", NULL};
  notifd_ws_channel_opts k = {sizeof k};
  k.auth = NOTIFD_AUTH_TOKEN;
  k.path = "/secure";
  k.key_param = "stream_id";
  k.subject_params = tok_subjects;
  k.ud = t;
  ck_assert_int_eq(nd_ws_channel_add(h->ws, NULL, &k, &t->tok), 0);

  static const char *const v2_subjects[] = {"user", NULL};
  static const char *const v2_protos[] = {"notifd.test.v2", "other.v1", NULL};
  notifd_ws_channel_opts v = {sizeof v};
  v.auth = NOTIFD_AUTH_TOKEN;
  v.path = "/v2";
  v.key_param = "k";
  v.subject_params = v2_subjects;
  v.subprotocols = v2_protos;
  v.on_open = on_v2_open;
  v.on_close = on_v2_close;
  v.ud = t;
  ck_assert_int_eq(nd_ws_channel_add(h->ws, NULL, &v, &t->v2), 0);
  static const char *const bad_protos[] = {"has space", NULL};
  notifd_ws_channel_opts bad = v;
  bad.path = "/v2-bad";
  bad.subprotocols = bad_protos;
  notifd_ws_channel *unused = NULL;
  ck_assert_int_eq(nd_ws_channel_add(h->ws, NULL, &bad, &unused), NOTIFD_EINVAL);
  ck_assert_int_eq(nd_router_add(h->router, "GET", "/internal", on_internal, NULL,
                                 NOTIFD_AUTH_INTERNAL, 0, "test"),
                   0);
  h->phase = ND_PHASE_RUNNING;
  notifd_ws_channel *late = NULL;
  ck_assert_int_eq(nd_ws_channel_add(h->ws, NULL, &e, &late), NOTIFD_ESTATE);

  h->http = nd_http_server_new(h, h->router, 0);
  ck_assert_ptr_nonnull(h->http);
  ck_assert_int_eq(nd_http_server_listen(h->http, "127.0.0.1", 0, &h->errs), 0);
  t->port = nd_http_server_port(h->http);
  ck_assert_int_gt(t->port, 0);
  ck_assert_int_eq(pthread_create(&t->thr, NULL, loop_main, t), 0);
  T = t;
  return t;
}

/* Runs fn(arg) on the loop thread and waits for it. */
typedef struct job {
  void (*fn)(void *);
  void *arg;
  int done;
  pthread_mutex_t mu;
  pthread_cond_t cv;
} job;

static void job_run(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  job *j = arg;
  j->fn(j->arg);
  pthread_mutex_lock(&j->mu);
  j->done = 1;
  pthread_cond_signal(&j->cv);
  pthread_mutex_unlock(&j->mu);
}

static void on_base(struct event_base *base, void (*fn)(void *), void *arg) {
  job j = {fn, arg, 0, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};
  struct timeval zero = {0, 0};
  ck_assert_int_eq(event_base_once(base, -1, EV_TIMEOUT, job_run, &j, &zero), 0);
  pthread_mutex_lock(&j.mu);
  while (!j.done) pthread_cond_wait(&j.cv, &j.mu);
  pthread_mutex_unlock(&j.mu);
}

static void on_loop(th *t, void (*fn)(void *), void *arg) { on_base(t->h->base, fn, arg); }

static void teardown_on_loop(void *arg) {
  th *t = arg;
  notifd_host *h = t->h;
  nd_http_server_free(h->http);
  h->http = NULL;
  nd_ws_hub_free(h->ws);
  h->ws = NULL;
  t->stop = 1;
}

static void th_stop(th *t) {
  on_loop(t, teardown_on_loop, t);
  event_base_loopbreak(t->h->base);
  pthread_join(t->thr, NULL);
  nd_router_free(t->h->router);
  nd_metrics_free(t->h->metrics);
  nd_errors_free(&t->h->errs);
  event_base_free(t->h->base);
  free(t->h);
  pthread_mutex_destroy(&t->mu);
  free(t);
  T = NULL;
}

typedef struct pub {
  notifd_ws_channel *ch;
  const char *key;
  const void *data;
  size_t len;
  int count;
  int rc;
  uint32_t delivered, failed, keycount;
} pub;

static void do_publish(void *arg) {
  pub *p = arg;
  for (int i = 0; i < p->count; i++) {
    uint32_t d = 0, f = 0;
    p->rc = nd_ws_publish(p->ch, p->key, p->data, p->len, &d, &f);
    p->delivered += d;
    p->failed += f;
  }
  p->keycount = nd_ws_key_count(p->ch, p->key);
}

static pub publish(th *t, notifd_ws_channel *ch, const char *key, const char *text) {
  pub p = {ch, key, text, strlen(text), 1, 0, 0, 0, 0};
  on_loop(t, do_publish, &p);
  return p;
}

static uint32_t key_count(th *t, notifd_ws_channel *ch, const char *key) {
  pub p = {ch, key, NULL, 0, 0, 0, 0, 0, 0}; /* count 0: only read the count */
  on_loop(t, do_publish, &p);
  return p.keycount;
}

/* Deadlines for what must happen (a frame, a count reached): generous,
 * because the suite runs on loaded machines under ASan; a test that passes
 * waits only as long as the event takes.  Quiet periods (nothing must
 * arrive) keep their own short waits. */
#define FRAME_WAIT_MS 30000
#define POLL_STEPS 3000 /* x 10 ms */

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Polls until the key has `want` connections (the server may still be
 * processing a disconnect); returns the last count. */
static uint32_t wait_key_count(th *t, notifd_ws_channel *ch, const char *key, uint32_t want) {
  uint32_t n = 0;
  for (int i = 0; i < POLL_STEPS; i++) {
    if ((n = key_count(t, ch, key)) == want) break;
    sleep_ms(10);
  }
  return n;
}

typedef struct mval {
  const char *name;
  const char *labels[3];
  double v;
} mval;

static void read_metric(void *arg) {
  mval *m = arg;
  nd_metric *metric = NULL;
  static const char *const l1[] = {"channel", NULL};
  static const char *const l2[] = {"channel", "reason", NULL};
  int type = strstr(m->name, "_total") ? ND_METRIC_COUNTER : ND_METRIC_GAUGE;
  nd_metric_register(T->h->metrics, type, m->name, "", m->labels[1] ? l2 : l1, NULL, 0, &metric);
  m->v = metric ? nd_metric_value(metric, m->labels) : -1;
}

static double metric(const char *name, const char *channel, const char *reason) {
  mval m = {name, {channel, reason, NULL}, 0};
  on_loop(T, read_metric, &m);
  return m.v;
}

/* ---- a raw websocket client ---------------------------------------------- */

typedef struct wsc {
  int fd;
  int status;          /* HTTP status of the handshake answer */
  char body[1024];     /* its body when not 101 */
  char head[2048];
  uint8_t *buf;        /* bytes read past what was consumed */
  size_t have, cap;
} wsc;

static int tcp_connect(int port, int rcvbuf) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  if (rcvbuf) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static void write_all(int fd, const void *p, size_t n) {
  const char *s = p;
  while (n) {
    ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    ck_assert_msg(k > 0, "send: %s", strerror(errno));
    s += k;
    n -= (size_t)k;
  }
}

/* Reads more bytes into c->buf; returns bytes read, 0 on EOF, -1 timeout/error. */
static ssize_t fill(wsc *c, int timeout_ms) {
  struct pollfd p = {c->fd, POLLIN, 0};
  int r = poll(&p, 1, timeout_ms);
  if (r <= 0) return -1;
  if (c->have + 65536 > c->cap) {
    c->cap = c->have + 65536;
    c->buf = realloc(c->buf, c->cap);
    ck_assert_ptr_nonnull(c->buf);
  }
  ssize_t k = recv(c->fd, c->buf + c->have, c->cap - c->have, 0);
  if (k < 0) return errno == ECONNRESET ? 0 : -1;
  c->have += (size_t)k;
  return k;
}

static void consume(wsc *c, size_t n) {
  memmove(c->buf, c->buf + n, c->have - n);
  c->have -= n;
}

/* Opens a websocket; c->status is 101 on success, else the HTTP status. */
static void ws_open_ex(wsc *c, int port, const char *target, const char *extra, int rcvbuf) {
  memset(c, 0, sizeof *c);
  c->fd = tcp_connect(port, rcvbuf);
  char req[2048];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n%s\r\n",
                   target, port, extra ? extra : "");
  write_all(c->fd, req, (size_t)n);
  char *end = NULL;
  while (!end) {
    ck_assert_msg(fill(c, 3000) > 0, "no handshake answer for %s", target);
    c->buf[c->have < c->cap ? c->have : c->cap - 1] = 0;
    end = memmem(c->buf, c->have, "\r\n\r\n", 4);
  }
  size_t hl = (size_t)((uint8_t *)end - c->buf) + 4;
  ck_assert_uint_lt(hl, sizeof c->head);
  memcpy(c->head, c->buf, hl);
  c->head[hl] = 0;
  consume(c, hl);
  ck_assert_int_eq(sscanf(c->head, "HTTP/1.1 %d", &c->status), 1);
  if (c->status == 101) {
    /* RFC 6455's own example key and answer. */
    ck_assert_msg(strcasestr(c->head, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
                  "%s", c->head);
    ck_assert(strcasestr(c->head, "Upgrade: websocket\r\n"));
    return;
  }
  const char *cl = strcasestr(c->head, "Content-Length:");
  size_t blen = cl ? strtoul(cl + 15, NULL, 10) : 0;
  while (c->have < blen && fill(c, 3000) > 0) {
  }
  size_t k = blen < sizeof c->body - 1 ? blen : sizeof c->body - 1;
  memcpy(c->body, c->buf, k);
  c->body[k] = 0;
}

static void ws_open(wsc *c, int port, const char *target) { ws_open_ex(c, port, target, NULL, 0); }

static void ws_close_fd(wsc *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  free(c->buf);
  c->buf = NULL;
}

static void ws_send(wsc *c, int op, int fin, const void *data, size_t len) {
  static const uint8_t mask[4] = {1, 2, 3, 4};
  uint8_t *f = malloc(len + 14);
  ck_assert_ptr_nonnull(f);
  size_t h = nd_ws_frame_header(f, op, fin, len, mask);
  if (len) memcpy(f + h, data, len);
  nd_ws_mask(f + h, len, mask, 0);
  write_all(c->fd, f, h + len);
  free(f);
}

typedef struct frame {
  int op, fin;
  uint8_t *data;  /* malloc'd, NUL-terminated */
  size_t len;
} frame;

/* Reads one server frame: 1, 0 on EOF, -1 on timeout. */
static int ws_recv(wsc *c, frame *f, int timeout_ms) {
  memset(f, 0, sizeof *f);
  for (;;) {
    if (c->have >= 2) {
      ck_assert_msg(!(c->buf[1] & 0x80), "server frames must not be masked");
      size_t h = 2;
      uint64_t len = c->buf[1] & 0x7F;
      if (len == 126) h = 4;
      if (len == 127) h = 10;
      if (c->have >= h) {
        if (len == 126) len = ((uint64_t)c->buf[2] << 8) | c->buf[3];
        if (len == 127) {
          len = 0;
          for (int i = 0; i < 8; i++) len = (len << 8) | c->buf[2 + i];
        }
        if (c->have >= h + len) {
          f->op = c->buf[0] & 0x0F;
          f->fin = (c->buf[0] & 0x80) != 0;
          f->len = (size_t)len;
          f->data = malloc(f->len + 1);
          memcpy(f->data, c->buf + h, f->len);
          f->data[f->len] = 0;
          consume(c, h + f->len);
          return 1;
        }
      }
    }
    ssize_t k = fill(c, timeout_ms);
    if (k == 0) return 0;
    if (k < 0) return -1;
  }
}

/* Next frame that is not a ping; 1/0/-1 like ws_recv. */
static int ws_recv_data(wsc *c, frame *f, int timeout_ms) {
  for (;;) {
    int r = ws_recv(c, f, timeout_ms);
    if (r != 1 || f->op != ND_WS_OP_PING) return r;
    free(f->data);
  }
}

static int close_code(const frame *f) {
  return f->len >= 2 ? (f->data[0] << 8) | f->data[1] : 1005;
}

/* Waits for the server to end the TCP connection (after any frames). */
static int wait_eof(wsc *c, int timeout_ms) {
  frame f;
  int r;
  while ((r = ws_recv(c, &f, timeout_ms)) == 1) free(f.data);
  return r == 0;
}

/* ---- tests ---------------------------------------------------------------- */


typedef struct pubp {
  notifd_ws_channel *ch;
  const char *key, *proto, *text;
  int rc;
  uint32_t delivered, failed;
} pubp;

static void do_publish_proto(void *arg) {
  pubp *p = arg;
  p->rc = nd_ws_publish_proto(p->ch, p->key, p->proto, p->text, strlen(p->text), &p->delivered,
                              &p->failed);
}

static pubp publish_proto(th *t, const char *key, const char *proto, const char *text) {
  pubp p = {t->v2, key, proto, text, 0, 0, 0};
  on_loop(t, do_publish_proto, &p);
  return p;
}

static void do_resume(void *arg) {
  th *t = arg;
  ck_assert_ptr_nonnull(t->paused);
  ck_assert_int_eq(nd_ws_conn_resume(t->paused), 0);
  ck_assert_int_eq(nd_ws_conn_resume(t->paused), 0);
}

static void expect_text(wsc *c, const char *want) {
  frame f;
  ck_assert_int_eq(ws_recv_data(c, &f, FRAME_WAIT_MS), 1);
  ck_assert_str_eq((char *)f.data, want);
  free(f.data);
}

START_TEST(subprotocols_subject_and_pause) {
  th *t = th_start(NULL);
  int64_t now = nd_wall_ms() / 1000;
  char *tok = nd_jwt_sign(SECRET, "ann", now + 60);
  char target[1024], hdr[256];
  wsc v2, plain, other, held;
  /* The first offered protocol the channel speaks is chosen. */
  snprintf(target, sizeof target, "/v2?k=room&user=ann&token=%s", tok);
  ws_open_ex(&v2, t->port, target, "Sec-WebSocket-Protocol: x.unknown, notifd.test.v2, other.v1\r\n", 0);
  ck_assert_int_eq(v2.status, 101);
  ck_assert_msg(strcasestr(v2.head, "Sec-WebSocket-Protocol: notifd.test.v2\r\n"), "%s", v2.head);
  pthread_mutex_lock(&t->mu);
  ck_assert_str_eq(t->v2_proto, "notifd.test.v2");
  ck_assert_str_eq(t->v2_subject, "ann");
  pthread_mutex_unlock(&t->mu);
  /* None offered, or none known: accepted without a subprotocol. */
  ws_open(&plain, t->port, target);
  ck_assert_int_eq(plain.status, 101);
  ck_assert(!strcasestr(plain.head, "Sec-WebSocket-Protocol"));
  snprintf(hdr, sizeof hdr, "Sec-WebSocket-Protocol: other.v1\r\n");
  ws_open_ex(&other, t->port, target, hdr, 0);
  ck_assert_int_eq(other.status, 101);
  ck_assert(strcasestr(other.head, "Sec-WebSocket-Protocol: other.v1\r\n"));

  /* Each kind gets its own encoding of an event. */
  pubp p = publish_proto(t, "room", "notifd.test.v2", "{\"type\":\"message\"}");
  ck_assert_int_eq(p.rc, 0);
  ck_assert_uint_eq(p.delivered, 1);
  p = publish_proto(t, "room", NULL, "bare");
  ck_assert_uint_eq(p.delivered, 1);
  p = publish_proto(t, "room", "not.listed", "x");
  ck_assert_int_eq(p.rc, NOTIFD_EINVAL);
  ck_assert_uint_eq(publish(t, t->v2, "room", "all").delivered, 3);
  expect_text(&v2, "{\"type\":\"message\"}");
  expect_text(&v2, "all");
  expect_text(&plain, "bare");
  expect_text(&plain, "all");
  expect_text(&other, "all");

  /* A paused connection: ws_send reaches it, publishes and counts do not. */
  snprintf(target, sizeof target, "/v2?k=paused-room&user=ann&token=%s", tok);
  ws_open(&held, t->port, target);
  ck_assert_int_eq(held.status, 101);
  expect_text(&held, "replay");
  ck_assert_uint_eq(key_count(t, t->v2, "paused-room"), 0);
  ck_assert_uint_eq(publish(t, t->v2, "paused-room", "missed").delivered, 0);
  on_loop(t, do_resume, t);
  ck_assert_uint_eq(key_count(t, t->v2, "paused-room"), 1);
  ck_assert_uint_eq(publish(t, t->v2, "paused-room", "live").delivered, 1);
  expect_text(&held, "live");
  /* Closing while paused still reaches on_close (and the counts). */
  ws_close_fd(&held);
  wait_key_count(t, t->v2, "paused-room", 0);
  ws_close_fd(&v2);
  ws_close_fd(&plain);
  ws_close_fd(&other);
  free(tok);
  th_stop(t);
}
END_TEST

START_TEST(subscribe_publish_receive) {
  th *t = th_start(NULL);
  wsc c;
  ws_open(&c, t->port, "/chat/subscribe-websocket?stream_id=s1&sender_id=a&receiver_id=b");
  ck_assert_int_eq(c.status, 101);
  pub p = publish(t, t->chat, "s1", "{\"content\":\"hi\"}");
  ck_assert_int_eq(p.rc, 0);
  ck_assert_uint_eq(p.delivered, 1);
  ck_assert_uint_eq(p.failed, 0);
  frame f;
  ck_assert_int_eq(ws_recv_data(&c, &f, FRAME_WAIT_MS), 1);
  ck_assert_int_eq(f.op, ND_WS_OP_TEXT);
  ck_assert(f.fin);
  ck_assert_str_eq((char *)f.data, "{\"content\":\"hi\"}");
  free(f.data);
  /* Other keys and channels are not delivered to. */
  p = publish(t, t->chat, "s2", "x");
  ck_assert_uint_eq(p.delivered, 0);
  p = publish(t, t->echo, "s1", "x");
  ck_assert_uint_eq(p.delivered, 0);
  /* Invalid UTF-8 is refused: text frames must be UTF-8. */
  p = publish(t, t->chat, "s1", "\xff");
  ck_assert_int_eq(p.rc, NOTIFD_EINVAL);
  ck_assert(metric("notifd_ws_connections", "/chat/subscribe-websocket", NULL) == 1);
  ck_assert(metric("notifd_ws_deliveries_total", "/chat/subscribe-websocket", NULL) == 1);
  ck_assert(metric("notifd_ws_publishes_total", "/chat/subscribe-websocket", NULL) == 2);
  ws_close_fd(&c);
  th_stop(t);
}
END_TEST

START_TEST(two_connections_one_key_and_close_removes) {
  th *t = th_start(NULL);
  wsc a, b;
  ws_open(&a, t->port, "/chat/subscribe-websocket?stream_id=s1&sender_id=a&receiver_id=b");
  ws_open(&b, t->port, "/chat/subscribe-websocket?stream_id=s1&sender_id=b&receiver_id=a");
  ck_assert_int_eq(a.status, 101);
  ck_assert_int_eq(b.status, 101);
  pub p = publish(t, t->chat, "s1", "m1");
  ck_assert_uint_eq(p.delivered, 2);
  ck_assert_uint_eq(p.keycount, 2);
  frame f;
  ck_assert_int_eq(ws_recv_data(&a, &f, FRAME_WAIT_MS), 1);
  ck_assert_str_eq((char *)f.data, "m1");
  free(f.data);
  ck_assert_int_eq(ws_recv_data(&b, &f, FRAME_WAIT_MS), 1);
  ck_assert_str_eq((char *)f.data, "m1");
  free(f.data);

  /* a closes cleanly: the server echoes 1000 and a is gone at once. */
  uint8_t pl[125];
  size_t n = nd_ws_close_payload(pl, 1000, "bye");
  ws_send(&a, ND_WS_OP_CLOSE, 1, pl, n);
  ck_assert_int_eq(ws_recv_data(&a, &f, FRAME_WAIT_MS), 1);
  ck_assert_int_eq(f.op, ND_WS_OP_CLOSE);
  ck_assert_int_eq(close_code(&f), 1000);
  free(f.data);
  /* (With I/O threads the echo may reach the client before main learned
   * of the close: wait for the registry.) */
  ck_assert_uint_eq(wait_key_count(t, t->chat, "s1", 1), 1);
  p = publish(t, t->chat, "s1", "m2");
  ck_assert_uint_eq(p.delivered, 1);
  ck_assert_uint_eq(p.failed, 0);
  ck_assert(wait_eof(&a, 2000)); /* the server ends TCP after the handshake */
  ws_close_fd(&a);

  /* b vanishes without a close frame. */
  ws_close_fd(&b);
  ck_assert_uint_eq(wait_key_count(t, t->chat, "s1", 0), 0);
  p = publish(t, t->chat, "s1", "m3");
  ck_assert_int_eq(p.rc, 0);
  ck_assert_uint_eq(p.delivered, 0);
  ck_assert_uint_eq(p.failed, 0);
  for (int i = 0; i < POLL_STEPS && t->closes < 2; i++) sleep_ms(10);
  pthread_mutex_lock(&t->mu);
  ck_assert_int_eq(t->opens, 2);
  ck_assert_int_eq(t->closes, 2);
  ck_assert_int_eq(t->last_close_code, 1006);
  pthread_mutex_unlock(&t->mu);
  ck_assert(metric("notifd_ws_connections", "/chat/subscribe-websocket", NULL) == 0);
  th_stop(t);
}
END_TEST

/* Reader thread for the fast consumer. */
typedef struct reader {
  wsc *c;
  int want, got, bad;
} reader;

static void *read_frames(void *arg) {
  reader *r = arg;
  frame f;
  while (r->got < r->want && ws_recv_data(r->c, &f, FRAME_WAIT_MS) == 1) {
    if (f.op == ND_WS_OP_TEXT && f.len == 1000) __atomic_add_fetch(&r->got, 1, __ATOMIC_RELEASE);
    else r->bad++;
    free(f.data);
  }
  return NULL;
}

static void small_queue(nd_config *c) {
  c->ws_max_queue_bytes = 64 * 1024;
  c->ws_max_queue_frames = 256;
}

START_TEST(slow_consumer_cut_off_fast_one_keeps_receiving) {
  th *t = th_start(small_queue);
  wsc slow, fast;
  ws_open_ex(&slow, t->port, "/chat/subscribe-websocket?stream_id=s&sender_id=a&receiver_id=b",
             NULL, 4096);
  ws_open(&fast, t->port, "/chat/subscribe-websocket?stream_id=s&sender_id=b&receiver_id=a");
  ck_assert_int_eq(slow.status, 101);
  ck_assert_int_eq(fast.status, 101);
  enum { BATCH = 50, BATCHES = 80 };
  reader r = {&fast, BATCH * BATCHES, 0, 0};
  pthread_t rt;
  pthread_create(&rt, NULL, read_frames, &r);
  char *msg = malloc(1001);
  memset(msg, 'x', 1000);
  msg[0] = msg[999] = '"';
  msg[1000] = 0;
  uint32_t delivered = 0, failed = 0;
  for (int i = 0; i < BATCHES; i++) {
    pub p = {t->chat, "s", msg, 1000, BATCH, 0, 0, 0, 0};
    on_loop(t, do_publish, &p);
    delivered += p.delivered;
    failed += p.failed;
    /* The fast one reads each batch before the next is published: on a
     * loaded machine a fixed pause let two batches pile up past its own
     * queue limit, and it was cut too. */
    for (int w = 0; w < POLL_STEPS && __atomic_load_n(&r.got, __ATOMIC_ACQUIRE) < (i + 1) * BATCH;
         w++)
      sleep_ms(10);
    ck_assert_msg(__atomic_load_n(&r.got, __ATOMIC_ACQUIRE) >= (i + 1) * BATCH,
                  "the fast reader did not get batch %d within %d s", i, POLL_STEPS / 100);
  }
  pthread_join(rt, NULL);
  ck_assert_int_eq(r.bad, 0);
  ck_assert_int_eq(r.got, BATCH * BATCHES); /* the fast one got everything */
  /* Cut once, and from then on no longer addressed by publish. */
  ck_assert_uint_eq(failed, 1);
  ck_assert_uint_ge(delivered, BATCH * BATCHES);
  ck_assert_uint_lt(delivered, 2 * BATCH * BATCHES);
  ck_assert_uint_eq(key_count(t, t->chat, "s"), 1);
  ck_assert(metric("notifd_ws_slow_consumer_closes_total", "/chat/subscribe-websocket", NULL) == 1);
  ck_assert(metric("notifd_ws_delivery_failures_total", "/chat/subscribe-websocket", NULL) >= 1);
  /* The slow one finds a 1008 close at the end of what was queued. */
  frame f;
  int saw_close = 0, r2;
  while ((r2 = ws_recv(&slow, &f, FRAME_WAIT_MS)) == 1) {
    if (f.op == ND_WS_OP_CLOSE) {
      saw_close = close_code(&f);
      free(f.data);
      break;
    }
    free(f.data);
  }
  ck_assert_msg(saw_close == 1008 || r2 == 0, "close %d r %d", saw_close, r2);
  free(msg);
  ws_close_fd(&slow);
  ws_close_fd(&fast);
  th_stop(t);
}
END_TEST

/* Publishes `text` to `key` of the chat channel, checks that c (its one
 * subscriber) receives nothing for `quiet_ms` and then the frame; closes
 * c and stops t. */
static void publish_and_receive(th *t, wsc *c, const char *key, const char *text, int quiet_ms) {
  pub p = publish(t, t->chat, key, text);
  ck_assert_uint_eq(p.delivered, 1);
  frame f;
  if (quiet_ms) ck_assert_int_eq(ws_recv_data(c, &f, quiet_ms), -1); /* timed out */
  ck_assert_int_eq(ws_recv_data(c, &f, FRAME_WAIT_MS), 1);
  ck_assert_str_eq((char *)f.data, text);
  free(f.data);
  ws_close_fd(c);
  th_stop(t);
}

/* The connection's write state, read on the loop thread. */
typedef struct wstate {
  th *t;
  const char *key;
  int found, direct, armed;
  size_t queued;
  notifd_ws_conn *c;
} wstate;

static void find_wstate(void *arg) {
  wstate *w = arg;
  nd_ws_keyent *e = nd_ws_keymap_find(&w->t->chat->keys, w->key);
  w->c = e ? e->head : NULL;
  w->found = w->c != NULL;
}

/* On the connection's I/O loop (the main loop, or an I/O thread's). */
static void read_io_state(void *arg) {
  wstate *w = arg;
  w->direct = w->c->direct;
  w->armed = w->c->wr_armed;
  w->queued = evbuffer_get_length(bufferevent_get_output(w->c->bev));
}

static void read_wstate(void *arg) {
  wstate *w = arg;
  on_loop(w->t, find_wstate, w);
  if (w->found) on_base(w->c->loop->base, read_io_state, w);
}

typedef struct hubcount {
  th *t;
  size_t n;
} hubcount;

static void read_hub_count(void *arg) {
  hubcount *h = arg;
  h->n = nd_ws_hub_count(h->t->h->ws);
}

/* A message and, in the same packet, a close (or a protocol error): the
 * plugin's reply to the message goes out before the close frame, also
 * when an I/O thread reads the socket and the reply comes from the loop
 * thread. */
static void reply_then_close(const uint8_t *second, size_t second_len, int want_code) {
  th *t = th_start(NULL);
  wsc c;
  ws_open(&c, t->port, "/echo?k=ord");
  ck_assert_int_eq(c.status, 101);
  static const uint8_t mask[4] = {9, 8, 7, 6};
  uint8_t buf[64];
  size_t h = nd_ws_frame_header(buf, ND_WS_OP_TEXT, 1, 2, mask);
  memcpy(buf + h, "hi", 2);
  nd_ws_mask(buf + h, 2, mask, 0);
  memcpy(buf + h + 2, second, second_len);
  write_all(c.fd, buf, h + 2 + second_len);
  expect_text(&c, "hi");
  frame f;
  ck_assert_int_eq(ws_recv_data(&c, &f, 5000), 1);
  ck_assert_int_eq(f.op, ND_WS_OP_CLOSE);
  ck_assert_int_eq(close_code(&f), want_code);
  free(f.data);
  ws_close_fd(&c);
  /* The server sees our EOF while it lingers: the connection is gone
   * before its close grace (5 s here) would have ended it. */
  hubcount hc = {t, 1};
  for (int i = 0; i < 150 && hc.n; i++) {
    on_loop(t, read_hub_count, &hc);
    if (hc.n) sleep_ms(10);
  }
  ck_assert_msg(hc.n == 0, "%zu connection(s) still there 1.5 s after the client's EOF", hc.n);
  th_stop(t);
}

START_TEST(reply_goes_before_close_answer) {
  uint8_t close[16];
  static const uint8_t mask[4] = {1, 2, 3, 4};
  uint8_t pl[2] = {0x03, 0xe8}; /* 1000 */
  size_t h = nd_ws_frame_header(close, ND_WS_OP_CLOSE, 1, 2, mask);
  memcpy(close + h, pl, 2);
  nd_ws_mask(close + h, 2, mask, 0);
  reply_then_close(close, h + 2, 1000);
  /* An unmasked frame breaks the protocol: answered 1002, after the reply. */
  uint8_t bad[16];
  size_t bh = nd_ws_frame_header(bad, ND_WS_OP_TEXT, 1, 1, NULL);
  bad[bh] = 'x';
  reply_then_close(bad, bh + 1, 1002);
}
END_TEST

/* ---- back pressure from a loop thread that is behind -------------------- */

/* The loop thread waits here while the test keeps the gate shut. */
typedef struct gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int open, entered;
} gate;

static void gate_wait(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  gate *g = arg;
  pthread_mutex_lock(&g->mu);
  g->entered = 1;
  pthread_cond_broadcast(&g->cv);
  while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
}

typedef struct flood {
  wsc *c;
  int n;
  size_t len;
} flood;

static void *send_flood(void *arg) {
  flood *f = arg;
  char *msg = malloc(f->len);
  ck_assert_ptr_nonnull(msg);
  for (int i = 0; i < f->n; i++) {
    memset(msg, 'a' + i % 26, f->len);
    memcpy(msg, "q:", 2);
    ws_send(f->c, ND_WS_OP_BINARY, 1, msg, f->len);
  }
  free(msg);
  return NULL;
}

typedef struct echo_conn {
  th *t;
  notifd_ws_conn *c;
  int throttled;
} echo_conn;

static void find_echo_conn(void *arg) {
  echo_conn *e = arg;
  nd_ws_keyent *k = nd_ws_keymap_find(&e->t->echo->keys, "bp");
  e->c = k ? k->head : NULL;
}

static void read_throttled(void *arg) {
  echo_conn *e = arg;
  e->throttled = e->c->throttled;
}

static int messages_seen(th *t) {
  pthread_mutex_lock(&t->mu);
  int n = t->messages;
  pthread_mutex_unlock(&t->mu);
  return n;
}

/* With the sockets on I/O threads, messages wait for the loop thread; when
 * it is behind by more than the bound, its I/O thread stops reading the
 * sender (TCP pushes back) and starts again once the loop caught up.
 * Nothing is lost either way.  (With io_threads 0 the loop thread does the
 * reading itself, so only the last part applies.) */
START_TEST(reading_stops_while_main_is_behind) {
  th *t = th_start(NULL);
  wsc c;
  ws_open(&c, t->port, "/echo?k=bp");
  ck_assert_int_eq(c.status, 101);
  echo_conn e = {t, NULL, 0};
  on_loop(t, find_echo_conn, &e);
  ck_assert_ptr_nonnull(e.c);
  gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
  struct timeval zero = {0, 0};
  ck_assert_int_eq(event_base_once(t->h->base, -1, EV_TIMEOUT, gate_wait, &g, &zero), 0);
  pthread_mutex_lock(&g.mu);
  while (!g.entered) pthread_cond_wait(&g.cv, &g.mu);
  pthread_mutex_unlock(&g.mu);

  /* 96 x 60 000 bytes: more than the 4 MiB + max_message bound. */
  flood f = {&c, 96, 60000};
  pthread_t sender;
  ck_assert_int_eq(pthread_create(&sender, NULL, send_flood, &f), 0);
  if (e.c->loop->threaded) {
    for (int i = 0; i < 2000 && !e.throttled; i++) {
      on_base(e.c->loop->base, read_throttled, &e);
      if (!e.throttled) sleep_ms(10);
    }
    ck_assert_msg(e.throttled, "the I/O thread did not stop reading within 20 s");
  }
  pthread_mutex_lock(&g.mu);
  g.open = 1;
  pthread_cond_broadcast(&g.cv);
  pthread_mutex_unlock(&g.mu);
  pthread_join(sender, NULL);
  int seen = 0;
  for (int i = 0; i < 3000 && (seen = messages_seen(t)) < f.n; i++) sleep_ms(10);
  ck_assert_msg(seen == f.n, "on_message saw %d of %d messages within 30 s", seen, f.n);
  if (e.c->loop->threaded) {
    on_base(e.c->loop->base, read_throttled, &e);
    ck_assert_int_eq(e.throttled, 0);
  }
  ws_close_fd(&c);
  th_stop(t);
}
END_TEST

/* Plain sockets are written directly; a full socket hands the rest to the
 * bufferevent's write event, and once that drained, writing is direct
 * again (no write event).  Every frame arrives, in order. */
static void big_queue(nd_config *c) {
  c->ws_max_queue_bytes = 32 * 1024 * 1024;
  c->ws_max_queue_frames = 8192;
}

START_TEST(full_socket_then_drained_keeps_order) {
  th *t = th_start(big_queue);
  wsc c;
  ws_open_ex(&c, t->port, "/chat/subscribe-websocket?stream_id=f&sender_id=a&receiver_id=b",
             NULL, 4096);
  ck_assert_int_eq(c.status, 101);
  wstate w = {t, "f", 0, 0, 0, 0, NULL};
  read_wstate(&w);
  ck_assert(w.found && w.direct && !w.armed);
  enum { N = 2000, LEN = 3999 };
  static char msg[LEN + 1];
  for (int i = 0; i < N; i++) {
    int n = snprintf(msg, sizeof msg, "%06d", i);
    memset(msg + n, 'y', LEN - (size_t)n);
    msg[LEN] = 0;
    pub p = publish(t, t->chat, "f", msg);
    ck_assert_uint_eq(p.delivered, 1);
  }
  /* The client has not read: 8 MB do not fit its 4 KB receive buffer
   * and the server's send buffer (at most tcp_wmem's 4 MB) together. */
  for (int i = 0; i < POLL_STEPS; i++) {
    read_wstate(&w);
    if (w.armed) break;
    sleep_ms(10);
  }
  ck_assert_msg(w.armed && w.queued > 0, "armed %d queued %zu", w.armed, w.queued);
  for (int i = 0; i < N; i++) {
    frame f;
    ck_assert_int_eq(ws_recv_data(&c, &f, FRAME_WAIT_MS), 1);
    ck_assert_uint_eq(f.len, LEN);
    char want[8];
    snprintf(want, sizeof want, "%06d", i);
    ck_assert_msg(memcmp(f.data, want, 6) == 0, "frame %d is %.6s", i, (char *)f.data);
    free(f.data);
  }
  for (int i = 0; i < POLL_STEPS; i++) {
    read_wstate(&w);
    if (!w.armed) break;
    sleep_ms(10);
  }
  ck_assert(w.found && w.direct && !w.armed && w.queued == 0);
  publish_and_receive(t, &c, "f", "after", 0);
}
END_TEST

static void slow_writes(nd_config *c) { c->ws_write_delay_ms = 1000; }

/* websocket.write_delay holds queued frames (the 101 too) that long. */
START_TEST(write_delay_holds_frames) {
  th *t = th_start(slow_writes);
  wsc c;
  ws_open(&c, t->port, "/chat/subscribe-websocket?stream_id=d&sender_id=a&receiver_id=b");
  ck_assert_int_eq(c.status, 101);
  publish_and_receive(t, &c, "d", "late", 300);
}
END_TEST

static void small_messages(nd_config *c) { c->ws_max_message = 1024; }

START_TEST(oversize_message_closes_1009) {
  th *t = th_start(small_messages);
  wsc c;
  ws_open(&c, t->port, "/echo?k=1");
  ck_assert_int_eq(c.status, 101);
  char big[2000];
  memset(big, 'a', sizeof big);
  ws_send(&c, ND_WS_OP_TEXT, 1, big, 1024); /* at the limit: echoed */
  frame f;
  ck_assert_int_eq(ws_recv_data(&c, &f, FRAME_WAIT_MS), 1);
  ck_assert_int_eq(f.op, ND_WS_OP_TEXT);
  ck_assert_uint_eq(f.len, 1024);
  free(f.data);
  ws_send(&c, ND_WS_OP_TEXT, 1, big, sizeof big);
  ck_assert_int_eq(ws_recv_data(&c, &f, FRAME_WAIT_MS), 1);
  ck_assert_int_eq(f.op, ND_WS_OP_CLOSE);
  ck_assert_int_eq(close_code(&f), 1009);
  free(f.data);
  ck_assert(wait_eof(&c, 3000));
  ws_close_fd(&c);
  ck_assert_uint_eq(wait_key_count(t, t->echo, "1", 0), 0);
  th_stop(t);
}
END_TEST

START_TEST(echo_fragments_pings_and_protocol_errors) {
  th *t = th_start(NULL);
  wsc c;
  ws_open(&c, t->port, "/echo?k=e");
  ck_assert_int_eq(c.status, 101);
  /* Fragmented text with a ping in the middle and UTF-8 split across frames. */
  ws_send(&c, ND_WS_OP_TEXT, 0, "h\xc3", 2);
  ws_send(&c, ND_WS_OP_PING, 1, "p1", 2);
  ws_send(&c, ND_WS_OP_CONT, 1, "\xa9!", 2);
  frame f;
  ck_assert_int_eq(ws_recv(&c, &f, FRAME_WAIT_MS), 1);
  ck_assert_int_eq(f.op, ND_WS_OP_PONG);
  ck_assert_str_eq((char *)f.data, "p1");
  free(f.data);
  ck_assert_int_eq(ws_recv(&c, &f, FRAME_WAIT_MS), 1);
  ck_assert_int_eq(f.op, ND_WS_OP_TEXT);
  ck_assert_str_eq((char *)f.data, "h\xc3\xa9!");
  free(f.data);
  ws_send(&c, ND_WS_OP_BINARY, 1, "\x00\x01", 2);
  ck_assert_int_eq(ws_recv(&c, &f, FRAME_WAIT_MS), 1);
  ck_assert_int_eq(f.op, ND_WS_OP_BINARY);
  ck_assert_uint_eq(f.len, 2);
  free(f.data);
  ws_send(&c, ND_WS_OP_TEXT, 1, "api", 3);
  ck_assert_int_eq(ws_recv(&c, &f, FRAME_WAIT_MS), 1);
  ck_assert_int_eq(f.op, ND_WS_OP_BINARY); /* the frame above the queue limit */
  ck_assert_uint_eq(f.len, t->h->cfg.ws_max_queue_bytes + 1);
  free(f.data);
  ck_assert_int_eq(ws_recv(&c, &f, FRAME_WAIT_MS), 1);
  ck_assert_str_eq((char *)f.data, "api:0");
  free(f.data);
  /* The plugin closes from on_message. */
  ws_send(&c, ND_WS_OP_TEXT, 1, "close", 5);
  ck_assert_int_eq(ws_recv(&c, &f, FRAME_WAIT_MS), 1);
  ck_assert_int_eq(f.op, ND_WS_OP_CLOSE);
  ck_assert_int_eq(close_code(&f), 4001);
  ck_assert_str_eq((char *)f.data + 2, "asked to");
  free(f.data);
  ws_send(&c, ND_WS_OP_CLOSE, 1, "\x0f\xa1", 2);
  ck_assert(wait_eof(&c, 2000));
  ws_close_fd(&c);

  /* Invalid UTF-8 -> 1007; an unmasked frame -> 1002; reserved opcode -> 1002. */
  ws_open(&c, t->port, "/echo?k=e");
  ws_send(&c, ND_WS_OP_TEXT, 1, "\xed\xa0\x80", 3);
  ck_assert_int_eq(ws_recv(&c, &f, FRAME_WAIT_MS), 1);
  ck_assert_int_eq(close_code(&f), 1007);
  free(f.data);
  ck_assert(wait_eof(&c, 2000));
  ws_close_fd(&c);

  ws_open(&c, t->port, "/echo?k=e");
  write_all(c.fd, "\x81\x02hi", 4);
  ck_assert_int_eq(ws_recv(&c, &f, FRAME_WAIT_MS), 1);
  ck_assert_int_eq(close_code(&f), 1002);
  free(f.data);
  ck_assert(wait_eof(&c, 2000));
  ws_close_fd(&c);

  ws_open(&c, t->port, "/echo?k=e");
  ws_send(&c, 0x3, 1, "x", 1);
  ck_assert_int_eq(ws_recv(&c, &f, FRAME_WAIT_MS), 1);
  ck_assert_int_eq(close_code(&f), 1002);
  free(f.data);
  ws_close_fd(&c);
  th_stop(t);
}
END_TEST

/* The client's first frame arrives in the same packet as its request. */
START_TEST(frame_in_same_packet_as_request) {
  th *t = th_start(NULL);
  int fd = tcp_connect(t->port, 0);
  char req[512];
  int n = snprintf(req, sizeof req,
                   "GET /echo?k=z HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n");
  uint8_t buf[600];
  memcpy(buf, req, (size_t)n);
  static const uint8_t mask[4] = {9, 8, 7, 6};
  size_t h = nd_ws_frame_header(buf + n, ND_WS_OP_TEXT, 1, 4, mask);
  memcpy(buf + n + h, "ping", 4);
  nd_ws_mask(buf + n + h, 4, mask, 0);
  write_all(fd, buf, (size_t)n + h + 4);
  wsc c = {0};
  c.fd = fd;
  frame f;
  char *end = NULL;
  while (!end) {
    ck_assert(fill(&c, 2000) > 0);
    end = memmem(c.buf, c.have, "\r\n\r\n", 4);
  }
  ck_assert_msg(memcmp(c.buf, "HTTP/1.1 101", 12) == 0, "%.*s", (int)c.have, (char *)c.buf);
  consume(&c, (size_t)((uint8_t *)end - c.buf) + 4);
  ck_assert_int_eq(ws_recv(&c, &f, FRAME_WAIT_MS), 1);
  ck_assert_str_eq((char *)f.data, "ping");
  free(f.data);
  ws_close_fd(&c);
  th_stop(t);
}
END_TEST

static void origins(nd_config *c) {
  static char *allow[] = {"https://good.example", NULL};
  c->ws_allowed_origins = allow;
}

START_TEST(origin_allow_list) {
  th *t = th_start(origins);
  wsc c;
  ws_open_ex(&c, t->port, "/echo?k=o", "Origin: https://evil.example\r\n", 0);
  ck_assert_int_eq(c.status, 403);
  ck_assert_msg(strstr(c.body, "origin"), "%s", c.body);
  ws_close_fd(&c);
  ws_open_ex(&c, t->port, "/echo?k=o", "Origin: https://good.example\r\n", 0);
  ck_assert_int_eq(c.status, 101);
  ws_close_fd(&c);
  ck_assert(metric("notifd_ws_handshake_rejects_total", "/echo", "origin") == 1);
  th_stop(t);
}
END_TEST

START_TEST(origin_same_host_by_default) {
  th *t = th_start(NULL);
  wsc c;
  char hdr[128];
  /* The page's own origin (Host is 127.0.0.1:<port>), any case. */
  snprintf(hdr, sizeof hdr, "Origin: http://127.0.0.1:%d\r\n", t->port);
  ws_open_ex(&c, t->port, "/echo?k=o", hdr, 0);
  ck_assert_int_eq(c.status, 101);
  ws_close_fd(&c);
  snprintf(hdr, sizeof hdr, "Origin: HTTPS://127.0.0.1:%d\r\n", t->port);
  ws_open_ex(&c, t->port, "/echo?k=o", hdr, 0);
  ck_assert_int_eq(c.status, 101);
  ws_close_fd(&c);
  /* Not a browser: no Origin, allowed. */
  ws_open(&c, t->port, "/echo?k=o");
  ck_assert_int_eq(c.status, 101);
  ws_close_fd(&c);
  static const char *const foreign[] = {"Origin: https://evil.example\r\n", "Origin: null\r\n",
                                        "Origin: http://127.0.0.1\r\n"};
  for (size_t i = 0; i < 3; i++) {
    ws_open_ex(&c, t->port, "/echo?k=o", foreign[i], 0);
    ck_assert_msg(c.status == 403, "%s -> %d", foreign[i], c.status);
    ck_assert_msg(strstr(c.body, "origin not allowed"), "%s", c.body);
    ws_close_fd(&c);
  }
  th_stop(t);
}
END_TEST

static void any_origin(nd_config *c) {
  static char *allow[] = {"*", NULL};
  c->ws_allowed_origins = allow;
}

START_TEST(origin_star_allows_any) {
  th *t = th_start(any_origin);
  wsc c;
  ws_open_ex(&c, t->port, "/echo?k=o", "Origin: https://evil.example\r\n", 0);
  ck_assert_int_eq(c.status, 101);
  ws_close_fd(&c);
  th_stop(t);
}
END_TEST

static void short_handshake(nd_config *c) {
  c->ws_handshake_timeout_ms = 200;
  c->http_request_timeout_ms = 30000;
}

/* Sends `req` and waits for the answer's status (0 when nothing came in
 * `ms`). */
static int partial_status(int port, const char *req, int ms) {
  wsc c;
  memset(&c, 0, sizeof c);
  c.fd = tcp_connect(port, 0);
  write_all(c.fd, req, strlen(req));
  int st = 0;
  while (!c.buf || !memmem(c.buf, c.have, "\r\n\r\n", 4))
    if (fill(&c, ms) <= 0) break;
  if (c.buf && c.have >= 12) sscanf((char *)c.buf, "HTTP/1.1 %d", &st);
  ws_close_fd(&c);
  return st;
}

START_TEST(handshake_timeout_applies) {
  th *t = th_start(short_handshake);
  /* An upgrade whose head never ends: 408 after handshake_timeout, not
   * after the 30 s request_timeout. */
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  ck_assert_int_eq(partial_status(t->port, "GET /echo?k=1 HTTP/1.1\r\nHost: x\r\n", 3000), 408);
  clock_gettime(CLOCK_MONOTONIC, &b);
  long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
  ck_assert_int_ge(ms, 150);
  /* The request line alone in the first packet counts too. */
  ck_assert_int_eq(partial_status(t->port, "GET /echo HTTP/1.1\r\n", 3000), 408);
  /* Any other request keeps request_timeout. */
  ck_assert_int_eq(partial_status(t->port, "GET /internal HTTP/1.1\r\nHost: x\r\n", 600), 0);
  th_stop(t);
}
END_TEST

static void one_per_key(nd_config *c) { c->ws_max_per_key = 1; }

START_TEST(per_key_cap_counts_own_subject) {
  th *t = th_start(one_per_key);
  int64_t exp = time(NULL) + 60;
  char *alice = nd_jwt_sign(SECRET, "alice", exp), *bob = nd_jwt_sign(SECRET, "bob", exp);
  char target[1024];
  wsc a, b, a2;
  snprintf(target, sizeof target, "/secure?stream_id=s&sender_id=alice&receiver_id=bob&token=%s",
           alice);
  ws_open(&a, t->port, target);
  ck_assert_int_eq(a.status, 101);
  /* Alice's socket does not lock Bob out of the shared stream... */
  snprintf(target, sizeof target, "/secure?stream_id=s&sender_id=bob&receiver_id=alice&token=%s",
           bob);
  ws_open(&b, t->port, target);
  ck_assert_int_eq(b.status, 101);
  /* ...but Alice's own count is at the cap. */
  snprintf(target, sizeof target, "/secure?stream_id=s&sender_id=bob&receiver_id=alice&token=%s",
           alice);
  ws_open(&a2, t->port, target);
  ck_assert_int_eq(a2.status, 429);
  ws_close_fd(&a2);
  ck_assert_uint_eq(key_count(t, t->tok, "s"), 2);
  ws_close_fd(&a);
  ws_close_fd(&b);
  free(alice);
  free(bob);
  th_stop(t);
}
END_TEST

static void two_per_ip(nd_config *c) {
  static char *none[] = {NULL};
  c->http_max_conns_per_ip = 2;
  c->http_trusted_proxies = none;
}

START_TEST(per_ip_cap_covers_websockets) {
  th *t = th_start(two_per_ip);
  wsc a, b, c;
  ws_open(&a, t->port, "/echo?k=1");
  ws_open(&b, t->port, "/echo?k=2");
  ck_assert_int_eq(a.status, 101);
  ck_assert_int_eq(b.status, 101);
  /* The websockets still count for their address. */
  ws_open(&c, t->port, "/echo?k=3");
  ck_assert_int_eq(c.status, 503);
  ck_assert_msg(strstr(c.body, "too many connections from this address"), "%s", c.body);
  ws_close_fd(&c);
  /* A websocket's end gives its slot back. */
  ws_close_fd(&a);
  ck_assert_uint_eq(wait_key_count(t, t->echo, "1", 0), 0);
  for (int i = 0; i < POLL_STEPS; i++) {
    ws_open(&c, t->port, "/echo?k=3");
    if (c.status == 101) break;
    ws_close_fd(&c);
    sleep_ms(10);
  }
  ck_assert_int_eq(c.status, 101);
  ws_close_fd(&b);
  ws_close_fd(&c);
  th_stop(t);
}
END_TEST

START_TEST(handshake_refusals) {
  th *t = th_start(NULL);
  wsc c;
  ws_open(&c, t->port, "/chat/subscribe-websocket?stream_id=s1&receiver_id=b");
  ck_assert_int_eq(c.status, 400);
  ck_assert_msg(strstr(c.body, "sender_id query parameter required"), "%s", c.body);
  ws_close_fd(&c);
  ws_open(&c, t->port, "/chat/subscribe-websocket?stream_id=&sender_id=a&receiver_id=b");
  ck_assert_int_eq(c.status, 400);
  ck_assert_msg(strstr(c.body, "stream_id query parameter required"), "%s", c.body);
  ws_close_fd(&c);
  ws_open(&c, t->port, "/chat/subscribe-websocket");
  ck_assert_int_eq(c.status, 400);
  ws_close_fd(&c);
  ck_assert(metric("notifd_ws_handshake_rejects_total", "/chat/subscribe-websocket", "params") ==
            3);

  /* Wrong version: 426 naming the version we speak. */
  memset(&c, 0, sizeof c);
  c.fd = tcp_connect(t->port, 0);
  const char *v8 = "GET /echo?k=v HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n";
  write_all(c.fd, v8, strlen(v8));
  while (!c.buf || !memmem(c.buf, c.have, "\r\n\r\n", 4)) ck_assert(fill(&c, 2000) > 0);
  ck_assert_msg(memcmp(c.buf, "HTTP/1.1 426", 12) == 0, "%.*s", (int)c.have, c.buf);
  ck_assert(memmem(c.buf, c.have, "Sec-WebSocket-Version: 13", 25));
  ws_close_fd(&c);

  /* Bad key, and a plain GET without the upgrade headers. */
  memset(&c, 0, sizeof c);
  c.fd = tcp_connect(t->port, 0);
  const char *bk = "GET /echo?k=v HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n";
  write_all(c.fd, bk, strlen(bk));
  while (!c.buf || !memmem(c.buf, c.have, "\r\n\r\n", 4)) ck_assert(fill(&c, 2000) > 0);
  ck_assert(memcmp(c.buf, "HTTP/1.1 400", 12) == 0);
  ws_close_fd(&c);
  memset(&c, 0, sizeof c);
  c.fd = tcp_connect(t->port, 0);
  const char *plain = "GET /echo?k=v HTTP/1.1\r\nHost: x\r\n\r\n";
  write_all(c.fd, plain, strlen(plain));
  while (!c.buf || !memmem(c.buf, c.have, "\r\n\r\n", 4)) ck_assert(fill(&c, 2000) > 0);
  ck_assert(memcmp(c.buf, "HTTP/1.1 400", 12) == 0);
  ws_close_fd(&c);
  th_stop(t);
}
END_TEST

static void limits(nd_config *c) {
  c->ws_max_per_key = 2;
  c->ws_max_connections = 3;
}

START_TEST(connection_limits) {
  th *t = th_start(limits);
  wsc a, b, c, d;
  ws_open(&a, t->port, "/echo?k=1");
  ws_open(&b, t->port, "/echo?k=1");
  ck_assert_int_eq(a.status, 101);
  ck_assert_int_eq(b.status, 101);
  ws_open(&c, t->port, "/echo?k=1");
  ck_assert_int_eq(c.status, 429);
  ws_close_fd(&c);
  ws_open(&c, t->port, "/echo?k=2");
  ck_assert_int_eq(c.status, 101);
  ws_open(&d, t->port, "/echo?k=3");
  ck_assert_int_eq(d.status, 503);
  ws_close_fd(&d);
  ws_close_fd(&a);
  ck_assert_uint_eq(wait_key_count(t, t->echo, "1", 1), 1);
  for (int i = 0; i < POLL_STEPS; i++) { /* the slot frees once a is torn down */
    ws_open(&d, t->port, "/echo?k=3");
    if (d.status == 101) break;
    ws_close_fd(&d);
    sleep_ms(10);
  }
  ck_assert_int_eq(d.status, 101);
  ws_close_fd(&b);
  ws_close_fd(&c);
  ws_close_fd(&d);
  th_stop(t);
}
END_TEST

START_TEST(token_policy) {
  th *t = th_start(NULL);
  int64_t now = time(NULL);
  char *good = nd_jwt_sign(SECRET, "alice", now + 60);
  char *expired = nd_jwt_sign(SECRET, "alice", now - 1);
  char *forged = nd_jwt_sign("not-the-secret", "alice", now + 60);
  char *other = nd_jwt_sign(SECRET, "mallory", now + 60);
  char target[1024];
  wsc c;
  const char *base = "/secure?stream_id=s&sender_id=alice&receiver_id=bob";
  ws_open(&c, t->port, base);
  ck_assert_int_eq(c.status, 401);
  ws_close_fd(&c);
  const char *bad[] = {expired, forged, other, "garbage"};
  for (size_t i = 0; i < 4; i++) {
    snprintf(target, sizeof target, "%s&token=%s", base, bad[i]);
    ws_open(&c, t->port, target);
    /* mallory's token is valid but not for alice or bob: 403. */
    int want = bad[i] == other ? 403 : 401;
    ck_assert_msg(c.status == want, "token %zu: %d", i, c.status);
    ws_close_fd(&c);
  }
  snprintf(target, sizeof target, "%s&token=%s", base, good);
  ws_open(&c, t->port, target);
  ck_assert_int_eq(c.status, 101);
  ws_close_fd(&c);
  /* Bearer header; sub may be either participant. */
  char hdr[512];
  snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", good);
  ws_open_ex(&c, t->port, "/secure?stream_id=s&sender_id=bob&receiver_id=alice", hdr, 0);
  ck_assert_int_eq(c.status, 101);
  ws_close_fd(&c);
  ws_open_ex(&c, t->port, "/secure?stream_id=s&sender_id=bob&receiver_id=carol", hdr, 0);
  ck_assert_int_eq(c.status, 403);
  ws_close_fd(&c);
  ck_assert(metric("notifd_ws_handshake_rejects_total", "/secure", "auth") == 6);

  /* The internal policy on an HTTP route. */
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/internal", t->port);
  ck_assert_int_eq(nd_test_http("GET", url, NULL, NULL, NULL), 401);
  const char *wrong[] = {"X-Notifd-Internal-Token: nope", NULL};
  ck_assert_int_eq(nd_test_http("GET", url, NULL, wrong, NULL), 401);
  const char *right[] = {"X-Notifd-Internal-Token: " INTERNAL, NULL};
  ck_assert_int_eq(nd_test_http("GET", url, NULL, right, NULL), 200);
  free(good);
  free(expired);
  free(forged);
  free(other);
  th_stop(t);
}
END_TEST

static void no_secrets(nd_config *c) {
  c->jwt_secret = NULL;
  c->internal_token = NULL;
}

START_TEST(policies_without_secrets_reject) {
  th *t = th_start(no_secrets);
  char *good = nd_jwt_sign(SECRET, "alice", time(NULL) + 60);
  char target[1024];
  snprintf(target, sizeof target, "/secure?stream_id=s&sender_id=alice&receiver_id=b&token=%s",
           good);
  wsc c;
  ws_open(&c, t->port, target);
  ck_assert_int_eq(c.status, 401);
  ws_close_fd(&c);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/internal", t->port);
  const char *empty[] = {"X-Notifd-Internal-Token: x", NULL};
  ck_assert_int_eq(nd_test_http("GET", url, NULL, empty, NULL), 401);
  free(good);
  th_stop(t);
}
END_TEST

static void fast_heartbeat(nd_config *c) {
  c->ws_ping_interval_ms = 100;
  c->ws_pong_timeout_ms = 250;
}

START_TEST(heartbeat_ping_pong_timeout) {
  th *t = th_start(fast_heartbeat);
  wsc mute, live;
  ws_open(&mute, t->port, "/echo?k=m");
  ws_open(&live, t->port, "/echo?k=l");
  ck_assert_int_eq(mute.status, 101);
  ck_assert_int_eq(live.status, 101);
  /* live answers every ping for a second; mute never does. */
  int pings = 0;
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
    if (ms > 1000) break;
    frame f;
    if (ws_recv(&live, &f, 50) == 1) {
      if (f.op == ND_WS_OP_PING) {
        pings++;
        ws_send(&live, ND_WS_OP_PONG, 1, f.data, f.len);
      }
      free(f.data);
    }
  }
  ck_assert_int_ge(pings, 4);
  ck_assert_uint_eq(key_count(t, t->echo, "l"), 1);
  ck_assert_uint_eq(key_count(t, t->echo, "m"), 0);
  /* The mute client got a ping, then the connection was dropped. */
  frame f;
  ck_assert_int_eq(ws_recv(&mute, &f, FRAME_WAIT_MS), 1);
  ck_assert_int_eq(f.op, ND_WS_OP_PING);
  free(f.data);
  ck_assert(wait_eof(&mute, 1000));
  ws_close_fd(&mute);
  ws_close_fd(&live);
  th_stop(t);
}
END_TEST

typedef struct ck_args {
  th *t;
  int closed;
} ck_args;

static void do_close_key(void *arg) {
  ck_args *a = arg;
  a->closed = nd_ws_close_key(a->t->chat, "s9", 4000, "reload history");
}

static void do_close_all(void *arg) { nd_ws_hub_close_all(((th *)arg)->h->ws, 1001, "bye"); }

START_TEST(close_key_and_close_all) {
  th *t = th_start(NULL);
  wsc a, b, c;
  ws_open(&a, t->port, "/chat/subscribe-websocket?stream_id=s9&sender_id=a&receiver_id=b");
  ws_open(&b, t->port, "/chat/subscribe-websocket?stream_id=s9&sender_id=b&receiver_id=a");
  ws_open(&c, t->port, "/chat/subscribe-websocket?stream_id=s8&sender_id=a&receiver_id=b");
  ck_assert_int_eq(c.status, 101);
  ck_args args = {t, 0};
  on_loop(t, do_close_key, &args);
  ck_assert_int_eq(args.closed, 2);
  ck_assert_uint_eq(key_count(t, t->chat, "s9"), 0);
  ck_assert_uint_eq(key_count(t, t->chat, "s8"), 1);
  frame f;
  wsc *ab[] = {&a, &b};
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(ws_recv_data(ab[i], &f, FRAME_WAIT_MS), 1);
    ck_assert_int_eq(f.op, ND_WS_OP_CLOSE);
    ck_assert_int_eq(close_code(&f), 4000);
    ck_assert_str_eq((char *)f.data + 2, "reload history");
    free(f.data);
    uint8_t pl[2] = {0x0f, 0xa0};
    ws_send(ab[i], ND_WS_OP_CLOSE, 1, pl, 2); /* answer: server then ends TCP */
    ck_assert(wait_eof(ab[i], 2000));
    ws_close_fd(ab[i]);
  }
  on_loop(t, do_close_all, t);
  ck_assert_int_eq(ws_recv_data(&c, &f, FRAME_WAIT_MS), 1);
  ck_assert_int_eq(close_code(&f), 1001);
  free(f.data);
  /* c never answers: dropped after the grace period. */
  ck_assert(wait_eof(&c, 8000));
  ws_close_fd(&c);
  /* Upgrades after close_all are refused. */
  ws_open(&a, t->port, "/echo?k=x");
  ck_assert_int_eq(a.status, 503);
  ws_close_fd(&a);
  for (int i = 0; i < POLL_STEPS && t->closes < 3; i++) sleep_ms(10);
  pthread_mutex_lock(&t->mu);
  ck_assert_int_eq(t->closes, 3);
  ck_assert_int_eq(t->last_close_code, 1001);
  pthread_mutex_unlock(&t->mu);
  th_stop(t);
}
END_TEST

/* Tearing the hub down with connections open closes them and calls on_close. */
START_TEST(hub_free_with_open_connections) {
  th *t = th_start(NULL);
  wsc a;
  ws_open(&a, t->port, "/chat/subscribe-websocket?stream_id=q&sender_id=a&receiver_id=b");
  ck_assert_int_eq(a.status, 101);
  pub p = publish(t, t->chat, "q", "pending");
  ck_assert_uint_eq(p.delivered, 1);
  on_loop(t, teardown_on_loop, t);
  ck_assert_int_eq(t->closes, 1);
  ck_assert_int_eq(t->last_close_code, 1001);
  pthread_join(t->thr, NULL);
  /* libevent finalizes freed bufferevents (closing their sockets) on the
   * next loop turn or when the base is freed. */
  nd_router_free(t->h->router);
  nd_metrics_free(t->h->metrics);
  nd_errors_free(&t->h->errs);
  event_base_free(t->h->base);
  free(t->h);
  pthread_mutex_destroy(&t->mu);
  free(t);
  T = NULL;
  ck_assert(wait_eof(&a, 2000));
  ws_close_fd(&a);
}
END_TEST

/* ---- through the embedding API: a builtin plugin, the API table, the
 * real config and the graceful stop ---------------------------------------- */

typedef struct probe {
  const notifd_api *api;
  notifd_plugin *self;
  notifd_ws_channel *ch;
} probe;

static void probe_publish(notifd_req *r, void *ud) {
  probe *p = ud;
  const notifd_api *api = p->api;
  const char *user = api->req_query(r, "user_id");
  size_t len = 0;
  const void *body = api->req_body(r, &len);
  uint32_t d = 0, f = 0;
  int rc = api->ws_publish(p->ch, user ? user : "", body, len, &d, &f);
  /* Registration is over once serving. */
  notifd_ws_channel_opts o = {sizeof o};
  o.path = "/late";
  o.key_param = "k";
  notifd_ws_channel *late = NULL;
  int late_rc = api->ws_channel(p->self, &o, &late);
  char out[128];
  int n = snprintf(out, sizeof out, "{\"rc\":%d,\"delivered\":%u,\"failed\":%u,\"late\":%d,\"count\":%u}",
                   rc, d, f, late_rc, api->ws_key_count(p->ch, user ? user : ""));
  api->respond(r, 200, "application/json", out, (size_t)n);
}

static int probe_init(notifd_plugin *self, const notifd_api *api, void **state) {
  probe *p = calloc(1, sizeof *p);
  if (!p) return NOTIFD_ENOMEM;
  p->api = api;
  p->self = self;
  notifd_ws_channel_opts o = {sizeof o};
  o.path = "/notifications/subscribe";
  o.key_param = "user_id";
  int rc = api->ws_channel(self, &o, &p->ch);
  if (rc == 0) rc = api->http_route(self, "POST", "/probe/publish", probe_publish, p, NULL);
  if (rc < 0) {
    free(p);
    return rc;
  }
  *state = p;
  return 0;
}

static void probe_destroy(void *state) { free(state); }

static const notifd_plugin_def probe_def = {
    .size = sizeof(notifd_plugin_def),
    .abi_major = NOTIFD_ABI_MAJOR,
    .name = "ws_probe",
    .version = "1",
    .init = probe_init,
    .destroy = probe_destroy,
};

START_TEST(embedded_host_publish_and_graceful_stop) {
  char err[2048] = "";
  const char *yaml =
      "listen: {address: 127.0.0.1, port: 0}\nadmin: {port: -1}\n"
      "data_dir: /tmp/notifd-test-ws\nlogging: {level: warn}\nshutdown: {deadline: 5s}\n"
      "websocket: {ping_interval: 30s, pong_timeout: 1s, max_message: 1KiB}\n"
      "plugins:\n  - name: ws_probe\n    builtin: true\n";
  const notifd_plugin_def *const builtins[] = {&probe_def, NULL};
  nd_test_host *t = nd_test_host_start(yaml, builtins, err, sizeof err);
  ck_assert_msg(t != NULL, "%s", err);
  int port = nd_test_host_port(t);
  wsc c;
  ws_open(&c, port, "/notifications/subscribe?user_id=u1");
  ck_assert_int_eq(c.status, 101);
  char url[128], *body = NULL;
  snprintf(url, sizeof url, "http://127.0.0.1:%d/probe/publish?user_id=u1", port);
  ck_assert_int_eq(nd_test_http("POST", url, "{\"n\":1}", NULL, &body), 200);
  ck_assert_msg(strstr(body, "\"rc\":0,\"delivered\":1,\"failed\":0"), "%s", body);
  char late[32];
  snprintf(late, sizeof late, "\"late\":%d", NOTIFD_ESTATE);
  ck_assert_msg(strstr(body, late), "%s", body);
  free(body);
  frame f;
  ck_assert_int_eq(ws_recv_data(&c, &f, FRAME_WAIT_MS), 1);
  ck_assert_str_eq((char *)f.data, "{\"n\":1}");
  free(f.data);
  /* The config's max_message (1 KiB) is the one in force. */
  char big[1100];
  memset(big, 'a', sizeof big);
  wsc d;
  ws_open(&d, port, "/notifications/subscribe?user_id=u2");
  ws_send(&d, ND_WS_OP_TEXT, 1, big, sizeof big);
  ck_assert_int_eq(ws_recv_data(&d, &f, FRAME_WAIT_MS), 1);
  ck_assert_int_eq(close_code(&f), 1009);
  free(f.data);
  ws_close_fd(&d);
  /* Graceful stop: the open socket gets 1001, the host finishes. */
  ck_assert_int_eq(nd_test_host_stop(t), 0);
  ck_assert_int_eq(ws_recv_data(&c, &f, FRAME_WAIT_MS), 1);
  ck_assert_int_eq(f.op, ND_WS_OP_CLOSE);
  ck_assert_int_eq(close_code(&f), 1001);
  free(f.data);
  ck_assert(wait_eof(&c, 2000));
  ws_close_fd(&c);
}
END_TEST

/* ---- registry and channel registration (no sockets) --------------------- */

START_TEST(keymap_many_keys) {
  nd_ws_keymap m;
  nd_ws_keymap_init(&m, 12345);
  enum { N = 5000 };
  nd_ws_keyent *ents[N];
  char key[32];
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "stream-%d", i);
    ents[i] = nd_ws_keymap_get(&m, key);
    ck_assert_ptr_nonnull(ents[i]);
    ck_assert_ptr_eq(nd_ws_keymap_get(&m, key), ents[i]); /* same entry again */
  }
  ck_assert_uint_eq(m.nkeys, N);
  ck_assert_uint_ge(m.nbuckets, N); /* grew: chains stay short */
  for (int i = 0; i < N; i += 2) nd_ws_keymap_remove(&m, ents[i]);
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "stream-%d", i);
    nd_ws_keyent *e = nd_ws_keymap_find(&m, key);
    if (i % 2) ck_assert_ptr_eq(e, ents[i]);
    else ck_assert_ptr_null(e);
  }
  ck_assert_ptr_null(nd_ws_keymap_find(&m, ""));
  ck_assert_ptr_nonnull(nd_ws_keymap_get(&m, "")); /* the empty key is a key like any */
  nd_ws_keymap_free(&m);
}
END_TEST

/* An older plugin's shorter options struct: fields past its size are not read. */
START_TEST(channel_opts_size_honoured) {
  notifd_host *h = calloc(1, sizeof *h);
  h->base = event_base_new();
  set_defaults(&h->cfg);
  h->ws = nd_ws_hub_new(h);
  ck_assert_ptr_nonnull(h->ws);
  notifd_ws_channel_opts o;
  memset(&o, 0xAB, sizeof o); /* garbage everywhere past `size` */
  o.size = (uint32_t)offsetof(notifd_ws_channel_opts, required_params);
  o.auth = NOTIFD_AUTH_NONE;
  o.path = "/old";
  o.key_param = "user_id";
  notifd_ws_channel *ch = NULL;
  ck_assert_int_eq(nd_ws_channel_add(h->ws, NULL, &o, &ch), NOTIFD_ESTATE); /* not in init */
  h->phase = ND_PHASE_INIT;
  ck_assert_int_eq(nd_ws_channel_add(h->ws, NULL, &o, &ch), 0);
  ck_assert_ptr_eq(nd_ws_channel_find(h->ws, "/old"), ch);
  ck_assert_uint_eq(ch->nparams, 1);
  ck_assert_ptr_null(ch->on_message);
  ck_assert_ptr_null(ch->on_upgrade);
  ck_assert_ptr_null(ch->ud);
  /* Bad options. */
  notifd_ws_channel *bad = (notifd_ws_channel *)1;
  notifd_ws_channel_opts b = {sizeof b};
  b.path = "no-slash";
  b.key_param = "k";
  ck_assert_int_eq(nd_ws_channel_add(h->ws, NULL, &b, &bad), NOTIFD_EINVAL);
  b.path = "/x";
  b.key_param = "";
  ck_assert_int_eq(nd_ws_channel_add(h->ws, NULL, &b, &bad), NOTIFD_EINVAL);
  b.key_param = "k";
  b.auth = 7;
  ck_assert_int_eq(nd_ws_channel_add(h->ws, NULL, &b, &bad), NOTIFD_EINVAL);
  ck_assert_ptr_null(bad);
  ck_assert_ptr_null(nd_ws_channel_find(h->ws, "/x"));
  /* Publishing to a key nobody holds is fine; bad arguments are not. */
  uint32_t d = 9, f = 9;
  ck_assert_int_eq(nd_ws_publish(ch, "nobody", "{}", 2, &d, &f), 0);
  ck_assert_uint_eq(d, 0);
  ck_assert_uint_eq(f, 0);
  ck_assert_int_eq(nd_ws_publish(ch, NULL, "{}", 2, &d, &f), NOTIFD_EINVAL);
  ck_assert_int_eq(nd_ws_close_key(ch, "nobody", 1000, NULL), 0);
  ck_assert_int_eq(nd_ws_close_key(ch, "nobody", 1005, NULL), NOTIFD_EINVAL);
  ck_assert_uint_eq(nd_ws_key_count(ch, "nobody"), 0);
  ck_assert_uint_eq(nd_ws_hub_count(h->ws), 0);
  nd_ws_hub_free(h->ws);
  /* Nothing left on the loop once the hub is gone. */
  ck_assert_int_eq(event_base_loop(h->base, EVLOOP_NONBLOCK), 1);
  event_base_free(h->base);
  free(h);
}
END_TEST

Suite *nd_test_suite(void) {
  Suite *s = suite_create("ws");
  TCase *reg = tcase_create("registry");
  tcase_add_test(reg, keymap_many_keys);
  tcase_add_test(reg, channel_opts_size_honoured);
  suite_add_tcase(s, reg);
  TCase *tc = tcase_create("e2e");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, subscribe_publish_receive);
  tcase_add_test(tc, subprotocols_subject_and_pause);
  tcase_add_test(tc, two_connections_one_key_and_close_removes);
  tcase_add_test(tc, full_socket_then_drained_keeps_order);
  tcase_add_test(tc, write_delay_holds_frames);
  tcase_add_test(tc, reading_stops_while_main_is_behind);
  tcase_add_test(tc, reply_goes_before_close_answer);
  tcase_add_test(tc, oversize_message_closes_1009);
  tcase_add_test(tc, echo_fragments_pings_and_protocol_errors);
  tcase_add_test(tc, frame_in_same_packet_as_request);
  tcase_add_test(tc, origin_allow_list);
  tcase_add_test(tc, origin_same_host_by_default);
  tcase_add_test(tc, origin_star_allows_any);
  tcase_add_test(tc, handshake_timeout_applies);
  tcase_add_test(tc, per_key_cap_counts_own_subject);
  tcase_add_test(tc, per_ip_cap_covers_websockets);
  tcase_add_test(tc, handshake_refusals);
  tcase_add_test(tc, connection_limits);
  tcase_add_test(tc, token_policy);
  tcase_add_test(tc, policies_without_secrets_reject);
  tcase_add_test(tc, heartbeat_ping_pong_timeout);
  tcase_add_test(tc, close_key_and_close_all);
  tcase_add_test(tc, hub_free_with_open_connections);
  tcase_add_test(tc, embedded_host_publish_and_graceful_stop);
  suite_add_tcase(s, tc);
  /* 4 000 frames written and read through real sockets, in lockstep with a
   * reader thread: genuinely long under ASan on a loaded machine. */
  TCase *bulk = tcase_create("e2e-bulk");
  tcase_set_timeout(bulk, 120);
  tcase_add_test(bulk, slow_consumer_cut_off_fast_one_keeps_receiving);
  suite_add_tcase(s, bulk);
  return s;
}
