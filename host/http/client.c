/* Outgoing HTTP calls with libcurl's multi interface driven by the libevent
 * loop (curl_multi_socket_action with socket and timer callbacks).  Idle
 * connections stay in the multi handle's cache and are reused; easy
 * handles are pooled.  "local:" URLs are dispatched in-process
 * (client_local.c). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"
#include "http/client_internal.h"
#include "log/log.h"

#define DEFAULT_TIMEOUT_MS 2000
#define MAX_RESPONSE (16u * 1024 * 1024)
#define MAX_CACHED_CONNS 128

static void check_done(nd_httpc *c);

/* ---- libcurl <-> libevent glue ------------------------------------------ */
static void on_socket_event(evutil_socket_t fd, short what, void *arg) {
  nd_httpc *c = arg;
  int flags = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
  int running = 0;
  curl_multi_socket_action(c->multi, fd, flags, &running);
  check_done(c);
}

static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
  (void)easy;
  nd_httpc *c = userp;
  struct event *ev = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (ev) event_free(ev);
    return 0;
  }
  short kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
               ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
  if (!ev) {
    ev = event_new(c->base, s, kind, on_socket_event, c);
    if (!ev) return -1;
    curl_multi_assign(c->multi, s, ev);
  } else {
    event_del(ev);
    event_assign(ev, c->base, s, kind, on_socket_event, c);
  }
  return event_add(ev, NULL) == 0 ? 0 : -1;
}

static void on_timeout(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  nd_httpc *c = arg;
  int running = 0;
  curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(c);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
  (void)multi;
  nd_httpc *c = userp;
  if (timeout_ms < 0) {
    evtimer_del(c->timer);
    return 0;
  }
  struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)((timeout_ms % 1000) * 1000)};
  return evtimer_add(c->timer, &tv) == 0 ? 0 : -1;
}

/* ---- client object ------------------------------------------------------ */
nd_httpc *nd_httpc_new(notifd_host *h) {
  if (!h || !h->base) return NULL;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return NULL;
  nd_httpc *c = calloc(1, sizeof *c);
  if (!c) goto fail;
  c->host = h;
  c->base = h->base;
  c->multi = curl_multi_init();
  c->timer = evtimer_new(h->base, on_timeout, c);
  if (!c->multi || !c->timer) goto fail;
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)MAX_CACHED_CONNS);
  nd_http_metrics_init(&c->metrics, h->metrics);
  return c;
fail:
  if (c) {
    if (c->multi) curl_multi_cleanup(c->multi);
    if (c->timer) event_free(c->timer);
    free(c);
  }
  curl_global_cleanup();
  return NULL;
}

void nd_httpc_link(nd_httpc *c, nd_httpc_call *call) {
  call->c = c;
  call->prev = NULL;
  call->next = c->calls;
  if (c->calls) c->calls->prev = call;
  c->calls = call;
  c->ncalls++;
}

void nd_httpc_unlink(nd_httpc *c, nd_httpc_call *call) {
  if (call->prev)
    call->prev->next = call->next;
  else if (c->calls == call)
    c->calls = call->next;
  if (call->next) call->next->prev = call->prev;
  call->prev = call->next = NULL;
  c->ncalls--;
}

static void really_free(nd_httpc *c) {
  /* Cleanup closes cached connections and may call the socket callback
   * (CURL_POLL_REMOVE) for them, so the events go after it. */
  curl_multi_cleanup(c->multi);
  for (size_t i = 0; i < c->npool; i++) curl_easy_cleanup(c->pool[i]);
  event_free(c->timer);
  free(c);
  curl_global_cleanup();
}

static void curl_call_free(nd_httpc *c, nd_httpc_call *call) {
  if (call->easy) {
    if (c && c->npool < ND_HTTPC_POOL && !c->closing) {
      curl_easy_reset(call->easy);
      c->pool[c->npool++] = call->easy;
    } else {
      curl_easy_cleanup(call->easy);
    }
  }
  curl_slist_free_all(call->hdrs);
  nd_buf_free(&call->body);
  nd_buf_free(&call->rhdrs);
  free(call);
}

void nd_httpc_free(nd_httpc *c) {
  if (!c || c->closing) return;
  c->closing = 1;
  /* Cancel every call without calling back. */
  while (c->calls) {
    nd_httpc_call *call = c->calls;
    nd_httpc_unlink(c, call);
    if (call->local) {
      nd_httpc_local_cancel(call);
    } else {
      curl_multi_remove_handle(c->multi, call->easy);
      curl_call_free(c, call);
    }
  }
  if (c->busy == 0) really_free(c);
}

