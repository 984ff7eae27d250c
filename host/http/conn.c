/* One HTTP/1.x connection: reads requests, hands them to the router (or
 * the websocket layer), writes answers in request order, and manages
 * keep-alive, timeouts and closing.
 *
 * I/O is done directly on the socket with a persistent read event: one
 * recv() per readable event and, when an answer is ready, one sendmsg()
 * of everything queued.  A write event is only added when the kernel
 * buffer is full, so a keep-alive request costs a read and a write and no
 * epoll_ctl.  Requests on a connection are handled one at a time; bytes of
 * pipelined requests wait in the input buffer (bounded) until the previous
 * one is answered, which keeps answers in order by construction.
 *
 * With listen.tls the same machine runs over OpenSSL (tls.h): the
 * handshake first (state IDLE with its own timer), then SSL_read and
 * SSL_write where the plain path calls recv and sendmsg; the tls_*
 * functions at the end of this file are the only TLS-specific code. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "auth/auth.h"
#include "http/server_internal.h"
#include "http/tls.h"
#include "log/access.h"
#include "log/log.h"
#include "util/evbuf_send.h"
#include "util/ipcount.h"
#include "ws/ws.h"

#define READ_CHUNK 16384
#define MAX_HEAD_LINES 128          /* request line + headers + empty line */
#define PAUSE_INPUT (64 * 1024)     /* pipelined bytes kept while handling */
#define PAUSE_OUTPUT (256 * 1024)   /* unsent answers before we stop reading */
#define SEND_IOV 32
#define REF_BODY_MIN 16384          /* larger heap bodies are not copied */
#define JSON_CT "application/json; charset=utf-8"
/* Bytes per SSL_write: one full record, and no more than the first write
 * of bufferevent_openssl takes (16 KiB), so that a write it must retry
 * after the websocket hand-over fits its first chunk. */
#define TLS_WRITE_MAX 16384

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);
static void deliver(void *sink, notifd_req *r, nd_resp_view *v);
static void flush(nd_conn *c);
static void process(nd_conn *c);
static int tls_on_read(nd_conn *c, int *eof);
static void tls_on_write(nd_conn *c);
static int tls_flush(nd_conn *c);
static void tls_handshake(nd_conn *c);
static void tls_before_handover(nd_conn *c);

static void hold(nd_conn *c) { c->depth++; }

static void really_free(nd_conn *c) {
  if (c->in) evbuffer_free(c->in);
  if (c->out) evbuffer_free(c->out);
  nd_buf_free(&c->cbody);
  free(c);
}

/* 1 while the connection is still open. */
static int release(nd_conn *c) {
  if (--c->depth == 0 && c->dead) {
    really_free(c);
    return 0;
  }
  return !c->dead;
}

static void set_timer(nd_conn *c, const struct timeval *tv) {
  event_del(&c->tev);
  if (tv) event_add(&c->tev, tv);
}

static void start_reading(nd_conn *c) {
  if (!c->reading && !c->peer_eof && !c->dead && event_add(&c->rev, NULL) == 0) c->reading = 1;
}

static void stop_reading(nd_conn *c) {
  if (c->reading) event_del(&c->rev);
  c->reading = 0;
}

