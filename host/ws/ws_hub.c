/* The hub: channels, the list of live connections, deferred on_close and
 * teardown, graceful close of everything, and the layer's metrics. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "util/buf.h"
#include "util/hash.h"
#include "ws/ws_internal.h"

/* ---- metrics ------------------------------------------------------------ */

void nd_ws_metric_add(nd_metric *m, notifd_ws_channel *ch, double v) {
  if (!m) return;
  const char *lv[] = {ch->path};
  nd_metric_add(m, lv, v);
}

void nd_ws_metric_conns(notifd_ws_channel *ch) {
  if (!ch->hub->m_conns) return;
  const char *lv[] = {ch->path};
  nd_metric_set(ch->hub->m_conns, lv, ch->nopen);
}

void nd_ws_metric_reject(notifd_ws_channel *ch, const char *reason) {
  if (!ch->hub->m_rejects) return;
  const char *lv[] = {ch->path, reason};
  nd_metric_add(ch->hub->m_rejects, lv, 1);
}

static void register_metrics(nd_ws_hub *hub) {
  nd_metrics *r = hub->host->metrics;
  if (!r) return;
  static const char *const ch_label[] = {"channel", NULL};
  static const char *const reject_labels[] = {"channel", "reason", NULL};
  static const struct {
    int type;
    const char *name, *help;
    size_t off;
  } defs[] = {
      {ND_METRIC_GAUGE, "notifd_ws_connections", "Open websocket connections.",
       offsetof(nd_ws_hub, m_conns)},
      {ND_METRIC_COUNTER, "notifd_ws_frames_sent_total", "Data frames queued to clients.",
       offsetof(nd_ws_hub, m_frames)},
      {ND_METRIC_COUNTER, "notifd_ws_bytes_sent_total", "Data frame bytes queued to clients.",
       offsetof(nd_ws_hub, m_bytes)},
      {ND_METRIC_COUNTER, "notifd_ws_publishes_total", "Publish calls.",
       offsetof(nd_ws_hub, m_publishes)},
      {ND_METRIC_COUNTER, "notifd_ws_deliveries_total", "Messages queued to a connection by publish.",
       offsetof(nd_ws_hub, m_deliveries)},
      {ND_METRIC_COUNTER, "notifd_ws_delivery_failures_total",
       "Publish deliveries that failed (slow consumer or no memory).",
       offsetof(nd_ws_hub, m_failures)},
      {ND_METRIC_COUNTER, "notifd_ws_slow_consumer_closes_total",
       "Connections closed for exceeding their outbound queue limit.",
       offsetof(nd_ws_hub, m_slow)},
  };
  for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
    nd_metric **slot = (nd_metric **)(void *)((char *)hub + defs[i].off);
    if (nd_metric_register(r, defs[i].type, defs[i].name, defs[i].help, ch_label, NULL, 0, slot) <
        0) {
      ND_WARN("ws", "cannot register metric %s", defs[i].name);
      *slot = NULL;
    }
  }
  if (nd_metric_register(r, ND_METRIC_COUNTER, "notifd_ws_handshake_rejects_total",
                         "Websocket upgrades refused, by reason.", reject_labels, NULL, 0,
                         &hub->m_rejects) < 0) {
    ND_WARN("ws", "cannot register metric notifd_ws_handshake_rejects_total");
    hub->m_rejects = NULL;
  }
}

/* ---- deferred work: on_close and frees ------------------------------- */

static void run_pending(nd_ws_hub *hub) {
  notifd_ws_conn *list = hub->pending;
  hub->pending = hub->pending_tail = NULL;
  while (list) {
    notifd_ws_conn *c = list;
    list = c->pnext;
    c->pnext = NULL;
    c->in_pending = 0;
    if (c->close_pending) {
      c->close_pending = 0;
      notifd_ws_channel *ch = c->ch;
      if (ch->on_close) ch->on_close(c, c->close_code, ch->ud);
    }
    if (c->gone && !c->in_pending) nd_ws_conn_destroy(c);
  }
}

static void on_pending(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  run_pending(arg);
}

static int write_mode_from_env(void) {
  const char *m = getenv("NOTIFD_WS_WRITE");
  if (m && strcmp(m, "turn") == 0) return ND_WS_WRITE_TURN;
  if (m && strcmp(m, "now") == 0) return ND_WS_WRITE_NOW;
  if (m && strcmp(m, "bev") == 0) return ND_WS_WRITE_BEV;
  return ND_WS_WRITE_NEXT;
}

