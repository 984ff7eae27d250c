/* "local:/path?query" calls: the request goes straight to this host's
 * public router, with no socket, through the same routing, auth and
 * handler code as a network request (a route's own body limit applies,
 * the listener's http.max_body does not), and the answer comes back
 * as a notifd_http_resp.  Both the handler and the caller's callback run
 * from their own loop callbacks, never nested inside nd_http_call or
 * inside the handler's respond call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"
#include "http/client_internal.h"
#include "log/log.h"

typedef struct local_resp {
  char *body;
  size_t len;
  nd_buf hdrs;
} local_resp;

/* The answer is kept on the call until its completion callback runs. */
typedef struct local_call {
  nd_httpc_call base;   /* first */
  local_resp resp;
} local_call;

static void on_step(evutil_socket_t fd, short what, void *arg);
static void on_timeout(evutil_socket_t fd, short what, void *arg);

static void local_free(local_call *lc) {
  event_del(&lc->base.step_ev);
  event_del(&lc->base.timeout_ev);
  free(lc->resp.body);
  nd_buf_free(&lc->resp.hdrs);
  free(lc);
}

static void detach_req(nd_httpc_call *call) {
  notifd_req *r = call->req;
  call->req = NULL;
  if (!r) return;
  if (!call->started) {
    nd_req_free(r); /* no handler has seen it */
    return;
  }
  /* The handler keeps it and may still answer: that answer is dropped. */
  nd_req_detach(r);
  r->metrics = NULL; /* they belong to the client, which may go first */
}

void nd_httpc_local_cancel(nd_httpc_call *call) {
  detach_req(call);
  local_free((local_call *)call);
}

static int add_hdr(nd_buf *b, const char *name, const char *value) {
  if (nd_buf_puts(b, name) < 0 || nd_buf_append(b, "", 1) < 0 || nd_buf_puts(b, value) < 0 ||
      nd_buf_append(b, "", 1) < 0)
    return -1;
  return 0;
}

/* The handler's answer (nd_respond* -> here). */
static void local_deliver(void *sink, notifd_req *r, nd_resp_view *v) {
  local_call *lc = sink;
  nd_httpc_call *call = &lc->base;
  call->req = NULL;
  call->answered = 1;
  call->status = v->status;
  local_resp *out = &lc->resp;
  int bodyless = r->method == ND_M_HEAD || v->status == 204 || v->status == 304;
  int ok = 1;
  if (v->content_type) ok &= add_hdr(&out->hdrs, "Content-Type", v->content_type) == 0;
  for (size_t i = 0; i < v->extra_len;) {
    const char *line = v->extra + i;
    const char *nl = memchr(line, '\n', v->extra_len - i);
    size_t n = nl ? (size_t)(nl - line) + 1 : v->extra_len - i;
    ok &= nd_hdr_block_add_line(&out->hdrs, line, n) == 0;
    i += n;
  }
  char cl[32];
  snprintf(cl, sizeof cl, "%zu", v->len);
  if (v->status != 204 && v->status != 304) ok &= add_hdr(&out->hdrs, "Content-Length", cl) == 0;
  if (!bodyless && v->len) {
    if (v->body_heap && v->body == v->body_heap) {
      out->body = v->body_heap; /* take it: no copy */
      v->body_heap = NULL;
    } else if ((out->body = malloc(v->len + 1))) {
      memcpy(out->body, v->body, v->len);
      out->body[v->len] = '\0';
    } else {
      ok = 0;
    }
    out->len = out->body ? v->len : 0;
  }
  if (!ok) {
    ND_WARN("http", "out of memory keeping a local answer");
    call->status = NOTIFD_ENOMEM;
  }
  /* Complete from a fresh loop callback. */
  event_active(&call->step_ev, EV_TIMEOUT, 1);
}

static void complete(local_call *lc) {
  nd_httpc_call *call = &lc->base;
  nd_httpc *c = call->c;
  event_del(&call->timeout_ev);
  nd_httpc_unlink(c, call);
  if (call->status < 0) {
    nd_httpc_run_cb(c, call, call->status, NULL);
  } else {
    notifd_http_resp resp = {call->status, lc->resp.body ? lc->resp.body : "", lc->resp.len,
                             lc->resp.hdrs.data, lc->resp.hdrs.len};
    nd_httpc_run_cb(c, call, call->status, &resp);
  }
  local_free(lc);
}

static void start(local_call *lc) {
  nd_httpc_call *call = &lc->base;
  notifd_req *r = call->req;
  call->started = 1;
  notifd_host *h = call->c->host;
  char allow[96];
  int rc = nd_router_match(h->router, nd_method_name(r->method), r->path, &r->match, allow,
                           sizeof allow);
  if (rc) {
    nd_req_answer_routing(r, rc, allow);
    return;
  }
  r->route = r->match.route;
  r->route_label = r->route->pattern;
  const char *why;
  if (!nd_req_auth_ok(r, &why)) {
    nd_respond_error(r, 401, why);
    return;
  }
  /* http.max_body guards the listener against what strangers send; a
   * local call's body was made in this process and is already in memory,
   * so only a limit the route itself declares applies. */
  if (r->route->max_body && r->body_len > r->route->max_body) {
    nd_respond_error(r, 413, "request body too large");
    return;
  }
  nd_req_run_handler(r);
}