void nd_conn_accept(nd_http_server *s, evutil_socket_t fd, struct nd_ipent *peer) {
  nd_conn *c = calloc(1, sizeof *c);
  if (!c || !(c->in = evbuffer_new()) || !(c->out = evbuffer_new())) {
    ND_WARN("http", "out of memory accepting a connection");
    if (c) really_free(c);
    nd_ipcount_release(peer);
    evutil_closesocket(fd);
    return;
  }
  c->srv = s;
  c->peer = peer;
  c->fd = fd;
  nd_buf_init(&c->cbody);
  if (s->tls) {
    if (!(c->ssl = nd_tls_new(s->tls, fd))) {
      ND_WARN("http", "out of memory accepting a TLS connection");
      really_free(c);
      evutil_closesocket(fd);
      return;
    }
    c->tls_hs = 1;
  }
  event_assign(&c->rev, s->base, fd, EV_READ | EV_PERSIST, on_read, c);
  event_assign(&c->wev, s->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
  evtimer_assign(&c->tev, s->base, on_timer, c);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  start_reading(c);
  if (!c->reading) {
    ND_WARN("http", "cannot watch an accepted connection");
    nd_ipcount_release(peer);
    nd_tls_free(c->ssl);
    really_free(c);
    evutil_closesocket(fd);
    return;
  }
  set_timer(c, c->tls_hs ? s->tv_tls_handshake : s->tv_idle); /* a new connection must speak soon */
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->nconns++;
  nd_metric_add(s->metrics.connections, NULL, 1);
}

void nd_conn_close(nd_conn *c) {
  if (c->dead) return;
  c->dead = 1;
  stop_reading(c);
  event_del(&c->wev);
  event_del(&c->tev);
  c->writing = 0;
  if (c->auth_wait) nd_auth_waiter_cancel(c->auth_wait);
  c->auth_wait = NULL;
  if (c->ssl) nd_tls_free(c->ssl); /* close_notify first when healthy */
  c->ssl = NULL;
  if (c->fd >= 0) evutil_closesocket(c->fd);
  c->fd = -1;
  notifd_req *r = c->req;
  c->req = NULL;
  if (r) {
    if (r->dispatched || r->in_handler)
      nd_req_detach(r); /* the handler still owns it; its answer is dropped */
    else
      nd_req_free(r);
  }
  nd_http_limits_conn_gone(c);
  nd_http_server_unlink_conn(c->srv, c);
  if (c->depth == 0) really_free(c);
}

void nd_conn_stop(nd_conn *c) {
  c->close_after = 1;
  if (c->state != CONN_IDLE || evbuffer_get_length(c->in)) return;
  if (evbuffer_get_length(c->out) == 0) {
    nd_conn_close(c);
  } else {
    c->state = CONN_CLOSING;
    set_timer(c, c->srv->tv_request);
  }
}

void nd_conn_flush_once(nd_conn *c) {
  if (c->dead || c->fd < 0 || evbuffer_get_length(c->out) == 0) return;
  if (c->ssl) {
    size_t len = evbuffer_get_length(c->out);
    if (len > TLS_WRITE_MAX) len = TLS_WRITE_MAX;
    unsigned char *p = c->tls_hs ? NULL : evbuffer_pullup(c->out, (ssize_t)len);
    int w = p ? nd_tls_write(c->ssl, p, len) : 0;
    if (w > 0) evbuffer_drain(c->out, (size_t)w);
    return;
  }
  size_t total;
  ssize_t w = nd_evbuffer_sendmsg(c->out, c->fd, MSG_DONTWAIT, SEND_IOV, &total);
  if (w > 0) evbuffer_drain(c->out, (size_t)w);
}

/* ---- writing ----------------------------------------------------------- */
static void finish_close(nd_conn *c) {
  if (!c->must_close) {
    nd_conn_close(c);
    return;
  }
  /* Unread request bytes: closing now could turn into a reset that
   * destroys the answer before the client reads it.  Shut our side and
   * drain theirs for a moment instead. */
  if (c->ssl) nd_tls_shutdown(c->ssl);
  shutdown(c->fd, SHUT_WR);
  c->state = CONN_LINGER;
  set_timer(c, c->srv->tv_linger);
  start_reading(c);
}

static void flush(nd_conn *c) {
  if (c->ssl && tls_flush(c) < 0) return; /* waiting, or closed */
  while (!c->ssl && !c->dead && evbuffer_get_length(c->out)) {
    size_t total = 0;
    ssize_t w = nd_evbuffer_sendmsg(c->out, c->fd, 0, SEND_IOV, &total);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      nd_conn_close(c); /* peer gone: nothing more to say */
      return;
    }
    if (w > 0) evbuffer_drain(c->out, (size_t)w);
    if (w < 0 || ((size_t)w < total && evbuffer_get_length(c->out))) {
      /* Kernel buffer full: wait for writability. */
      if (!c->writing && event_add(&c->wev, NULL) == 0) c->writing = 1;
      return;
    }
  }
  if (c->dead) return;
  if (c->writing) {
    event_del(&c->wev);
    c->writing = 0;
  }
  if (c->state == CONN_CLOSING) {
    finish_close(c);
  } else if (c->state == CONN_IDLE && !c->reading && !c->peer_eof) {
    /* Reading was paused for a client that did not read its answers:
     * everything went out, so go on with what it sent meanwhile. */
    start_reading(c);
    if (evbuffer_get_length(c->in) || (c->ssl && nd_tls_pending(c->ssl)))
      event_active(&c->rev, EV_READ, 1);
  }
}

static int extra_has(const char *extra, size_t len, const char *name) {
  size_t nl = strlen(name);
  for (size_t i = 0; i < len;) {
    if (len - i > nl && strncasecmp(extra + i, name, nl) == 0 && extra[i + nl] == ':') return 1;
    const char *e = memchr(extra + i, '\n', len - i);
    if (!e) break;
    i = (size_t)(e - extra) + 1;
  }
  return 0;
}

