/* Limits that hold against anonymous clients, for the public and admin
 * servers: connections per peer address (with trusted proxies), the first
 * byte of a new connection (http.idle_timeout, armed by conn.c), the
 * websocket handshake deadline, the total of unfinished request bodies,
 * writes per user (token bucket), CORS, and browser origin checks shared
 * with the websocket handshake.  conn.c calls in at the points named in
 * server_internal.h; the state lives in the server and the connection. */
#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/server_internal.h"
#include "log/log.h"
#include "util/ipcount.h"
#include "util/ratelimit.h"
#include "ws/ws.h"

#define DEFAULT_IDLE_MS 10000
#define DEFAULT_HANDSHAKE_MS 10000
#define DEFAULT_PENDING_BODY (64u * 1024 * 1024)
#define DEFAULT_BURST 100
#define RATE_MAX_KEYS 65536           /* users tracked at once (LRU beyond) */
#define CORS_MAX_AGE "600"
#define FIRST_LINE_MAX 1024           /* channel paths are shorter */

static const char *const default_trusted[] = {"127.0.0.1", "::1", NULL};

int nd_http_limits_init(nd_http_server *s) {
  const nd_config *cfg = &s->host->cfg;
  int64_t idle = cfg->http_idle_timeout_ms > 0 ? cfg->http_idle_timeout_ms : DEFAULT_IDLE_MS;
  s->idle_raw.tv_sec = (time_t)(idle / 1000);
  s->idle_raw.tv_usec = (suseconds_t)(idle % 1000 * 1000);
  s->tv_idle = event_base_init_common_timeout(s->base, &s->idle_raw);
  if (!s->tv_idle) s->tv_idle = &s->idle_raw;
  s->ws_handshake_ms =
      cfg->ws_handshake_timeout_ms > 0 ? cfg->ws_handshake_timeout_ms : DEFAULT_HANDSHAKE_MS;
  s->max_pending_body = cfg->http_max_pending_body ? cfg->http_max_pending_body
                                                   : DEFAULT_PENDING_BODY;
  const char *const *trusted = cfg->http_trusted_proxies
                                   ? (const char *const *)cfg->http_trusted_proxies
                                   : default_trusted;
  s->ipc = nd_ipcount_new(cfg->http_max_conns_per_ip, trusted);
  if (!s->ipc) return -1;
  if (cfg->http_rate > 0) {
    s->rl = nd_ratelimit_new(cfg->http_rate, cfg->http_rate_burst ? cfg->http_rate_burst
                                                                  : DEFAULT_BURST,
                             RATE_MAX_KEYS);
    if (!s->rl) return -1;
  }
  return 0;
}

void nd_http_limits_free(nd_http_server *s) {
  nd_ipcount_free(s->ipc); /* websockets may still hold entries */
  s->ipc = NULL;
  nd_ratelimit_free(s->rl);
  s->rl = NULL;
}

/* ---- peers ------------------------------------------------------------- */
int nd_http_limits_accept(nd_http_server *s, const struct sockaddr *sa, struct nd_ipent **peer) {
  int over = 0;
  *peer = nd_ipcount_acquire(s->ipc, sa, &over);
  return over ? -1 : 0; /* untracked (no memory) is not a reason to refuse */
}

void nd_http_limits_conn_gone(nd_conn *c) {
  nd_http_body_release(c);
  nd_ipcount_release(c->peer);
  c->peer = NULL;
}

struct nd_ipent *nd_req_peer(notifd_req *r) { return r ? r->peer : NULL; }

/* The last entry of the last X-Forwarded-For header: what the proxy next
 * to us saw (entries before it are the client's own claims). */
static int forwarded_for(notifd_req *r, char *buf, size_t len) {
  const char *xff = NULL;
  for (size_t i = 0; i < r->nhdrs; i++)
    if (strcasecmp(r->hdrs[i].name, "X-Forwarded-For") == 0) xff = r->hdrs[i].value;
  if (!xff) return -1;
  const char *s = strrchr(xff, ',');
  s = s ? s + 1 : xff;
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strcspn(s, " \t");
  if (n == 0 || n >= len) return -1;
  memcpy(buf, s, n);
  buf[n] = '\0';
  return nd_ip_valid(buf) ? 0 : -1;
}

int nd_req_client_addr(notifd_req *r, char *buf, size_t len) {
  if (!r || !r->peer || !buf || !len) return -1;
  if (nd_ipent_trusted(r->peer) && forwarded_for(r, buf, len) == 0) return 0;
  nd_ipent_text(r->peer, buf, len);
  return buf[0] ? 0 : -1;
}

