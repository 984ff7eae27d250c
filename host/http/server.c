/* The HTTP server: listener, connection list, limits, graceful stop and the
 * in-flight request list.  Protocol work per connection is in conn.c. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/listener.h>

#include "http/server_internal.h"
#include "http/tls.h"
#include "log/log.h"

#define DEFAULT_MAX_BODY (1024 * 1024)
#define DEFAULT_MAX_HEADER (16 * 1024)
#define DEFAULT_MAX_CONNS 100000
#define DEFAULT_KEEPALIVE_MS 60000
#define DEFAULT_REQUEST_MS 30000
#define LINGER_MS 2000
#define ACCEPT_RETRY_MS 100
#define BACKLOG 1024

static void ms_to_tv(int64_t ms, struct timeval *tv) {
  tv->tv_sec = (time_t)(ms / 1000);
  tv->tv_usec = (suseconds_t)((ms % 1000) * 1000);
}

/* Timeouts shared by every connection use libevent's common-timeout
 * queues: adding and removing them is O(1) instead of a heap update. */
static const struct timeval *common_timeout(struct event_base *base, int64_t ms,
                                            struct timeval *raw) {
  ms_to_tv(ms, raw);
  const struct timeval *tv = event_base_init_common_timeout(base, raw);
  return tv ? tv : raw;
}

nd_http_server *nd_http_server_new(notifd_host *h, nd_router *router, int is_admin) {
  if (!h || !h->base || !router) return NULL;
  nd_http_server *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  const nd_config *cfg = &h->cfg;
  s->host = h;
  s->base = h->base;
  s->router = router;
  s->is_admin = is_admin;
  s->port = -1;
  s->max_body = cfg->http_max_body ? cfg->http_max_body : DEFAULT_MAX_BODY;
  s->max_header = cfg->http_max_header_bytes ? cfg->http_max_header_bytes : DEFAULT_MAX_HEADER;
  s->max_conns = cfg->http_max_connections ? cfg->http_max_connections : DEFAULT_MAX_CONNS;
  int64_t keep = cfg->http_keepalive_ms > 0 ? cfg->http_keepalive_ms : DEFAULT_KEEPALIVE_MS;
  int64_t req = cfg->http_request_timeout_ms > 0 ? cfg->http_request_timeout_ms
                                                 : DEFAULT_REQUEST_MS;
  s->tv_keepalive = common_timeout(s->base, keep, &s->keepalive_raw);
  s->tv_request = common_timeout(s->base, req, &s->request_raw);
  s->tv_linger = common_timeout(s->base, req < LINGER_MS ? req : LINGER_MS, &s->linger_raw);
  s->tv_tls_handshake = common_timeout(
      s->base, cfg->tls_handshake_timeout_ms > 0 ? cfg->tls_handshake_timeout_ms : 10000,
      &s->tls_handshake_raw);
  nd_http_metrics_init(&s->metrics, h->metrics);
  if (nd_http_limits_init(s) < 0) {
    nd_http_limits_free(s);
    free(s);
    return NULL;
  }
  if (!is_admin && cfg->static_dir && *cfg->static_dir) s->statics = nd_static_new(cfg->static_dir);
  return s;
}

/* ---- accepting --------------------------------------------------------- */
/* Closes a connection refused at accept, with a 503 on a plain-text port
 * (a TLS port gets no plain-text answer: it could only be garbage). */
static void reject_busy(nd_http_server *s, evutil_socket_t fd, const char *why) {
  if (s->tls) {
    evutil_closesocket(fd);
    return;
  }
  char resp[256];
  int n = snprintf(resp, sizeof resp,
                   "HTTP/1.1 503 Service Unavailable\r\n"
                   "Content-Type: application/json; charset=utf-8\r\n"
                   "Content-Length: %zu\r\n"
                   "Connection: close\r\n\r\n"
                   "{\"error\":\"%s\"}",
                   strlen(why) + 12, why);
  ssize_t w = send(fd, resp, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
  (void)w; /* best effort: the socket closes either way */
  evutil_closesocket(fd);
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg) {
  (void)lev;
  (void)salen;
  nd_http_server *s = arg;
  if (s->stopping) {
    evutil_closesocket(fd);
    return;
  }
  if (s->nconns >= s->max_conns) {
    reject_busy(s, fd, "too many connections");
    return;
  }
  struct nd_ipent *peer;
  if (nd_http_limits_accept(s, sa, &peer) < 0) {
    reject_busy(s, fd, "too many connections from this address");
    return;
  }
  nd_conn_accept(s, fd, peer);
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  nd_http_server *s = arg;
  if (s->lev) evconnlistener_enable(s->lev);
}

static void on_accept_error(struct evconnlistener *lev, void *arg) {
  nd_http_server *s = arg;
  int err = EVUTIL_SOCKET_ERROR();
  ND_WARN_RL("http", "accept failed: %s", evutil_socket_error_to_string(err));
  if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
    /* Out of descriptors: the pending connection stays readable and would
     * spin the loop; pause accepting for a moment. */
    evconnlistener_disable(lev);
    if (!s->accept_retry) s->accept_retry = evtimer_new(s->base, on_accept_retry, s);
    struct timeval tv;
    ms_to_tv(ACCEPT_RETRY_MS, &tv);
    if (!s->accept_retry || evtimer_add(s->accept_retry, &tv) < 0) evconnlistener_enable(lev);
  }
}