static void free_body(const void *data, size_t len, void *heap) {
  (void)data;
  (void)len;
  free(heap);
}

/* Serializes one answer into the output buffer; 0 or -1 (OOM). */
static int write_response(nd_conn *c, int minor, nd_resp_view *v, int keep) {
  nd_http_server *s = c->srv;
  int st = v->status;
  int bodyless = st == 204 || st == 304 || st < 200;
  char hb[1024];
  int n = snprintf(hb, sizeof hb, "HTTP/1.1 %d %s\r\nDate: %s\r\n", st, nd_status_reason(st),
                   nd_http_server_date(s));
  if (v->content_type)
    n += snprintf(hb + n, sizeof hb - (size_t)n, "Content-Type: %s\r\n", v->content_type);
  else if (v->len && !extra_has(v->extra, v->extra_len, "Content-Type"))
    n += snprintf(hb + n, sizeof hb - (size_t)n, "Content-Type: application/octet-stream\r\n");
  if (!bodyless) n += snprintf(hb + n, sizeof hb - (size_t)n, "Content-Length: %zu\r\n", v->len);
  if (n < 0 || (size_t)n >= sizeof hb) return -1; /* cannot happen: ctype <= 256 */
  const char *tail = !keep ? "Connection: close\r\n\r\n"
                     : minor == 0 ? "Connection: keep-alive\r\n\r\n"
                                  : "\r\n";
  if (evbuffer_add(c->out, hb, (size_t)n) < 0 ||
      (v->extra_len && evbuffer_add(c->out, v->extra, v->extra_len) < 0) ||
      evbuffer_add(c->out, tail, strlen(tail)) < 0)
    return -1;
  if (bodyless || c->head_only || !v->len) return 0;
  if (v->body_heap && v->len >= REF_BODY_MIN) {
    if (evbuffer_add_reference(c->out, v->body, v->len, free_body, v->body_heap) < 0) return -1;
    v->body_heap = NULL;
    return 0;
  }
  return evbuffer_add(c->out, v->body, v->len);
}

static int access_on(const nd_http_server *s) { return s->host && s->host->cfg.log_access; }

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The access line of an answered request (never its query string). */
static void access_line(notifd_req *r, int status, size_t bytes) {
  char addr[64];
  if (nd_req_client_addr(r, addr, sizeof addr) < 0) addr[0] = '\0';
  nd_access_request(nd_method_name(r->method), r->path, status, bytes, mono_ns() - r->t0_ns,
                    r->auth_subject, addr[0] ? addr : NULL);
}

/* The answer to the current request (from nd_respond*). */
static void deliver(void *sink, notifd_req *r, nd_resp_view *v) {
  nd_conn *c = sink;
  if (c->dead) return;
  if (c->req == r) c->req = NULL;
  nd_http_body_release(c); /* answered: no body is being read any more */
  nd_http_server *s = c->srv;
  int keep = c->keep_alive && !c->must_close && !c->close_after && !c->peer_eof && !s->stopping;
  hold(c);
  size_t before = evbuffer_get_length(c->out);
  if (write_response(c, r->minor, v, keep) < 0) {
    ND_WARN("http", "out of memory writing a response; closing the connection");
    nd_conn_close(c);
    release(c);
    return;
  }
  if (access_on(s)) access_line(r, v->status, evbuffer_get_length(c->out) - before);
  if (keep) {
    c->state = CONN_IDLE;
    set_timer(c, s->tv_keepalive);
  } else {
    c->state = CONN_CLOSING;
    set_timer(c, s->tv_request); /* bound the time spent writing */
  }
  if (c->depth == 1) {
    /* Answered later, outside our callbacks: write now, then look at
     * pipelined requests from a fresh loop callback (never nested inside
     * the code that answered). */
    flush(c); /* also resumes reading if it was paused */
    if (!c->dead && c->state == CONN_IDLE && c->reading &&
        (evbuffer_get_length(c->in) || (c->ssl && nd_tls_pending(c->ssl))))
      event_active(&c->rev, EV_READ, 1);
  }
  release(c);
}

/* Protocol error before a request object exists (or after it was
 * discarded): answer and close. */
