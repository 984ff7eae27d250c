/* The /notifications/subscribe channel: which frames each socket gets, and
 * recovery (Centrifugo's model) with ?since=ID.
 *
 * Frames.  A plain subscriber (the Go service's clients) gets the Go frame
 * {"notification_type","timestamp","payload"} byte for byte; a subscriber
 * that passed ?since= or ?v=2 gets {"id":N,...the same...}.  While a user has
 * no v2 socket, publishing is one ws_publish (encoded once); otherwise the
 * user's sockets are served one by one from the registry below.
 *
 * Recovery.  on_open pauses the socket (the host's ws_publish skips it),
 * a worker reads the stored notifications newer than `since` (the newest
 * replay_max, oldest first), the completion sends them with ws_send, then
 * what was published for that user meanwhile (kept per paused socket, ids
 * at or below the last replayed dropped), then resumes.  Ids increase in
 * commit order and a notification is published only after its commit, so
 * every notification is either in the replay or published after the query
 * started: no gap, no duplicate.  More than pending_max meanwhile closes the
 * socket with 1013 after what it got, so the client resumes from its last id. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "notifications_ws.h"

typedef struct nw_conn nw_conn;

typedef struct nw_user {
  nw_conn *head;
  uint32_t nv2; /* sockets that get frames with "id" */
} nw_user;

typedef struct nw_pending {
  int64_t id;
  char *frame;
  size_t len;
} nw_pending;

struct nw_conn {
  nw_conn *prev, *next;
  nw_user *u;
  notifd_ws_conn *c;    /* NULL once closed */
  uint8_t v2, replaying, job_pending, overflow;
  int64_t t0_ns;
  int64_t replayed; /* last id replayed: a later publish of it is a duplicate */
  nw_pending *pend;
  size_t npend, cappend;
};

static void pending_free(nw_conn *nc) {
  for (size_t i = 0; i < nc->npend; i++) free(nc->pend[i].frame);
  free(nc->pend);
  nc->pend = NULL;
  nc->npend = nc->cappend = 0;
}

static void conn_free(nw_conn *nc) {
  pending_free(nc);
  free(nc);
}

/* ---- upgrade: ?since= and ?v= ---- */

/* A non-negative decimal integer that fits int64 (no sign, no blanks). */
static int parse_id(const char *t, int64_t *out) {
  if (!t || !*t || strlen(t) > 19) return -1;
  int64_t v = 0;
  for (const char *p = t; *p; p++) {
    if (*p < '0' || *p > '9') return -1;
    if (v > (INT64_MAX - (*p - '0')) / 10) return -1;
    v = v * 10 + (*p - '0');
  }
  *out = v;
  return 0;
}

static int32_t on_upgrade(notifd_req *req, const char **reason, void *ud) {
  notif_ws *s = ud;
  const notifd_api *api = s->api;
  memset(&s->up, 0, sizeof s->up);
  const char *v = api->req_query(req, "v");
  const char *since = api->req_query(req, "since");
  if (v && strcmp(v, "1") != 0 && strcmp(v, "2") != 0) {
    *reason = "v must be 1 or 2";
    return 400;
  }
  if (since) {
    if (!s->store) {
      *reason = "recovery needs the notification inbox (store: none)";
      return 400;
    }
    if (parse_id(since, &s->up.since) < 0) {
      *reason = "since must be a notification id (a non-negative integer)";
      return 400;
    }
    s->up.has_since = 1;
  }
  /* Ids exist only with the inbox. */
  s->up.v2 = s->store && (s->up.has_since || (v && strcmp(v, "2") == 0));
  s->up.set = 1;
  return 0;
}

/* ---- replay ---- */

typedef struct replay_job {
  nw_job base;
  nw_conn *nc;
  char *user;
  int64_t since;
  inbox_rec *recs;
  size_t n;
  int rc;
  char err[200];
} replay_job;

static void replay_work(nw_job *j) {
  replay_job *rj = (replay_job *)j;
  inbox_store *st = j->s->store;
  rj->rc = st->ops->after(st, rj->user, rj->since, (size_t)j->s->replay_max, &rj->recs, &rj->n,
                          rj->err, sizeof rj->err);
}

static void replay_free(replay_job *rj) {
  inbox_recs_free(rj->recs, rj->n);
  free(rj->user);
  free(rj);
}

static void replay_release(nw_job *j) {
  replay_job *rj = (replay_job *)j;
  rj->nc->job_pending = 0;
  if (!rj->nc->c) conn_free(rj->nc); /* closed meanwhile; else recovery_destroy frees it */
  replay_free(rj);
}