size_t nd_httpc_inflight(const nd_httpc *c) { return c ? c->ncalls : 0; }

int nd_httpc_run_cb(nd_httpc *c, nd_httpc_call *call, int32_t status, notifd_http_resp *resp) {
  if (!call->cb) return !c->closing;
  c->busy++;
  call->cb(status, resp, call->ud);
  c->busy--;
  if (c->closing) {
    if (c->busy == 0) really_free(c);
    return 0;
  }
  return 1;
}

/* ---- responses ----------------------------------------------------------- */
static size_t on_body(char *p, size_t size, size_t n, void *arg) {
  nd_httpc_call *call = arg;
  size_t len = size * n;
  if (call->body.len + len > MAX_RESPONSE) {
    call->too_big = 1;
    return 0; /* aborts with CURLE_WRITE_ERROR */
  }
  return nd_buf_append(&call->body, p, len) == 0 ? len : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg) {
  nd_httpc_call *call = arg;
  size_t len = size * n;
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    /* A new response head (after 100 Continue or a redirect): restart. */
    nd_buf_free(&call->rhdrs);
    return len;
  }
  if (len <= 2) return len; /* the empty line */
  nd_hdr_block_add_line(&call->rhdrs, p, len);
  return len;
}

static int32_t map_error(CURLcode rc, int too_big) {
  switch (rc) {
  case CURLE_OPERATION_TIMEDOUT: return NOTIFD_ETIMEDOUT;
  case CURLE_COULDNT_CONNECT:
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_GOT_NOTHING:
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR: return NOTIFD_ECLOSED;
  case CURLE_WRITE_ERROR: return too_big ? NOTIFD_ETOOBIG : NOTIFD_ENOMEM;
  case CURLE_OUT_OF_MEMORY: return NOTIFD_ENOMEM;
  default: return NOTIFD_EBACKEND;
  }
}

static void check_done(nd_httpc *c) {
  CURLMsg *m;
  int left;
  while (!c->closing && (m = curl_multi_info_read(c->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL *easy = m->easy_handle;
    CURLcode rc = m->data.result;
    nd_httpc_call *call = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&call);
    curl_multi_remove_handle(c->multi, easy);
    if (!call) continue;
    nd_httpc_unlink(c, call);
    int alive;
    if (rc == CURLE_OK) {
      long code = 0;
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
      notifd_http_resp resp = {(int32_t)code, call->body.data ? call->body.data : "",
                               call->body.len, call->rhdrs.data, call->rhdrs.len};
      alive = nd_httpc_run_cb(c, call, (int32_t)code, &resp);
    } else {
      char *url = NULL;
      curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &url);
      ND_DEBUG("http", "outgoing call to %s failed: %s", url ? url : "?", curl_easy_strerror(rc));
      alive = nd_httpc_run_cb(c, call, map_error(rc, call->too_big), NULL);
    }
    curl_call_free(alive ? c : NULL, call);
    if (!alive) return;
  }
}

/* ---- starting calls ------------------------------------------------------ */
static int header_line_ok(const char *h) {
  const char *colon = strchr(h, ':');
  if (!colon || colon == h) return 0;
  for (const char *p = h; *p; p++)
    if (*p == '\r' || *p == '\n') return 0;
  return 1;
}

static int has_header(const char *const *hdrs, const char *name) {
  size_t nl = strlen(name);
  for (size_t i = 0; hdrs && hdrs[i]; i++)
    if (strncasecmp(hdrs[i], name, nl) == 0 && hdrs[i][nl] == ':') return 1;
  return 0;
}