void nd_ws_hub_defer(nd_ws_hub *hub, notifd_ws_conn *c) {
  if (c->in_pending) return;
  c->in_pending = 1;
  c->pnext = NULL;
  if (hub->pending_tail) hub->pending_tail->pnext = c;
  else hub->pending = c;
  hub->pending_tail = c;
  if (hub->pending_ev) event_active(hub->pending_ev, EV_TIMEOUT, 0);
}

void nd_ws_hub_unlink(nd_ws_hub *hub, notifd_ws_conn *c) {
  if (c->prev) c->prev->next = c->next;
  else if (hub->conns == c) hub->conns = c->next;
  else return; /* not linked */
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
  hub->nconns--;
}

/* ---- hub ---------------------------------------------------------------- */

nd_ws_hub *nd_ws_hub_new(notifd_host *h) {
  if (!h || !h->base) return NULL;
  nd_ws_hub *hub = calloc(1, sizeof *hub);
  if (!hub) return NULL;
  hub->host = h;
  hub->pending_ev = event_new(h->base, -1, 0, on_pending, hub);
  hub->write_mode = write_mode_from_env();
  if (!hub->pending_ev || nd_ws_loops_init(hub) < 0) {
    nd_ws_hub_free(hub);
    return NULL;
  }
  register_metrics(hub);
  return hub;
}

static void free_strv(char **v) {
  for (size_t i = 0; v && v[i]; i++) free(v[i]);
  free(v);
}

static void channel_free(notifd_ws_channel *ch) {
  free_strv(ch->subprotocols);
  for (size_t i = 0; i < ch->nparams; i++) free(ch->param_names[i]);
  for (size_t i = 0; ch->missing_msgs && i < ch->nrequired; i++) free(ch->missing_msgs[i]);
  free(ch->param_names);
  free(ch->missing_msgs);
  free(ch->subject_idx);
  free(ch->path);
  nd_ws_keymap_free(&ch->keys);
  free(ch);
}

void nd_ws_hub_free(nd_ws_hub *hub) {
  if (!hub) return;
  /* With the I/O threads joined every connection is main's to end. */
  if (hub->loops) nd_ws_loops_stop(hub);
  while (hub->conns) {
    notifd_ws_conn *c = hub->conns;
    if (c->state == ND_WS_DEAD) nd_ws_conn_gone(c); /* unlinks it */
    else nd_ws_conn_abort(c, ND_WS_CLOSE_GOING_AWAY, NULL);
  }
  run_pending(hub); /* on_close for each, then frees */
  nd_ws_loops_free(hub);
  if (hub->pending_ev) event_free(hub->pending_ev);
  notifd_ws_channel *ch = hub->channels;
  while (ch) {
    notifd_ws_channel *next = ch->next;
    channel_free(ch);
    ch = next;
  }
  free(hub);
}

void nd_ws_hub_close_all(nd_ws_hub *hub, int32_t code, const char *reason) {
  if (!hub) return;
  hub->shutting_down = 1;
  size_t n = 0;
  for (notifd_ws_conn *c = hub->conns; c; c = c->next) {
    if (!c->m_open) continue;
    nd_ws_conn_close(c, code, reason);
    n++;
  }
  if (n) ND_INFO("ws", "closing %zu websocket connection(s) with %d", n, code);
}

size_t nd_ws_hub_count(const nd_ws_hub *hub) { return hub ? hub->nconns : 0; }

/* ---- channels ------------------------------------------------------------ */

notifd_ws_channel *nd_ws_channel_find(nd_ws_hub *hub, const char *path) {
  if (!hub || !path) return NULL;
  for (notifd_ws_channel *ch = hub->channels; ch; ch = ch->next)
    if (strcmp(ch->path, path) == 0) return ch;
  return NULL;
}

uint32_t nd_ws_channel_auth(const notifd_ws_channel *ch) {
  return ch ? ch->auth : NOTIFD_AUTH_NONE;
}

static int valid_param_name(const char *s) { return s && *s && strlen(s) < 128; }

/* A subprotocol is an HTTP token (RFC 6455 4.1), here at most 64 long. */
static int valid_subprotocol(const char *s) {
  if (!s || !*s || strlen(s) > 64) return 0;
  for (; *s; s++)
    if (*s <= ' ' || *s >= 127 || strchr("()<>@,;:\\\"/[]?={}", *s)) return 0;
  return 1;
}

#define MAX_SUBPROTOCOLS 16

/* Index of `name` in the channel's stored parameters, adding it if new;
 * -1 on OOM. */
static long param_index(notifd_ws_channel *ch, const char *name, size_t cap) {
  for (size_t i = 0; i < ch->nparams; i++)
    if (strcmp(ch->param_names[i], name) == 0) return (long)i;
  if (ch->nparams >= cap) return -1;
  if (!(ch->param_names[ch->nparams] = strdup(name))) return -1;
  return (long)ch->nparams++;
}