static void conn_fail(nd_conn *c, int status, const char *why) {
  nd_http_server *s = c->srv;
  char method[16] = "-", path[256] = "-";
  if (c->req) {
    if (c->req->path) {
      snprintf(method, sizeof method, "%s", nd_method_name(c->req->method));
      snprintf(path, sizeof path, "%s", c->req->path);
    }
    nd_req_free(c->req);
    c->req = NULL;
  }
  size_t before = evbuffer_get_length(c->out);
  c->must_close = 1;
  if (!why) why = nd_status_reason(status);
  char body[160];
  /* `why` is one of our static ASCII messages: no escaping needed. */
  int bl = snprintf(body, sizeof body, "{\"error\":\"%s\"}", why);
  if (bl < 0 || (size_t)bl >= sizeof body) bl = 0;
  char st[4];
  nd_status_digits(status, st);
  const char *values[3] = {"invalid", "unknown", st};
  nd_metric_add(s->metrics.requests, values, 1);
  if (evbuffer_add_printf(c->out,
                          "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: " JSON_CT
                          "\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%.*s",
                          status, nd_status_reason(status), nd_http_server_date(s), bl, bl,
                          body) < 0) {
    nd_conn_close(c);
    return;
  }
  if (access_on(s)) {
    char addr[64] = "";
    if (c->peer) nd_ipent_text(c->peer, addr, sizeof addr);
    int64_t ms = c->head_ms ? nd_now_ms() - c->head_ms : 0;
    nd_access_request(method, path, status, evbuffer_get_length(c->out) - before,
                      ms * 1000000, NULL, addr[0] ? addr : NULL);
  }
  c->state = CONN_CLOSING;
  set_timer(c, s->tv_request);
}

/* ---- reading requests -------------------------------------------------- */

/* 1 with *head_len once the head is complete, 0 for more input, or an
 * HTTP status (400 for a bare LF, 414, 431). */
static int find_head(nd_conn *c, size_t *head_len) {
  struct evbuffer *in = c->in;
  size_t max = c->srv->max_header;
  struct evbuffer_ptr p;
  if (evbuffer_ptr_set(in, &p, c->scan_off, EVBUFFER_PTR_SET) < 0) return 0;
  for (;;) {
    size_t eol_len = 0;
    struct evbuffer_ptr e = evbuffer_search_eol(in, &p, &eol_len, EVBUFFER_EOL_CRLF);
    if (e.pos < 0) break;
    if (eol_len != 2) return 400; /* bare LF: RFC 9112 lets us refuse */
    size_t line_len = (size_t)e.pos - c->scan_off;
    if (line_len == 0 && c->nlines == 0) {
      /* RFC 9112 2.2: empty lines before a request line are ignored. */
      evbuffer_drain(in, eol_len);
      if (evbuffer_ptr_set(in, &p, 0, EVBUFFER_PTR_SET) < 0) return 0;
      continue;
    }
    c->scan_off = (size_t)e.pos + eol_len;
    if (++c->nlines == 1) nd_http_limits_first_line(c, line_len);
    if (c->scan_off > max) return c->nlines == 1 ? 414 : 431;
    if (line_len == 0) {
      *head_len = c->scan_off;
      return 1;
    }
    if (c->nlines >= MAX_HEAD_LINES) return 431;
    p = e;
    if (evbuffer_ptr_set(in, &p, eol_len, EVBUFFER_PTR_ADD) < 0) return 0;
  }
  if (evbuffer_get_length(in) > max) return c->nlines == 0 ? 414 : 431;
  return 0;
}

static const char *fail_reason(int status) {
  switch (status) {
  case 400: return "bare LF in request head";
  case 414: return "request line too long";
  case 431: return "request header fields too large";
  case 408: return "request timeout";
  default: return NULL;
  }
}

/* Answering before the body was read: the body's bytes must not be taken
 * for the next request.  Drop them if they are all here, else close. */
static void skip_body(nd_conn *c, const nd_head_info *info) {
  if (info->chunked) {
    c->must_close = 1;
  } else if (info->has_cl && info->cl) {
    if (evbuffer_get_length(c->in) >= info->cl)
      evbuffer_drain(c->in, (size_t)info->cl);
    else
      c->must_close = 1;
  }
}

static void dispatch(nd_conn *c) {
  notifd_req *r = c->req;
  c->state = CONN_HANDLING;
  set_timer(c, NULL);
  if (r->route)
    nd_req_run_handler(r);
  else if (!nd_static_serve(c->srv->statics, r))
    nd_req_answer_routing(r, 404, NULL);
}

