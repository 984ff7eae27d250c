/* The websocket opening handshake (RFC 6455 section 4.2) on top of a
 * request parsed by the HTTP server: protocol checks, the channel's
 * parameters, Origin allow-list, auth policy, connection limits and the
 * plugin's on_upgrade, then the 101 answer and the hand-over of the
 * bufferevent.
 *
 * The time allowed to send the upgrade request (ws.handshake_timeout) is
 * enforced by the HTTP server while it reads the request (http/limits.c);
 * once the 101 is written the connection is governed by the heartbeat. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"
#include "http/http.h"
#include "http/tls.h"
#include "log/access.h"
#include "log/log.h"
#include "util/buf.h"
#include "ws/ws_internal.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define MAX_PARAMS 32

/* The next element of a comma-separated header value, trimmed: its start
 * and length; *v moves past it.  NULL at the end. */
static const char *next_element(const char **v, size_t *len) {
  const char *p = *v;
  while (*p == ' ' || *p == '\t' || *p == ',') p++;
  if (!*p) return NULL;
  const char *s = p;
  while (*p && *p != ',') p++;
  const char *e = p;
  while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
  *v = p;
  *len = (size_t)(e - s);
  return s;
}

/* 1 if the comma-separated header value lists `token` (case-insensitive). */
static int header_has_token(const char *v, const char *token) {
  size_t tl = strlen(token), n;
  for (const char *s; v && (s = next_element(&v, &n));)
    if (n == tl && strncasecmp(s, token, tl) == 0) return 1;
  return 0;
}

static int b64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

/* Sec-WebSocket-Key must be base64 of 16 bytes: 22 characters and "==". */
static int key_valid(const char *k, size_t n) {
  if (n != 24 || k[22] != '=' || k[23] != '=') return 0;
  for (size_t i = 0; i < 22; i++)
    if (!b64_char(k[i])) return 0;
  return 1;
}