static size_t list_len(const char *const *l) {
  size_t n = 0;
  while (l && l[n]) n++;
  return n;
}

int nd_ws_channel_add(nd_ws_hub *hub, notifd_plugin *owner, const notifd_ws_channel_opts *opts,
                      notifd_ws_channel **out) {
  if (out) *out = NULL;
  if (!hub || !opts || !out) return NOTIFD_EINVAL;
  if (!nd_host_registering(hub->host)) return NOTIFD_ESTATE;
  notifd_ws_channel_opts o;
  memset(&o, 0, sizeof o);
  memcpy(&o, opts, opts->size < sizeof o ? opts->size : sizeof o);
  if (!o.path || o.path[0] != '/' || !valid_param_name(o.key_param) ||
      o.auth > NOTIFD_AUTH_INTERNAL)
    return NOTIFD_EINVAL;
  for (size_t i = 0; o.required_params && o.required_params[i]; i++)
    if (!valid_param_name(o.required_params[i])) return NOTIFD_EINVAL;
  for (size_t i = 0; o.subject_params && o.subject_params[i]; i++)
    if (!valid_param_name(o.subject_params[i])) return NOTIFD_EINVAL;
  size_t nproto = list_len(o.subprotocols);
  if (nproto > MAX_SUBPROTOCOLS) return NOTIFD_EINVAL;
  for (size_t i = 0; i < nproto; i++)
    if (!valid_subprotocol(o.subprotocols[i])) return NOTIFD_EINVAL;
  if (nd_ws_channel_find(hub, o.path)) return NOTIFD_EEXIST;

  notifd_ws_channel *ch = calloc(1, sizeof *ch);
  if (!ch) return NOTIFD_ENOMEM;
  ch->hub = hub;
  ch->owner = owner;
  ch->auth = o.auth;
  ch->on_upgrade = o.on_upgrade;
  ch->on_open = o.on_open;
  ch->on_message = o.on_message;
  ch->on_close = o.on_close;
  ch->ud = o.ud;
  nd_ws_keymap_init(&ch->keys, nd_hash_seed());
  size_t nreq = list_len(o.required_params), nsub = list_len(o.subject_params);
  size_t cap = 1 + nreq + nsub;
  ch->path = strdup(o.path);
  ch->param_names = calloc(cap, sizeof *ch->param_names);
  ch->subject_idx = calloc(nsub ? nsub : 1, sizeof *ch->subject_idx);
  if (!ch->path || !ch->param_names || !ch->subject_idx) goto oom;
  if (nproto) {
    if (!(ch->subprotocols = calloc(nproto + 1, sizeof *ch->subprotocols))) goto oom;
    for (size_t i = 0; i < nproto; i++)
      if (!(ch->subprotocols[i] = strdup(o.subprotocols[i]))) goto oom;
  }
  if (param_index(ch, o.key_param, cap) < 0) goto oom;
  for (size_t i = 0; i < nreq; i++)
    if (param_index(ch, o.required_params[i], cap) < 0) goto oom;
  ch->nrequired = ch->nparams;
  if (nsub) {
    for (size_t i = 0; i < nsub; i++) {
      long k = param_index(ch, o.subject_params[i], cap);
      if (k < 0) goto oom;
      ch->subject_idx[ch->nsubjects++] = (size_t)k;
    }
  } else {
    ch->subject_idx[ch->nsubjects++] = 0; /* the key parameter */
  }
  ch->missing_msgs = calloc(ch->nrequired, sizeof *ch->missing_msgs);
  if (!ch->missing_msgs) goto oom;
  for (size_t i = 0; i < ch->nrequired; i++) {
    nd_buf b;
    nd_buf_init(&b);
    nd_buf_printf(&b, "%s query parameter required", ch->param_names[i]);
    if (!(ch->missing_msgs[i] = nd_buf_steal(&b, NULL))) goto oom;
  }
  ch->next = hub->channels;
  hub->channels = ch;
  /* Series exist from the start, so dashboards see zeros. */
  nd_ws_metric_conns(ch);
  nd_ws_metric_add(hub->m_frames, ch, 0);
  nd_ws_metric_add(hub->m_bytes, ch, 0);
  nd_ws_metric_add(hub->m_publishes, ch, 0);
  nd_ws_metric_add(hub->m_deliveries, ch, 0);
  nd_ws_metric_add(hub->m_failures, ch, 0);
  nd_ws_metric_add(hub->m_slow, ch, 0);
  *out = ch;
  return 0;
oom:
  channel_free(ch);
  return NOTIFD_ENOMEM;
}