static void conn_upgrade(nd_conn *c, notifd_ws_channel *ch) {
  notifd_req *r = c->req;
  nd_http_server *s = c->srv;
  stop_reading(c);
  event_del(&c->wev);
  c->writing = 0;
  set_timer(c, NULL);
  struct bufferevent *bev = NULL;
  if (!c->ssl) {
    bev = bufferevent_socket_new(s->base, c->fd, BEV_OPT_CLOSE_ON_FREE);
  } else {
    tls_before_handover(c);
    bev = nd_tls_bev_new(s->base, c->fd, c->ssl);
  }
  int rc = 503;
  const char *msg = "out of memory";
  if (bev) {
    /* Answers still queued go first; bytes after the request are the
     * websocket's.  A socket bufferevent keeps its input's end and its
     * output's start frozen (only it may touch them): thaw for the move.
     * A TLS one freezes nothing. */
    struct evbuffer *bin = bufferevent_get_input(bev), *bout = bufferevent_get_output(bev);
    evbuffer_unfreeze(bin, 0);
    int moved = evbuffer_add_buffer(bout, c->out) == 0 && evbuffer_add_buffer(bin, c->in) == 0;
    if (!c->ssl) evbuffer_freeze(bin, 0);
    if (moved) {
      msg = NULL;
      rc = nd_ws_upgrade(ch, r, bev, &msg);
      if (rc == 0) {
        c->req = NULL;
        c->fd = -1;      /* owned by the websocket layer now */
        c->peer = NULL;  /* and so is the address count */
        c->ssl = NULL;   /* and the TLS session */
        nd_req_free(r);
        nd_conn_close(c);
        return;
      }
    }
    /* Refused: take everything back and answer normally. */
    evbuffer_add_buffer(c->in, bin);
    evbuffer_unfreeze(bout, 1);
    evbuffer_add_buffer(c->out, bout);
    if (!c->ssl) {
      evbuffer_freeze(bout, 1);
      bufferevent_setfd(bev, -1); /* so freeing it does not close our socket */
    }
    bufferevent_free(bev); /* a TLS one owns neither socket nor SSL */
  }
  start_reading(c);
  if (rc < 200 || rc > 599) rc = 500;
  nd_respond_error(r, rc, msg ? msg : "websocket upgrade refused");
}

/* ---- waiting for token signing keys ------------------------------------ */
static void route_request(nd_conn *c, const nd_head_info *info);

/* The parked request's keys are in (or the wait is over): go on where
 * start_request stopped, then with whatever the client sent meanwhile. */
static void resume_parked(void *arg) {
  nd_conn *c = arg;
  c->auth_wait = NULL;
  if (c->dead || c->state != CONN_AUTH_WAIT) return;
  hold(c);
  notifd_ws_channel *ch = c->auth_ch;
  c->auth_ch = NULL;
  c->state = CONN_HEAD;
  set_timer(c, c->srv->tv_request);
  start_reading(c);
  if (ch)
    conn_upgrade(c, ch);
  else
    route_request(c, &c->auth_info);
  if (!c->dead) process(c);
  if (!c->dead) flush(c);
  release(c);
}

/* A token-policy request whose token names a signing key not fetched yet
 * waits for the JWKS refresh instead of failing: 1 = parked. */
static int park_for_keys(nd_conn *c, const nd_head_info *info, notifd_ws_channel *ch) {
  uint32_t policy = ch ? nd_ws_channel_auth(ch) : c->req->route ? c->req->route->auth : 0;
  if (policy != NOTIFD_AUTH_TOKEN ||
      !nd_auth_wait_keys(c->srv->host, c->req, resume_parked, c, &c->auth_wait))
    return 0;
  c->auth_info = *info;
  c->auth_ch = ch;
  c->state = CONN_AUTH_WAIT;
  stop_reading(c);
  set_timer(c, NULL);
  return 1;
}