/* ---- websocket handshake deadline -------------------------------------- */
void nd_http_limits_first_line(nd_conn *c, size_t line_len) {
  nd_http_server *s = c->srv;
  if (s->is_admin || !s->host || !s->host->ws || line_len < 6) return;
  char line[FIRST_LINE_MAX];
  size_t k = line_len < sizeof line - 1 ? line_len : sizeof line - 1;
  if (evbuffer_copyout(c->in, line, k) != (ev_ssize_t)k || memcmp(line, "GET /", 5) != 0) return;
  line[k] = '\0';
  char *path = line + 4;
  size_t plen = strcspn(path, " ?#");
  if (!path[plen]) return; /* cut off: longer than any channel path */
  path[plen] = '\0';
  if (!nd_ws_channel_find(s->host->ws, path)) return;
  int64_t left = s->ws_handshake_ms - (nd_now_ms() - c->head_ms);
  if (left < 1) left = 1;
  struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000 * 1000)};
  event_del(&c->tev);
  event_add(&c->tev, &tv);
}

/* ---- unfinished bodies -------------------------------------------------- */
/* Memory held for the body being read: Content-Length bytes waiting in the
 * input, or the chunked body's buffer (reserved per declared chunk) plus
 * undecoded input. */
static uint64_t body_bytes(const nd_conn *c) {
  uint64_t in = evbuffer_get_length(c->in);
  if (c->state == CONN_BODY_CL) return in < c->body_need ? in : c->body_need;
  if (c->state == CONN_BODY_CHUNKED) return (uint64_t)c->cbody.cap + in;
  return 0;
}

static void pending_add(nd_http_server *s, int64_t delta) {
  s->pending_body = (uint64_t)((int64_t)s->pending_body + delta);
  nd_metric_add(s->metrics.pending_body, NULL, (double)delta);
}

void nd_http_body_release(nd_conn *c) {
  if (!c->body_held) return;
  pending_add(c->srv, -(int64_t)c->body_held);
  c->body_held = 0;
}

int nd_http_body_account(nd_conn *c) {
  nd_http_server *s = c->srv;
  uint64_t now = body_bytes(c);
  if (now > c->body_held && s->pending_body - c->body_held + now > s->max_pending_body) {
    ND_WARN("http", "unfinished request bodies would hold more than %llu bytes: refusing one "
                    "(http.max_pending_body_bytes)",
            (unsigned long long)s->max_pending_body);
    nd_http_body_release(c);
    nd_buf_free(&c->cbody);
    c->must_close = 1;
    nd_respond_error(c->req, 503, "server busy: too many unfinished request bodies");
    return -1;
  }
  pending_add(s, (int64_t)now - (int64_t)c->body_held);
  c->body_held = now;
  return 0;
}

/* ---- writes per user ---------------------------------------------------- */
int nd_http_rate_limited(nd_http_server *s, notifd_req *r) {
  if (!s->rl || !r->auth_subject) return 0;
  if (r->method != ND_M_POST && r->method != ND_M_PUT && r->method != ND_M_PATCH &&
      r->method != ND_M_DELETE)
    return 0;
  int64_t wait = 0;
  if (nd_ratelimit_take(s->rl, r->auth_subject, nd_now_ms(), &wait)) return 0;
  char secs[24];
  snprintf(secs, sizeof secs, "%lld", (long long)((wait + 999) / 1000));
  nd_resp_header(r, "Retry-After", secs);
  nd_respond_error(r, 429, "rate limit exceeded");
  return 1;
}

/* ---- origins and CORS --------------------------------------------------- */
int nd_origin_listed(char *const *list, const char *origin) {
  for (size_t i = 0; list && origin && list[i]; i++)
    if (strcmp(list[i], "*") == 0 || strcasecmp(list[i], origin) == 0) return 1;
  return 0;
}

int nd_origin_same_host(const char *origin, const char *host) {
  if (!origin || !host) return 0;
  const char *sep = strstr(origin, "://");
  if (!sep) return 0; /* "null" and other opaque origins */
  const char *auth = sep + 3;
  size_t n = strcspn(auth, "/?#");
  while (*host == ' ' || *host == '\t') host++;
  size_t hn = strlen(host);
  while (hn && (host[hn - 1] == ' ' || host[hn - 1] == '\t')) hn--;
  return n && n == hn && strncasecmp(auth, host, n) == 0;
}

int nd_http_cors(nd_http_server *s, notifd_req *r, int mrc, const char *allow) {
  char **list = s->host ? s->host->cfg.http_cors_origins : NULL;
  if (!list || s->is_admin) return 0;
  const char *origin = nd_req_header(r, "Origin");
  if (!origin) return 0;
  nd_resp_header(r, "Vary", "Origin"); /* answers differ by Origin: caches must know */
  if (!nd_origin_listed(list, origin)) return 0;
  nd_resp_header(r, "Access-Control-Allow-Origin", origin);
  /* A preflight for a path routed for other methods (an OPTIONS route of
   * a plugin answers for itself). */
  if (r->method != ND_M_OPTIONS || mrc != 405 || !allow || !*allow ||
      !nd_req_header(r, "Access-Control-Request-Method"))
    return 0;
  nd_resp_header(r, "Access-Control-Allow-Methods", allow);
  /* Not X-Notifd-Internal-Token: service calls never come from pages. */
  nd_resp_header(r, "Access-Control-Allow-Headers", "Authorization, Content-Type");
  nd_resp_header(r, "Access-Control-Max-Age", CORS_MAX_AGE);
  nd_respond(r, 204, NULL, NULL, 0);
  return 1;
}