static void on_step(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  local_call *lc = arg;
  if (lc->base.answered)
    complete(lc);
  else if (lc->base.req)
    start(lc);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  local_call *lc = arg;
  nd_httpc_call *call = &lc->base;
  if (call->answered) {
    complete(lc); /* answered in this very loop turn: deliver it */
    return;
  }
  detach_req(call);
  call->status = NOTIFD_ETIMEDOUT;
  event_del(&call->step_ev);
  nd_httpc_unlink(call->c, call);
  nd_httpc_run_cb(call->c, call, NOTIFD_ETIMEDOUT, NULL);
  local_free(lc);
}

static int has_header(const char *const *hdrs, const char *name) {
  size_t nl = strlen(name);
  for (size_t i = 0; hdrs && hdrs[i]; i++)
    if (strncasecmp(hdrs[i], name, nl) == 0 && hdrs[i][nl] == ':') return 1;
  return 0;
}

/* Builds the request: path, query and headers in one owned block, with
 * the headers a network call would carry (Content-Length, the JSON
 * Content-Type default); internal auth is the internal_local flag, not a
 * token header. */
static notifd_req *build_req(nd_httpc *c, const notifd_http_client_req *q, int method) {
  const char *target = q->url + 6;
  int default_ct = q->body_len && !has_header(q->headers, "Content-Type");
  size_t nh = 1 + (default_ct ? 1 : 0);
  for (size_t i = 0; q->headers && q->headers[i]; i++) nh++;
  nd_buf b;
  nd_buf_init(&b);
  const char *qm = strchr(target, '?');
  size_t pathlen = qm ? (size_t)(qm - target) : strlen(target);
  nd_buf_append(&b, target, pathlen);
  nd_buf_append(&b, "", 1);
  if (qm) nd_buf_append(&b, qm + 1, strlen(qm + 1) + 1);
  for (size_t i = 0; q->headers && q->headers[i]; i++)
    if (nd_hdr_block_add_line(&b, q->headers[i], strlen(q->headers[i])) < 0) {
      nd_buf_free(&b);
      return NULL;
    }
  if (default_ct) add_hdr(&b, "Content-Type", "application/json");
  char cl[32];
  snprintf(cl, sizeof cl, "%zu", q->body_len);
  add_hdr(&b, "Content-Length", cl);
  if (b.oom) {
    nd_buf_free(&b);
    return NULL;
  }
  size_t blen = 0;
  char *block = nd_buf_steal(&b, &blen);
  notifd_req *r = block ? nd_req_alloc(nh, 0) : NULL;
  if (!r) {
    free(block);
    return NULL;
  }
  r->head = block;
  r->head_heap = 1;
  r->method = method;
  r->minor = 1;
  r->path = block;
  size_t off = pathlen + 1;
  if (qm) {
    r->query = block + off;
    off += strlen(r->query) + 1;
  }
  while (off < blen && r->nhdrs < nh) {
    nd_header *hd = &r->hdrs[r->nhdrs++];
    hd->name = block + off;
    off += strlen(hd->name) + 1;
    hd->value = block + off;
    off += strlen(hd->value) + 1;
  }
  if (q->body_len) {
    if (!(r->body = malloc(q->body_len + 1))) {
      nd_req_free(r);
      return NULL;
    }
    memcpy(r->body, q->body, q->body_len);
    r->body[q->body_len] = '\0';
    r->body_len = q->body_len;
  }
  r->host = c->host;
  r->metrics = &c->metrics;
  return r;
}

int nd_httpc_local_start(nd_httpc *c, const notifd_http_client_req *q, int method,
                         int64_t timeout_ms, notifd_http_client_cb cb,
                         void *ud) {
  const char *target = q->url + 6;
  if (*target != '/' || strchr(target, '#')) return NOTIFD_EINVAL;
  for (const char *p = target; *p; p++)
    if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) return NOTIFD_EINVAL;
  if (!c->host->router) return NOTIFD_ENOENT;
  local_call *lc = calloc(1, sizeof *lc);
  if (!lc) return NOTIFD_ENOMEM;
  nd_httpc_call *call = &lc->base;
  nd_buf_init(&lc->resp.hdrs);
  call->local = 1;
  call->cb = cb;
  call->ud = ud;
  call->req = build_req(c, q, method);
  if (!call->req) {
    free(lc);
    return NOTIFD_ENOMEM;
  }
  call->req->internal_local = q->internal_auth != 0;
  call->req->deliver = local_deliver;
  call->req->sink = lc;
  event_assign(&call->step_ev, c->base, -1, 0, on_step, lc);
  evtimer_assign(&call->timeout_ev, c->base, on_timeout, lc);
  struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)((timeout_ms % 1000) * 1000)};
  if (evtimer_add(&call->timeout_ev, &tv) < 0) {
    nd_req_free(call->req);
    free(lc);
    return NOTIFD_EBACKEND;
  }
  event_active(&call->step_ev, EV_TIMEOUT, 1);
  nd_httpc_link(c, call);
  return 0;
}