static void replay_done(nw_job *j) {
  replay_job *rj = (replay_job *)j;
  notif_ws *s = j->s;
  const notifd_api *api = s->api;
  nw_conn *nc = rj->nc;
  nc->job_pending = 0;
  if (!nc->c) { /* the socket closed during the query */
    conn_free(nc);
    replay_free(rj);
    return;
  }
  const char *v[] = {rj->rc == 0 ? "ok" : "error"};
  const char *op[] = {"replay", v[0]};
  api->metric_add(s->m_store, op, 1);
  if (rj->rc < 0) {
    api->log(s->self, NOTIFD_LOG_WARN, "inbox: replay for %s failed: %s", rj->user, rj->err);
    pending_free(nc);
    nc->replaying = 0;
    api->ws_close(nc->c, 1011, "cannot read the notification inbox");
    replay_free(rj);
    return;
  }
  /* What the replay sent, not `since`: a client whose since is ahead of
   * the store (a bogus position) still gets what is published next. */
  int64_t last = 0;
  int ok = 1;
  pc_buf b;
  pc_buf_init(&b);
  for (size_t i = 0; ok && i < rj->n; i++) {
    pc_buf_reset(&b);
    notif_frame(&b, rj->recs[i].id, rj->recs[i].type, rj->recs[i].ts, rj->recs[i].payload);
    ok = !b.oom && api->ws_send(nc->c, b.data, b.len, 1) == 0;
    if (ok) last = rj->recs[i].id;
  }
  pc_buf_free(&b);
  for (size_t i = 0; ok && i < nc->npend; i++)
    if (nc->pend[i].id > last)
      ok = api->ws_send(nc->c, nc->pend[i].frame, nc->pend[i].len, 1) == 0;
  int overflow = nc->overflow;
  /* A batch whose commit the query saw may not be published yet: its
   * publish must skip what the replay already sent. */
  nc->replayed = last;
  for (size_t i = 0; i < nc->npend; i++)
    if (nc->pend[i].id > nc->replayed) nc->replayed = nc->pend[i].id;
  pending_free(nc);
  nc->replaying = 0;
  api->metric_observe(s->m_replay, NULL, (double)(pc_mono_ns() - nc->t0_ns) / 1e9);
  if (!ok) {
    api->ws_close(nc->c, 1011, "cannot send the replay");
  } else if (overflow) {
    api->ws_close(nc->c, 1013, "too many notifications during recovery; reconnect with since");
  } else if (api->ws_conn_resume(nc->c) < 0) {
    api->ws_close(nc->c, 1011, "out of memory");
  }
  replay_free(rj);
}

static void on_open(notifd_ws_conn *c, void *ud) {
  notif_ws *s = ud;
  const notifd_api *api = s->api;
  notif_upgrade up = s->up;
  memset(&s->up, 0, sizeof s->up);
  const char *user = api->ws_conn_key(c);
  nw_user *u = pc_map_get(&s->users, user);
  nw_conn *nc = calloc(1, sizeof *nc);
  if (!u) {
    u = calloc(1, sizeof *u);
    if (!u || !nc || pc_map_put(&s->users, user, u) < 0) {
      free(u);
      free(nc);
      api->ws_close(c, 1011, "out of memory");
      return;
    }
  } else if (!nc) {
    api->ws_close(c, 1011, "out of memory");
    return;
  }
  nc->c = c;
  nc->u = u;
  nc->v2 = (uint8_t)(up.set && up.v2);
  nc->next = u->head;
  if (u->head) u->head->prev = nc;
  u->head = nc;
  if (nc->v2) u->nv2++;
  api->ws_conn_set_data(c, nc);
  if (!up.set || !up.has_since) return;

  replay_job *rj = calloc(1, sizeof *rj);
  if (rj) rj->user = strdup(user);
  if (!rj || !rj->user || api->ws_conn_pause(c) < 0) {
    if (rj) free(rj->user);
    free(rj);
    api->ws_close(c, 1011, "cannot start the replay");
    return;
  }
  nc->replaying = 1;
  nc->job_pending = 1;
  nc->t0_ns = pc_mono_ns();
  rj->nc = nc;
  rj->since = up.since;
  rj->base.work = replay_work;
  rj->base.done = replay_done;
  rj->base.release = replay_release;
  if (nw_job_submit(s, &rj->base) < 0) {
    nc->job_pending = 0;
    nc->replaying = 0;
    replay_free(rj);
    api->ws_close(c, 1001, "server is shutting down");
  }
}