int nd_http_server_listen(nd_http_server *s, const char *addr, int port, nd_errors *errs) {
  const char *what = s && s->is_admin ? "admin" : "http";
  if (!s) return NOTIFD_EINVAL;
  if (s->lev || s->stopping) return NOTIFD_ESTATE;
  if (port < 0 || port > 65535) {
    if (errs) nd_errors_add(errs, NULL, 0, 0, "%s: invalid listen port %d", what, port);
    return NOTIFD_EINVAL;
  }
  if (!s->is_admin && s->host->cfg.tls_cert && !(s->tls = nd_tls_ctx_new(&s->host->cfg, errs)))
    return NOTIFD_EINVAL; /* the admin listener stays plain (loopback) */
  const char *host = addr && *addr && strcmp(addr, "*") != 0 ? addr : NULL;
  char portstr[16];
  snprintf(portstr, sizeof portstr, "%d", port);
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int gai = getaddrinfo(host, portstr, &hints, &res);
  if (gai != 0) {
    if (errs)
      nd_errors_add(errs, NULL, 0, 0, "%s: cannot resolve listen address '%s': %s", what,
                    host ? host : "*", gai_strerror(gai));
    return NOTIFD_EINVAL;
  }
  int err = 0;
  for (struct addrinfo *ai = res; ai && !s->lev; ai = ai->ai_next) {
    s->lev = evconnlistener_new_bind(s->base, on_accept, s,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
                                         LEV_OPT_CLOSE_ON_EXEC,
                                     BACKLOG, ai->ai_addr, (int)ai->ai_addrlen);
    if (!s->lev) err = errno;
  }
  freeaddrinfo(res);
  if (!s->lev) {
    if (errs)
      nd_errors_add(errs, NULL, 0, 0, "%s: cannot listen on %s:%d: %s", what,
                    host ? host : "*", port, strerror(err ? err : EINVAL));
    return NOTIFD_EBACKEND;
  }
  evconnlistener_set_error_cb(s->lev, on_accept_error);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  evutil_socket_t fd = evconnlistener_get_fd(s->lev);
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
    if (ss.ss_family == AF_INET)
      s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    else if (ss.ss_family == AF_INET6)
      s->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  }
  ND_INFO("http", "%s listening on %s:%d%s", what, host ? host : "*", s->port,
          s->tls ? " (TLS)" : "");
  return 0;
}

int nd_http_server_port(const nd_http_server *s) { return s && s->lev ? s->port : -1; }

/* ---- bookkeeping used by conn.c and request.c -------------------------- */
void nd_http_server_unlink_conn(nd_http_server *s, nd_conn *c) {
  if (c->prev)
    c->prev->next = c->next;
  else if (s->conns == c)
    s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
  s->nconns--;
  nd_metric_add(s->metrics.connections, NULL, -1);
}

void nd_http_server_req_dispatched(nd_http_server *s, notifd_req *r) {
  r->iprev = NULL;
  r->inext = s->inflight;
  if (s->inflight) s->inflight->iprev = r;
  s->inflight = r;
  s->ninflight++;
}

void nd_http_server_req_done(nd_http_server *s, notifd_req *r) {
  if (r->iprev)
    r->iprev->inext = r->inext;
  else if (s->inflight == r)
    s->inflight = r->inext;
  if (r->inext) r->inext->iprev = r->iprev;
  r->iprev = r->inext = NULL;
  s->ninflight--;
  r->dispatched = 0;
}

const char *nd_http_server_date(nd_http_server *s) {
  struct timeval tv;
  if (event_base_gettimeofday_cached(s->base, &tv) < 0) tv.tv_sec = time(NULL);
  if (tv.tv_sec != s->date_sec || !s->date[0]) {
    nd_http_date(tv.tv_sec, s->date);
    s->date_sec = tv.tv_sec;
  }
  return s->date;
}

/* ---- stopping ---------------------------------------------------------- */
static void close_listener(nd_http_server *s) {
  if (s->lev) evconnlistener_free(s->lev);
  s->lev = NULL;
  if (s->accept_retry) event_free(s->accept_retry);
  s->accept_retry = NULL;
}

void nd_http_server_stop_accepting(nd_http_server *s) {
  if (!s) return;
  s->stopping = 1;
  close_listener(s);
  for (nd_conn *c = s->conns, *next; c; c = next) {
    next = c->next;
    nd_conn_stop(c);
  }
}

size_t nd_http_server_inflight(const nd_http_server *s) { return s ? s->ninflight : 0; }
size_t nd_http_server_connections(const nd_http_server *s) { return s ? s->nconns : 0; }

void nd_http_server_free(nd_http_server *s) {
  if (!s) return;
  s->stopping = 1;
  close_listener(s);
  while (s->conns) {
    nd_conn *c = s->conns;
    nd_conn_flush_once(c);
    nd_conn_close(c);
  }
  /* Requests still with their handlers outlive the server: their answers
   * are dropped and they free themselves when answered. */
  while (s->inflight) {
    notifd_req *r = s->inflight;
    nd_http_server_req_done(s, r);
    r->srv = NULL;
    r->metrics = NULL;
    nd_req_detach(r);
  }
  nd_static_free(s->statics);
  nd_http_limits_free(s);
  nd_tls_ctx_free(s->tls);
  free(s);
}