static void start_request(nd_conn *c, size_t head_len) {
  nd_http_server *s = c->srv;
  size_t maxh = c->nlines;
  notifd_req *r = nd_req_alloc(maxh, head_len);
  if (!r) {
    conn_fail(c, 503, "out of memory");
    return;
  }
  evbuffer_remove(c->in, r->head, head_len);
  r->head[head_len] = '\0';
  c->scan_off = 0;
  c->nlines = 0;
  nd_head_info info;
  int rc = nd_http_parse_head(r->head, head_len, r, r->hdrs, maxh, &info);
  if (rc) {
    nd_req_free(r);
    conn_fail(c, rc, info.why);
    return;
  }
  r->host = s->host;
  r->metrics = &s->metrics;
  r->srv = s;
  r->deliver = deliver;
  r->sink = c;
  r->peer = c->peer;
  c->req = r;
  c->head_only = r->method == ND_M_HEAD;
  c->keep_alive = r->minor >= 1 ? !info.conn_close : info.conn_keepalive && !info.conn_close;
  int has_body = info.chunked || (info.has_cl && info.cl > 0);

  if (!s->is_admin && r->method == ND_M_GET && s->host && s->host->ws) {
    notifd_ws_channel *ch = nd_ws_channel_find(s->host->ws, r->path);
    if (ch) {
      if (has_body) {
        skip_body(c, &info);
        if (c->must_close) {
          nd_respond_error(r, 400, "websocket handshake with a body");
          return;
        }
      }
      if (park_for_keys(c, &info, ch)) return;
      conn_upgrade(c, ch);
      return;
    }
  }

  char allow[96];
  int mrc = nd_router_match(s->router, nd_method_name(r->method), r->path, &r->match, allow,
                            sizeof allow);
  int is_static = mrc == 404 && s->statics && (r->method == ND_M_GET || r->method == ND_M_HEAD);
  if (nd_http_cors(s, r, mrc, allow)) {
    skip_body(c, &info);
    return;
  }
  if (mrc == 0) {
    r->route = r->match.route;
    r->route_label = r->route->pattern;
  } else if (is_static) {
    r->route_label = "static";
  } else {
    skip_body(c, &info);
    nd_req_answer_routing(r, mrc, allow);
    return;
  }
  if (park_for_keys(c, &info, NULL)) return;
  route_request(c, &info);
}

/* A routed request from its auth check on: answer it, dispatch it, or
 * start reading its body. */