static void on_close(notifd_ws_conn *c, int32_t code, void *ud) {
  (void)code;
  notif_ws *s = ud;
  nw_conn *nc = s->api->ws_conn_data(c);
  if (!nc) return;
  s->api->ws_conn_set_data(c, NULL);
  nw_user *u = nc->u;
  if (nc->prev) nc->prev->next = nc->next;
  else u->head = nc->next;
  if (nc->next) nc->next->prev = nc->prev;
  if (nc->v2) u->nv2--;
  if (!u->head) free(pc_map_del(&s->users, s->api->ws_conn_key(c)));
  nc->c = NULL;
  nc->u = NULL;
  if (!nc->job_pending) conn_free(nc);
}

/* ---- live ---- */

static void pending_add(notif_ws *s, nw_conn *nc, int64_t id, const char *f, size_t len) {
  if (nc->overflow) return;
  if (nc->npend >= (size_t)s->pending_max) {
    nc->overflow = 1;
    return;
  }
  if (nc->npend == nc->cappend) {
    size_t cap = nc->cappend ? nc->cappend * 2 : 8;
    nw_pending *p = realloc(nc->pend, cap * sizeof *p);
    if (!p) {
      nc->overflow = 1;
      return;
    }
    nc->pend = p;
    nc->cappend = cap;
  }
  char *copy = malloc(len);
  if (!copy) {
    nc->overflow = 1;
    return;
  }
  memcpy(copy, f, len);
  nc->pend[nc->npend++] = (nw_pending){id, copy, len};
}

void recovery_publish(notif_ws *s, const char *user, int64_t id, const char *frame, size_t len,
                      pc_publish *pub) {
  const notifd_api *api = s->api;
  memset(pub, 0, sizeof *pub);
  nw_user *u = pc_map_get(&s->users, user);
  if (!u || u->nv2 == 0) {
    pc_publish_to(api, s->ch, user, strlen(user), frame, len, pub);
    return;
  }
  /* {"id":N, + the Go frame without its '{' */
  pc_buf idf;
  pc_buf_init(&idf);
  pc_buf_printf(&idf, "{\"id\":%lld,", (long long)id);
  pc_buf_put(&idf, frame + 1, len - 1);
  if (idf.oom) {
    pc_buf_free(&idf);
    pub->rc = NOTIFD_ENOMEM;
    for (nw_conn *nc = u->head; nc; nc = nc->next) pub->failed++;
    return;
  }
  /* on_close is deferred by the host, so the list holds still here. */
  for (nw_conn *nc = u->head; nc; nc = nc->next) {
    if (id <= nc->replayed) { /* sent by its replay */
      pub->delivered++;
      continue;
    }
    if (nc->replaying) {
      pending_add(s, nc, id, idf.data, idf.len);
      pub->delivered++;
      continue;
    }
    /* A socket already closing is not counted, as ws_publish leaves it out
     * too: resume on a socket that is not paused only reports whether it
     * is open. */
    if (api->ws_conn_resume(nc->c) == NOTIFD_ECLOSED) continue;
    int rc = nc->v2 ? api->ws_send(nc->c, idf.data, idf.len, 1)
                    : api->ws_send(nc->c, frame, len, 1);
    if (rc == 0) pub->delivered++;
    else pub->failed++;
  }
  pc_buf_free(&idf);
}

uint32_t recovery_sockets(notif_ws *s, const char *user) {
  uint32_t n = s->api->ws_key_count(s->ch, user);
  nw_user *u = pc_map_get(&s->users, user);
  for (nw_conn *nc = u ? u->head : NULL; nc; nc = nc->next) n += nc->replaying;
  return n;
}

int recovery_register(notif_ws *s) {
  pc_map_init(&s->users);
  notifd_ws_channel_opts ch = {
      .size = sizeof ch,
      .auth = s->auth,
      .path = "/notifications/subscribe",
      .key_param = "user_id",
      .on_upgrade = on_upgrade,
      .on_open = on_open,
      .on_close = on_close,
      .ud = s,
  };
  return s->api->ws_channel(s->self, &ch, &s->ch);
}

static void user_free(void *v) {
  nw_user *u = v;
  for (nw_conn *nc = u->head, *next; nc; nc = next) {
    next = nc->next;
    conn_free(nc); /* a pending replay job was released before */
  }
  free(u);
}

void recovery_destroy(notif_ws *s) { pc_map_free(&s->users, user_free); }