/* Sec-WebSocket-Accept for a key (28 characters + NUL). */
static int accept_value(const char *key, size_t n, char out[29]) {
  char buf[24 + sizeof WS_GUID];
  memcpy(buf, key, n);
  memcpy(buf + n, WS_GUID, sizeof WS_GUID - 1);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (!EVP_Digest(buf, n + sizeof WS_GUID - 1, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
    return -1;
  return EVP_EncodeBlock((unsigned char *)out, md, 20) == 28 ? 0 : -1;
}

/* Browsers send Origin with every websocket upgrade, and a page of
 * another site must not open a socket with the user's credentials: same
 * origin as the Host header, or a listed one.  A client without Origin is
 * not a browser page (and could claim any origin anyway). */
static int origin_allowed(const nd_config *cfg, notifd_req *req) {
  const char *origin = nd_req_header(req, "Origin");
  if (!origin) return 1;
  return nd_origin_same_host(origin, nd_req_header(req, "Host")) ||
         nd_origin_listed(cfg->ws_allowed_origins, origin);
}

/* The i-th stored parameter value of a connection. */
static const char *param_at(const notifd_ws_conn *c, size_t i) {
  const char *v = c->params;
  while (i--) v += strlen(v) + 1;
  return v;
}

/* Connections counted against max_connections_per_key: every one under
 * the key for an anonymous client; for an authenticated one only those
 * authenticated as the same subject, so one participant of a shared key
 * cannot lock the other out. */
static uint32_t key_load(notifd_ws_channel *ch, const char *key, const char *sub) {
  nd_ws_keyent *e = nd_ws_keymap_find(&ch->keys, key);
  if (!e || !sub) return e ? e->count : 0;
  uint32_t n = 0;
  for (notifd_ws_conn *c = e->head; c; c = c->knext)
    if (c->subj && strcmp(param_at(c, c->subj - 1u), sub) == 0) n++;
  return n;
}

/* 1 + the index of the subject parameter whose value is `sub`, or 0. */
static uint8_t subject_param(const notifd_ws_channel *ch, const char *const *values,
                             const char *sub) {
  for (size_t i = 0; sub && i < ch->nsubjects; i++) {
    size_t k = ch->subject_idx[i];
    if (k < UINT8_MAX && values[k] && strcmp(values[k], sub) == 0) return (uint8_t)(k + 1);
  }
  return 0;
}

/* 1 + the index in the channel's list of the first subprotocol the client
 * offers (Sec-WebSocket-Protocol: a, b, c; the header may repeat, which
 * the request keeps as one comma-joined value or the first line), or 0. */
static uint8_t negotiate(const notifd_ws_channel *ch, const char *offer) {
  if (!ch->subprotocols) return 0;
  size_t n;
  for (const char *s; offer && (s = next_element(&offer, &n));)
    for (size_t i = 0; ch->subprotocols[i] && i < UINT8_MAX - 1; i++)
      if (strlen(ch->subprotocols[i]) == n && memcmp(ch->subprotocols[i], s, n) == 0)
        return (uint8_t)(i + 1);
  return 0;
}

static int refuse(notifd_ws_channel *ch, const char *reason_label, int status, const char *why,
                  const char **msg) {
  nd_ws_metric_reject(ch, reason_label);
  ND_INFO("ws", "upgrade on %s refused: %d %s", ch->path, status, why);
  *msg = why;
  return status;
}

/* Gives the connection its socket with the 101 queued: on the main loop
 * the HTTP layer's bufferevent as it is; for an I/O thread the socket and
 * copies of the bufferevent's buffers, the bufferevent freed here (the
 * loop makes its own on its base).  0, or -1 with `bev` untouched (the
 * HTTP layer answers the refusal on it). */
static int hand_over(notifd_ws_conn *c, struct bufferevent *bev, const char *resp, size_t n) {
  if (!c->loop->threaded) {
    if (bufferevent_write(bev, resp, n) < 0) return -1;
    nd_ws_io_begin(c, bev);
    nd_ws_conn_kick(c);
    return 0;
  }
  struct evbuffer *bin = bufferevent_get_input(bev), *bout = bufferevent_get_output(bev);
  struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
  int fd = bufferevent_getfd(bev), rc = -1;
  if (!in || !out || fd < 0) goto done;
  /* A socket bufferevent keeps its input's end and its output's start
   * frozen (only it may touch them): thaw for the move. */
  evbuffer_unfreeze(bin, 0);
  evbuffer_unfreeze(bout, 1);
  if (evbuffer_add_buffer(in, bin) == 0 && evbuffer_add_buffer(out, bout) == 0) {
    if (evbuffer_add(out, resp, n) == 0) {
      if (nd_ws_to_io_start(c, fd, in, out) == 0) rc = 0;
      else evbuffer_remove_buffer(out, bout, evbuffer_get_length(out) - n);
    } else {
      evbuffer_add_buffer(bout, out);
    }
  }
  if (rc < 0) evbuffer_add_buffer(bin, in); /* both as they were */
  evbuffer_freeze(bin, 0);
  evbuffer_freeze(bout, 1);
  if (rc == 0) {
    bufferevent_setfd(bev, -1); /* the socket is the loop's now */
    bufferevent_free(bev);
    return 0;
  }
done:
  if (in) evbuffer_free(in);
  if (out) evbuffer_free(out);
  return -1;
}

int nd_ws_upgrade(notifd_ws_channel *ch, notifd_req *req, struct bufferevent *bev,
                  const char **msg) {
  static const char *dummy;
  if (!msg) msg = &dummy;
  *msg = NULL;
  if (!ch || !req || !bev) {
    *msg = "internal error";
    return 500;
  }
  nd_ws_hub *hub = ch->hub;
  const nd_config *cfg = &hub->host->cfg;

  /* -- protocol -- */
  const char *method = nd_req_method(req);
  if (!method || strcmp(method, "GET") != 0)
    return refuse(ch, "bad_request", 400, "websocket upgrade requires GET", msg);
  if (!header_has_token(nd_req_header(req, "Upgrade"), "websocket") ||
      !header_has_token(nd_req_header(req, "Connection"), "upgrade"))
    return refuse(ch, "bad_request", 400,
                  "websocket upgrade required (Upgrade: websocket, Connection: Upgrade)", msg);
  const char *ver = nd_req_header(req, "Sec-WebSocket-Version");
  if (!ver || strcmp(ver, "13") != 0) {
    nd_resp_header(req, "Sec-WebSocket-Version", "13");
    return refuse(ch, "version", 426, "unsupported websocket version (need 13)", msg);
  }
  const char *key = nd_req_header(req, "Sec-WebSocket-Key");
  while (key && (*key == ' ' || *key == '\t')) key++;
  size_t keylen = key ? strlen(key) : 0;
  while (keylen && (key[keylen - 1] == ' ' || key[keylen - 1] == '\t')) keylen--;
  if (!key || !key_valid(key, keylen))
    return refuse(ch, "bad_request", 400, "missing or invalid Sec-WebSocket-Key", msg);

  /* -- the channel's parameters -- */
  const char *values[MAX_PARAMS];
  if (ch->nparams > MAX_PARAMS) return refuse(ch, "params", 500, "too many channel parameters", msg);
  for (size_t i = 0; i < ch->nparams; i++) {
    values[i] = nd_req_query(req, ch->param_names[i]);
    if (i < ch->nrequired && (!values[i] || !*values[i]))
      return refuse(ch, "params", 400, ch->missing_msgs[i], msg);
  }

  /* -- origin, auth -- */
  if (!origin_allowed(cfg, req))
    return refuse(ch, "origin", 403, "origin not allowed", msg);
  if (ch->auth != NOTIFD_AUTH_NONE) {
    const char *subjects[MAX_PARAMS + 1];
    size_t ns = 0;
    for (size_t i = 0; i < ch->nsubjects; i++) {
      const char *v = values[ch->subject_idx[i]];
      if (v && *v) subjects[ns++] = v;
    }
    subjects[ns] = NULL;
    const char *why = NULL;
    int st = nd_auth_check(hub->host, ch->auth, req, subjects, &why);
    if (st != 0) return refuse(ch, "auth", st == 403 ? 403 : 401, why ? why : "unauthorized", msg);
  }

  /* -- limits -- */
  if (hub->shutting_down) return refuse(ch, "shutdown", 503, "server shutting down", msg);
  if (cfg->ws_max_connections && hub->nconns >= cfg->ws_max_connections) {
    ND_WARN("ws", "websocket connection limit (%u) reached on %s", cfg->ws_max_connections,
            ch->path);
    return refuse(ch, "limit_total", 503, "too many websocket connections", msg);
  }
  uint8_t subj = subject_param(ch, values, nd_req_auth_subject(req));
  if (cfg->ws_max_per_key &&
      key_load(ch, values[0], subj ? values[subj - 1] : NULL) >= cfg->ws_max_per_key)
    return refuse(ch, "limit_key", 429, "too many connections for this key", msg);

  /* -- the plugin's own check -- */
  if (ch->on_upgrade) {
    const char *reason = NULL;
    int32_t st = ch->on_upgrade(req, &reason, ch->ud);
    if (st != 0) {
      if (st < 400 || st > 599) st = 403;
      /* The plugin's reason only lives until its callback returned. */
      snprintf(hub->msg, sizeof hub->msg, "%s", reason ? reason : "upgrade refused");
      return refuse(ch, "plugin", st, hub->msg, msg);
    }
  }

  /* -- accept -- */
  char accept[29];
  if (accept_value(key, keylen, accept) < 0)
    return refuse(ch, "internal", 500, "cannot compute Sec-WebSocket-Accept", msg);
  notifd_ws_conn *c = nd_ws_conn_new(ch, values);
  if (!c) return refuse(ch, "internal", 500, "out of memory", msg);
  c->loop = nd_ws_loop_pick(hub, nd_tls_bev_is_tls(bev));
  c->subj = subj;
  c->proto = negotiate(ch, nd_req_header(req, "Sec-WebSocket-Protocol"));
  if (nd_ws_conn_register(c) < 0) {
    c->loop->nassigned--;
    nd_ws_conn_discard(c);
    return refuse(ch, "internal", 500, "out of memory", msg);
  }
  char resp[256];
  const char *proto = nd_ws_conn_subprotocol(c);
  int n = snprintf(resp, sizeof resp,
                   "HTTP/1.1 101 Switching Protocols\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
                   accept, proto ? "Sec-WebSocket-Protocol: " : "", proto ? proto : "",
                   proto ? "\r\n" : "");
  if (n < 0 || (size_t)n >= sizeof resp || hand_over(c, bev, resp, (size_t)n) < 0) {
    nd_ws_conn_detach(c, ND_WS_CLOSE_ABNORMAL, 0);
    nd_ws_hub_unlink(hub, c);
    c->loop->nassigned--;
    nd_ws_conn_discard(c);
    return refuse(ch, "internal", 500, "out of memory", msg);
  }
  /* From here on the socket is the websocket layer's, whatever happens. */
  c->peer = nd_req_peer(req); /* the HTTP connection hands its count over */
  ND_DEBUG("ws", "open %s key=%s", ch->path, c->params);
  c->open_ms = nd_now_ms();
  if (cfg->log_access) {
    char addr[64];
    if (nd_req_client_addr(req, addr, sizeof addr) < 0) addr[0] = '\0';
    nd_access_ws_open(ch->path, c->params, nd_req_auth_subject(req), addr[0] ? addr : NULL,
                      proto);
  }
  c->opened = 1;
  if (ch->on_open) ch->on_open(c, ch->ud);
  /* Bytes the client sent right after its request are parsed on the next
   * loop turn, once the HTTP layer has let go of the bufferevent. */
  if (!nd_ws_remote(c) && c->state != ND_WS_DEAD &&
      evbuffer_get_length(bufferevent_get_input(bev)) > 0)
    bufferevent_trigger(bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
  return 0;
}