static void route_request(nd_conn *c, const nd_head_info *ip) {
  nd_http_server *s = c->srv;
  notifd_req *r = c->req;
  nd_head_info info = *ip;
  int has_body = info.chunked || (info.has_cl && info.cl > 0);
  const char *why;
  if (!nd_req_auth_ok(r, &why)) {
    skip_body(c, &info);
    nd_respond_error(r, 401, why);
    return;
  }
  if (nd_http_rate_limited(s, r)) {
    skip_body(c, &info);
    return;
  }
  c->body_limit = r->route && r->route->max_body ? r->route->max_body : s->max_body;
  if (info.has_cl && info.cl > c->body_limit) {
    c->must_close = 1;
    nd_respond_error(r, 413, "request body too large");
    return;
  }
  if (!has_body) {
    dispatch(c);
    return;
  }
  if (info.expect_continue && (info.chunked || evbuffer_get_length(c->in) < info.cl))
    evbuffer_add(c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
  if (info.chunked) {
    memset(&c->chunk, 0, sizeof c->chunk);
    nd_buf_free(&c->cbody);
    c->state = CONN_BODY_CHUNKED;
  } else {
    c->body_need = info.cl;
    c->state = CONN_BODY_CL;
  }
}

static void read_cl_body(nd_conn *c) {
  notifd_req *r = c->req;
  size_t need = (size_t)c->body_need;
  r->body = malloc(need + 1);
  if (!r->body) {
    c->must_close = 1;
    nd_respond_error(r, 503, "out of memory");
    return;
  }
  evbuffer_remove(c->in, r->body, need);
  r->body[need] = '\0';
  r->body_len = need;
  dispatch(c);
}

static void read_chunked_body(nd_conn *c, int rc) {
  notifd_req *r = c->req;
  if (rc == 1) {
    size_t len = 0;
    r->body = nd_buf_steal(&c->cbody, &len);
    if (!r->body) {
      c->must_close = 1;
      nd_respond_error(r, 503, "out of memory");
      return;
    }
    r->body_len = len;
    dispatch(c);
    return;
  }
  c->must_close = 1;
  nd_buf_free(&c->cbody);
  nd_respond_error(r, rc, rc == 413   ? "request body too large"
                          : rc == 431 ? "request trailer fields too large"
                          : rc == 503 ? "out of memory"
                          : c->chunk.why ? c->chunk.why
                                      : "malformed chunked body");
}

/* Handles every complete request in the input, in order, as long as each
 * is answered synchronously. */
static void process(nd_conn *c) {
  nd_http_server *s = c->srv;
  while (!c->dead) {
    switch (c->state) {
    case CONN_IDLE:
      if (evbuffer_get_length(c->in) == 0) return;
      if (evbuffer_get_length(c->out) > PAUSE_OUTPUT) {
        /* Pipelining client not reading its answers: wait for the output
         * to drain (flush resumes us) instead of queueing more. */
        ND_DEBUG("http", "client not reading its answers (%zu bytes queued): pausing",
                 evbuffer_get_length(c->out));
        stop_reading(c);
        return;
      }
      c->state = CONN_HEAD;
      c->scan_off = 0;
      c->nlines = 0;
      c->head_ms = nd_now_ms();
      set_timer(c, s->tv_request); /* whole-request deadline from here */
      /* fallthrough */
    case CONN_HEAD: {
      size_t head_len = 0;
      int rc = find_head(c, &head_len);
      if (rc == 0) return;
      if (rc != 1) {
        conn_fail(c, rc, fail_reason(rc));
        return;
      }
      start_request(c, head_len);
      break;
    }
    case CONN_BODY_CL:
      if (evbuffer_get_length(c->in) < c->body_need) {
        nd_http_body_account(c);
        return;
      }
      read_cl_body(c);
      break;
    case CONN_BODY_CHUNKED: {
      int rc = nd_chunked_feed(&c->chunk, c->in, &c->cbody, c->body_limit, s->max_header);
      if (rc == 0) {
        nd_http_body_account(c);
        return;
      }
      read_chunked_body(c, rc);
      break;
    }
    default:
      return;
    }
  }
}

static void on_read(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  nd_conn *c = arg;
  hold(c);
  struct evbuffer_iovec v;
  int eof = 0;
  if (c->ssl) {
    if (tls_on_read(c, &eof) < 0) goto out;
    goto got_input;
  }
  if (evbuffer_reserve_space(c->in, READ_CHUNK, &v, 1) < 1) {
    nd_conn_close(c);
    goto out;
  }
  ssize_t n = recv(fd, v.iov_base, v.iov_len, 0);
  if (n > 0) {
    v.iov_len = (size_t)n;
    evbuffer_commit_space(c->in, &v, 1);
  } else if (n == 0) {
    eof = 1;
  } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    nd_conn_close(c);
    goto out;
  }
got_input:
  if (c->state == CONN_LINGER || c->state == CONN_CLOSING) {
    evbuffer_drain(c->in, evbuffer_get_length(c->in));
    if (eof && c->state == CONN_LINGER) nd_conn_close(c);
    if (eof) {
      c->peer_eof = 1;
      stop_reading(c);
    }
    goto out;
  }
  process(c);
  if (c->dead) goto out;
  if (eof) {
    c->peer_eof = 1;
    stop_reading(c);
    if (c->state == CONN_HANDLING) {
      /* Maybe a half-close: the answer is still written when it comes
       * (and dropped by the kernel if the client is really gone). */
    } else if (c->state == CONN_IDLE && evbuffer_get_length(c->in) == 0 &&
               evbuffer_get_length(c->out)) {
      c->state = CONN_CLOSING;
      set_timer(c, c->srv->tv_request);
    } else if (c->state != CONN_CLOSING) {
      nd_conn_close(c); /* idle, or an incomplete request: nothing to answer */
      goto out;
    }
  }
  flush(c);
  if (!c->dead && c->state == CONN_HANDLING && evbuffer_get_length(c->in) > PAUSE_INPUT)
    stop_reading(c); /* resumed when the answer comes */
out:
  release(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  nd_conn *c = arg;
  hold(c);
  if (c->ssl)
    tls_on_write(c);
  else
    flush(c);
  release(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  nd_conn *c = arg;
  hold(c);
  switch (c->state) {
  case CONN_HEAD:
    conn_fail(c, 408, "request timeout");
    flush(c);
    break;
  case CONN_BODY_CL:
  case CONN_BODY_CHUNKED:
    c->must_close = 1;
    nd_respond_error(c->req, 408, "request timeout");
    flush(c);
    break;
  case CONN_HANDLING:
    break;
  default: /* idle keep-alive, stalled write, or linger over */
    nd_conn_close(c);
    break;
  }
  release(c);
}

/* ---- TLS --------------------------------------------------------------- */

static void want_write(nd_conn *c) {
  if (!c->writing && event_add(&c->wev, NULL) == 0) c->writing = 1;
}

static void stop_writing(nd_conn *c) {
  if (c->writing) event_del(&c->wev);
  c->writing = 0;
}

/* A plain HTTP request on the TLS port: say so in plain HTTP, then close
 * (lingering, as for any answer sent before the request was read). */
static void tls_plain_client(nd_conn *c) {
  nd_tls_free(c->ssl);
  c->ssl = NULL;
  c->tls_hs = 0;
  conn_fail(c, 400, "this port speaks TLS: use https://");
  flush(c);
}

static void tls_handshake(nd_conn *c) {
  int rc = nd_tls_handshake(c->ssl);
  if (rc == ND_TLS_WANT_WRITE) {
    want_write(c);
    return;
  }
  stop_writing(c);
  if (rc == ND_TLS_WANT_READ) return;
  if (rc == ND_TLS_NOT_TLS) {
    tls_plain_client(c);
    return;
  }
  if (rc < 0) {
    nd_conn_close(c);
    return;
  }
  c->tls_hs = 0;
  set_timer(c, c->srv->tv_keepalive);
  /* The first request may have come with the client's last handshake
   * flight and sit in OpenSSL's buffer: no readiness event for it. */
  event_active(&c->rev, EV_READ, 1);
}

/* on_read's input step: 0 when c->in may have grown (*eof at the end of
 * the client's input), -1 when there is nothing more to do now. */
static int tls_on_read(nd_conn *c, int *eof) {
  if (c->tls_hs) {
    tls_handshake(c);
    return -1;
  }
  if (c->tls_w_wants_r) { /* a write waited for this */
    c->tls_w_wants_r = 0;
    flush(c);
    if (c->dead) return -1;
  }
  if (!c->reading) return 0; /* woken for buffered requests only */
  size_t got = 0;
  for (;;) {
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(c->in, READ_CHUNK, &v, 1) < 1) {
      nd_conn_close(c);
      return -1;
    }
    int n = nd_tls_read(c->ssl, v.iov_base, v.iov_len);
    if (n > 0) {
      v.iov_len = (size_t)n;
      evbuffer_commit_space(c->in, &v, 1);
      got += (size_t)n;
      /* Records OpenSSL read ahead get no readiness event: take them now,
       * a bounded amount per turn. */
      if (!nd_tls_pending(c->ssl)) return 0;
      if (got >= PAUSE_INPUT) {
        event_active(&c->rev, EV_READ, 1);
        return 0;
      }
      continue;
    }
    if (n == 0) {
      *eof = 1;
    } else if (n == ND_TLS_WANT_WRITE) {
      c->tls_r_wants_w = 1;
      want_write(c);
    } else if (n != ND_TLS_WANT_READ) {
      nd_conn_close(c);
      return -1;
    }
    return 0;
  }
}

static void tls_on_write(nd_conn *c) {
  if (c->tls_hs) {
    tls_handshake(c);
    return;
  }
  if (c->tls_r_wants_w) { /* a read waited for this */
    c->tls_r_wants_w = 0;
    event_active(&c->rev, EV_READ, 1);
  }
  flush(c);
}

/* flush's output step: 0 when everything went out, -1 when waiting for
 * the socket (or closed). */
static int tls_flush(nd_conn *c) {
  if (c->tls_hs || c->tls_w_wants_r) return -1;
  while (!c->dead && evbuffer_get_length(c->out)) {
    size_t len = evbuffer_get_length(c->out);
    if (len > TLS_WRITE_MAX) len = TLS_WRITE_MAX;
    /* Header and body in one record; a retry passes the same bytes again
     * (the buffer only grows meanwhile). */
    unsigned char *p = evbuffer_pullup(c->out, (ev_ssize_t)len);
    int w = p ? nd_tls_write(c->ssl, p, len) : ND_TLS_FAILED;
    if (w > 0) {
      evbuffer_drain(c->out, (size_t)w);
    } else if (w == ND_TLS_WANT_WRITE) {
      want_write(c);
      return -1;
    } else if (w == ND_TLS_WANT_READ) {
      c->tls_w_wants_r = 1;
      stop_writing(c);
      start_reading(c);
      return -1;
    } else {
      nd_conn_close(c); /* peer gone: nothing more to say */
      return -1;
    }
  }
  return c->dead ? -1 : 0;
}

/* Before the websocket hand-over: bufferevent_openssl looks at OpenSSL's
 * buffer only after a readiness event, so what it holds moves to c->in
 * (a client must wait for the 101 before sending frames: little or
 * nothing).  A write to be retried stays in one piece at the front of
 * c->out, where bufferevent_openssl's first write finds it. */
static void tls_before_handover(nd_conn *c) {
  size_t got = 0;
  while (nd_tls_pending(c->ssl) && got < PAUSE_INPUT) {
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(c->in, READ_CHUNK, &v, 1) < 1) break;
    int n = nd_tls_read(c->ssl, v.iov_base, v.iov_len);
    if (n <= 0) break; /* the bufferevent meets the end or error itself */
    v.iov_len = (size_t)n;
    evbuffer_commit_space(c->in, &v, 1);
    got += (size_t)n;
  }
  size_t out = evbuffer_get_length(c->out);
  if (out) evbuffer_pullup(c->out, (ev_ssize_t)(out < TLS_WRITE_MAX ? out : TLS_WRITE_MAX));
}