static int curl_start(nd_httpc *c, const notifd_http_client_req *q, int method,
                      int64_t timeout_ms, const char *token, notifd_http_client_cb cb, void *ud) {
  nd_httpc_call *call = calloc(1, sizeof *call);
  if (!call) return NOTIFD_ENOMEM;
  call->cb = cb;
  call->ud = ud;
  nd_buf_init(&call->body);
  nd_buf_init(&call->rhdrs);
  call->easy = c->npool ? c->pool[--c->npool] : curl_easy_init();
  if (!call->easy) goto oom;

  struct curl_slist *l = NULL, *t;
  for (size_t i = 0; q->headers && q->headers[i]; i++) {
    if (!(t = curl_slist_append(l, q->headers[i]))) goto oom_list;
    l = t;
  }
  /* No 100-continue round trip for bodies; JSON unless told otherwise
   * (curl would say form-urlencoded). */
  if (!(t = curl_slist_append(l, "Expect:"))) goto oom_list;
  l = t;
  if (q->body_len && !has_header(q->headers, "Content-Type")) {
    if (!(t = curl_slist_append(l, "Content-Type: application/json"))) goto oom_list;
    l = t;
  }
  if (token) {
    nd_buf line;
    nd_buf_init(&line);
    nd_buf_printf(&line, "%s: %s", ND_INTERNAL_TOKEN_HEADER, token);
    t = line.data ? curl_slist_append(l, line.data) : NULL;
    nd_buf_free(&line);
    if (!t) goto oom_list;
    l = t;
  }
  call->hdrs = l;

  CURL *e = call->easy;
  curl_easy_setopt(e, CURLOPT_URL, q->url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)call);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, call);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, call->hdrs);
  int send_body = q->body_len > 0 || method == ND_M_POST || method == ND_M_PUT ||
                  method == ND_M_PATCH;
  if (method == ND_M_GET) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else if (method == ND_M_HEAD) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (method != ND_M_POST) {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, nd_method_name(method));
  }
  if (send_body && method != ND_M_GET && method != ND_M_HEAD) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
    if (curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, q->body_len ? (const char *)q->body : "") !=
        CURLE_OK)
      goto oom;
  }
  if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
    curl_call_free(c, call);
    return NOTIFD_EBACKEND;
  }
  nd_httpc_link(c, call);
  return 0;
oom_list:
  curl_slist_free_all(l);
oom:
  curl_call_free(c, call);
  return NOTIFD_ENOMEM;
}

int nd_http_call(notifd_host *h, const notifd_http_client_req *req, notifd_http_client_cb cb,
                 void *ud) {
  if (!h || !req || req->size < offsetof(notifd_http_client_req, body)) return NOTIFD_EINVAL;
  notifd_http_client_req q;
  memset(&q, 0, sizeof q);
  memcpy(&q, req, req->size < sizeof q ? req->size : sizeof q);
  if (!q.url || (q.body_len && !q.body)) return NOTIFD_EINVAL;
  int method = q.method ? nd_method_index(q.method, strlen(q.method)) : ND_M_GET;
  if (method < 0) return NOTIFD_EINVAL;
  for (size_t i = 0; q.headers && q.headers[i]; i++)
    if (!header_line_ok(q.headers[i])) return NOTIFD_EINVAL;
  const char *token = NULL;
  int local = strncmp(q.url, "local:", 6) == 0;
  /* In-process calls carry no token: internal_local marks them trusted. */
  if (q.internal_auth && !local) {
    token = h->cfg.internal_token;
    if (!token || !*token) {
      ND_WARN("http", "call to %s asks for internal auth but auth.internal_token is not set",
              q.url);
      return NOTIFD_EINVAL;
    }
    for (const char *p = token; *p; p++)
      if (*p == '\r' || *p == '\n') return NOTIFD_EINVAL;
  }
  int64_t timeout = q.timeout_ms > 0 ? q.timeout_ms : DEFAULT_TIMEOUT_MS;

  /* The core normally creates the client (nd_host_httpc); doing it here
   * too keeps this area usable without the core. */
  if (!h->httpc) {
    if (h->phase >= ND_PHASE_STOPPING) return NOTIFD_ECLOSED;
    if (!(h->httpc = nd_httpc_new(h))) return NOTIFD_ENOMEM;
  }
  nd_httpc *c = h->httpc;
  if (c->closing) return NOTIFD_ECLOSED;
  if (local)
    return nd_httpc_local_start(c, &q, method, timeout, cb, ud);
  if (strncasecmp(q.url, "http://", 7) != 0 && strncasecmp(q.url, "https://", 8) != 0)
    return NOTIFD_EINVAL;
  return curl_start(c, &q, method, timeout, token, cb, ud);
}

const void *nd_http_resp_body(notifd_http_resp *r, size_t *len) {
  if (len) *len = r ? r->len : 0;
  if (!r) return NULL;
  return r->body ? r->body : "";
}

const char *nd_http_resp_header(notifd_http_resp *r, const char *name) {
  if (!r || !name || !r->hdrs) return NULL;
  return nd_hdr_block_find(r->hdrs, r->hdrs_len, name);
}
