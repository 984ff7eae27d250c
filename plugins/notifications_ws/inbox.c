/* Store before push.  A notification is rendered once (the Go envelope's
 * timestamp and payload text), queued on the loop, and stored by a group
 * commit: a job on a host worker takes everything queued at that moment
 * into one transaction, so under load one commit covers hundreds of
 * notifications and an idle server still commits a lone one at once.  The
 * same job loads the preferences of users not in the cache, and marks the
 * events the bus confirmed since the previous batch as sent (events.c).
 * Its completion publishes each notification in id order, produces its
 * event, and answers (HTTP 200 / bus ack) - a notification acknowledged is
 * in the inbox.
 *
 * Callers that wait for the answer before sending the next notification
 * (chat_change_handler forwards one record per bus partition at a time)
 * make the commit's round trip the throughput limit, so with SQLite up to
 * INFLIGHT_SQLITE batches commit at once.  SQLite hands out ids in one
 * gapless sequence in commit order; a batch that committed before an
 * earlier-numbered one waits in q_ready, so publishing stays in id order
 * (recovery relies on it).  MongoDB ids are per user: one batch at a time.
 *
 * Also here: the worker job list, the MongoDB setup retry and the
 * retention timer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notifications_ws.h"
#include "pc_jenc.h"
#include "pc_time.h"

#define BATCH_MAX 1024
#define INFLIGHT_SQLITE 4

static void inbox_enqueue(notif_ws *s, notif_item *it);

void inbox_rec_free(inbox_rec *r) {
  if (!r) return;
  free(r->user_id);
  free(r->type);
  free(r->ts);
  free(r->payload);
  memset(r, 0, sizeof *r);
}

void inbox_recs_free(inbox_rec *r, size_t n) {
  for (size_t i = 0; r && i < n; i++) inbox_rec_free(&r[i]);
  free(r);
}

/* ---- jobs ---- */

static void job_unlink(nw_job *j) {
  notif_ws *s = j->s;
  if (j->prev) j->prev->next = j->next;
  else if (s->jobs == j) s->jobs = j->next;
  if (j->next) j->next->prev = j->prev;
  j->prev = j->next = NULL;
}

static void job_work_tramp(void *ud) {
  nw_job *j = ud;
  j->work(j);
}

static void job_done_tramp(void *ud) {
  nw_job *j = ud;
  job_unlink(j);
  j->done(j);
}

int nw_job_submit(notif_ws *s, nw_job *j) {
  j->s = s;
  j->prev = NULL;
  j->next = s->jobs;
  if (s->jobs) s->jobs->prev = j;
  s->jobs = j;
  int rc = s->api->work_submit(s->self, job_work_tramp, job_done_tramp, j);
  if (rc < 0) job_unlink(j);
  return rc;
}

int nw_job_start(notif_ws *s, nw_job *j, void (*work)(nw_job *), void (*done)(nw_job *),
                 void (*release)(nw_job *), int *busy) {
  j->work = work;
  j->done = done;
  j->release = release;
  if (busy) *busy = 1;
  int rc = nw_job_submit(s, j);
  if (rc < 0) {
    if (busy) *busy = 0;
    release(j);
  }
  return rc;
}

/* ---- items ---- */

static void item_free(notif_item *it) {
  free(it->rec.user_id);
  free(it->rec.ts);
  free(it->rec.payload);
  free(it);
}

static void count_op(notif_ws *s, const char *op, int ok) {
  const char *v[] = {op, ok ? "ok" : "error"};
  s->api->metric_add(s->m_store, v, 1);
}

/* Publishes a stored (or, inbox off, unstored) item and finishes it. */
static void item_publish(notif_ws *s, notif_item *it) {
  pc_publish pub;
  memset(&pub, 0, sizeof pub);
  int ws = s->store ? prefs_websocket_on(s, it->rec.user_id, it->kind) : 1;
  pc_buf frame;
  pc_buf_init(&frame);
  notif_frame(&frame, -1, it->rec.type, it->rec.ts, it->rec.payload);
  it->frame_len = frame.len;
  if (frame.oom) {
    pub.rc = NOTIFD_ENOMEM;
    pub.failed = s->api->ws_key_count(s->ch, it->rec.user_id);
  } else if (ws) {
    recovery_publish(s, it->rec.user_id, it->rec.id, frame.data, frame.len, &pub);
  }
  pc_buf_free(&frame);
  if (s->store) events_publish(s, &it->rec, it->kind, pub.delivered);
  it->done(s, it, 0, &pub, it->ud);
}

int notif_submit(notif_ws *s, const pc_notification_kind *kind, const pc_model *payload,
                 const char *json, const char *user_id, notif_done_cb done, void *ud) {
  notif_item *it = calloc(1, sizeof *it);
  if (!it) return -2;
  pc_buf ts, body;
  pc_buf_init(&ts);
  pc_buf_init(&body);
  pc_time now;
  pc_time_now(&now);
  if (pc_time_put_json(&ts, &now) < 0) pc_buf_puts(&ts, "\"0001-01-01T00:00:00Z\"");
  if (!payload) pc_buf_puts(&body, json);
  else if (pc_model_put_json(&body, payload) < 0) {
    pc_buf_free(&ts);
    pc_buf_free(&body);
    free(it);
    return -1;
  }
  it->kind = kind;
  it->rec.type = (char *)kind->notification_type;
  it->rec.ts = pc_buf_steal(&ts, NULL);
  it->rec.payload = pc_buf_steal(&body, NULL);
  it->rec.user_id = strdup(user_id);
  it->rec.created_ms = notif_now_ms();
  it->rec.id = -1;
  it->rec.event_sent = s->events_topic == NULL; /* nothing due when the stream is off */
  it->done = done;
  it->ud = ud;
  if (!it->rec.ts || !it->rec.payload || !it->rec.user_id) {
    pc_buf_free(&ts);
    pc_buf_free(&body);
    item_free(it);
    return -2;
  }
  if (!s->store) { /* the Go service's behaviour: push only */
    item_publish(s, it);
    item_free(it);
    return 0;
  }
  inbox_enqueue(s, it);
  return 0;
}

/* ---- group commit ---- */

typedef struct batch_job {
  nw_job base;
  struct batch_job *next_ready;
  notif_item **items;
  inbox_rec **recs;
  size_t n;
  prefs_load prefs; /* of users not cached */
  inbox_sent *sent; /* events to mark sent in the same transaction */
  size_t nsent;
  int rc;
  char err[200];
} batch_job;

static void batch_work(nw_job *j) {
  batch_job *bj = (batch_job *)j;
  inbox_store *st = j->s->store;
  bj->rc = st->ops->insert_batch(st, bj->recs, bj->n, bj->sent, bj->nsent, bj->err,
                                 sizeof bj->err);
  prefs_load_work(&bj->prefs, st);
}

static void batch_free(batch_job *bj) {
  prefs_load_free(&bj->prefs);
  inbox_sent_free(bj->sent, bj->nsent);
  free(bj->items);
  free(bj->recs);
  free(bj);
}

static void batch_release(nw_job *j) {
  batch_job *bj = (batch_job *)j;
  events_return_sent(j->s, bj->sent, bj->nsent); /* marked at destroy */
  bj->sent = NULL;
  bj->nsent = 0;
  for (size_t i = 0; i < bj->n; i++) item_free(bj->items[i]);
  batch_free(bj);
}

static void batch_submit(notif_ws *s);

static void batch_publish(notif_ws *s, batch_job *bj) {
  for (size_t i = 0; i < bj->n; i++) {
    notif_item *it = bj->items[i];
    s->api->metric_observe(s->m_commit, NULL, (double)(pc_mono_ns() - it->t0_ns) / 1e9);
    item_publish(s, it);
    item_free(it);
  }
  bj->n = 0;
  batch_free(bj);
}

static void batch_done(nw_job *j) {
  batch_job *bj = (batch_job *)j;
  notif_ws *s = j->s;
  s->q_inflight--;
  /* The next batch commits while this one is published. */
  if (s->q_head) batch_submit(s);
  count_op(s, "insert", bj->rc == 0);
  prefs_load_done(s, &bj->prefs);
  if (bj->rc < 0) { /* no ids were used */
    s->api->log(s->self, NOTIFD_LOG_ERROR, "inbox: storing %zu notification(s) failed: %s",
                bj->n, bj->err);
    events_return_sent(s, bj->sent, bj->nsent); /* the next batch marks them */
    bj->sent = NULL;
    bj->nsent = 0;
    for (size_t i = 0; i < bj->n; i++) {
      notif_item *it = bj->items[i];
      snprintf(it->err, sizeof it->err, "%s", bj->err);
      it->done(s, it, -1, NULL, it->ud);
      item_free(it);
    }
    bj->n = 0;
    batch_free(bj);
    return;
  }
  if (s->q_expect < 0) {
    batch_publish(s, bj);
    return;
  }
  /* In id order: park it among the committed batches (sorted by first
   * id), then publish every batch that is next in line. */
  batch_job **pp = &s->q_ready;
  while (*pp && (*pp)->recs[0]->id < bj->recs[0]->id) pp = &(*pp)->next_ready;
  bj->next_ready = *pp;
  *pp = bj;
  while (s->q_ready && s->q_ready->recs[0]->id == s->q_expect) {
    batch_job *b = s->q_ready;
    s->q_ready = b->next_ready;
    s->q_expect += (int64_t)b->n;
    batch_publish(s, b);
  }
}

static void batch_submit_one(notif_ws *s);

static void batch_submit(notif_ws *s) {
  while (s->q_head && s->q_inflight < s->q_max_inflight) batch_submit_one(s);
}

static void batch_submit_one(notif_ws *s) {
  size_t n = 0;
  for (notif_item *p = s->q_head; p && n < BATCH_MAX; p = p->qnext) n++;
  batch_job *bj = calloc(1, sizeof *bj);
  int ok = bj != NULL;
  if (ok) {
    bj->items = calloc(n, sizeof *bj->items);
    bj->recs = calloc(n, sizeof *bj->recs);
    ok = bj->items && bj->recs && prefs_load_init(&bj->prefs, n) == 0;
  }
  for (size_t i = 0; i < n; i++) {
    notif_item *it = s->q_head;
    s->q_head = it->qnext;
    if (!s->q_head) s->q_tail = NULL;
    it->qnext = NULL;
    if (!ok) {
      snprintf(it->err, sizeof it->err, "out of memory");
      it->done(s, it, -1, NULL, it->ud);
      item_free(it);
      continue;
    }
    bj->items[i] = it;
    bj->recs[i] = &it->rec;
    /* Preferences not cached yet are loaded by the same job. */
    if (!prefs_cached(s, it->rec.user_id)) prefs_load_add(&bj->prefs, it->rec.user_id);
  }
  if (!ok) {
    if (bj) batch_free(bj);
    return;
  }
  bj->n = n;
  bj->sent = events_take_due(s, &bj->nsent);
  bj->base.work = batch_work;
  bj->base.done = batch_done;
  bj->base.release = batch_release;
  s->q_inflight++;
  if (nw_job_submit(s, &bj->base) < 0) {
    s->q_inflight--;
    for (size_t i = 0; i < n; i++) {
      snprintf(bj->items[i]->err, sizeof bj->items[i]->err, "server is shutting down");
      bj->items[i]->done(s, bj->items[i], -1, NULL, bj->items[i]->ud);
    }
    batch_release(&bj->base);
  }
}

static void inbox_enqueue(notif_ws *s, notif_item *it) {
  it->t0_ns = pc_mono_ns();
  if (s->q_tail) s->q_tail->qnext = it;
  else s->q_head = it;
  s->q_tail = it;
  batch_submit(s);
}

/* ---- MongoDB setup, retried until it works ---- */

typedef struct setup_job {
  nw_job base;
  int rc;
  char err[256];
} setup_job;

static void setup_submit(notif_ws *s);
static void setup_work(nw_job *j) {
  setup_job *sj = (setup_job *)j;
  sj->rc = j->s->store->ops->setup(j->s->store, sj->err, sizeof sj->err);
}
static void setup_release(nw_job *j) { free(j); }
static void on_setup_timer(notifd_timer *t, void *ud) {
  notif_ws *s = ud;
  s->api->timer_stop(t);
  s->setup_timer = NULL;
  setup_submit(s);
}
static void setup_done(nw_job *j) {
  setup_job *sj = (setup_job *)j;
  notif_ws *s = j->s;
  if (sj->rc == 0) {
    s->mongo_ready = 1;
    s->api->log(s->self, NOTIFD_LOG_INFO, "inbox: MongoDB reachable, indexes in place");
    events_start(s);
  } else {
    s->api->log(s->self, NOTIFD_LOG_WARN, "inbox: MongoDB setup failed (%s); retrying in 5s",
                sj->err);
    if (s->api->timer_start(s->self, 5000, 0, on_setup_timer, s, &s->setup_timer) < 0)
      s->setup_timer = NULL;
  }
  free(sj);
}
static void setup_submit(notif_ws *s) {
  setup_job *sj = calloc(1, sizeof *sj);
  if (!sj) return;
  nw_job_start(s, &sj->base, setup_work, setup_done, setup_release, NULL);
}

/* ---- retention ---- */

typedef struct purge_job {
  nw_job base;
  int64_t older_than_ms, deleted;
  int rc;
  char err[200];
} purge_job;

static void purge_work(nw_job *j) {
  purge_job *pj = (purge_job *)j;
  notif_ws *s = j->s;
  pj->rc = s->store->ops->purge(s->store, pj->older_than_ms, s->max_per_user, &pj->deleted,
                                pj->err, sizeof pj->err);
}
static void purge_release(nw_job *j) { free(j); }
static void purge_done(nw_job *j) {
  purge_job *pj = (purge_job *)j;
  notif_ws *s = j->s;
  s->purge_busy = 0;
  count_op(s, "purge", pj->rc == 0);
  if (pj->rc < 0)
    s->api->log(s->self, NOTIFD_LOG_WARN, "inbox: retention purge failed: %s", pj->err);
  else if (pj->deleted > 0)
    s->api->metric_add(s->m_purged, NULL, (double)pj->deleted);
  free(pj);
}

static void on_purge_timer(notifd_timer *t, void *ud) {
  (void)t;
  notif_ws *s = ud;
  if (s->purge_busy || (s->mongo && !s->mongo_ready)) return;
  purge_job *pj = calloc(1, sizeof *pj);
  if (!pj) return;
  pj->older_than_ms = notif_now_ms() - s->max_age_ms;
  nw_job_start(s, &pj->base, purge_work, purge_done, purge_release, &s->purge_busy);
}

/* ---- WAL checkpoints off the commit path ---- */

#define CHECKPOINT_MS 200

static void ckpt_work(nw_job *j) { j->s->store->ops->checkpoint(j->s->store); }
static void ckpt_release(nw_job *j) { free(j); }
static void ckpt_done(nw_job *j) {
  j->s->ckpt_busy = 0;
  free(j);
}
static void on_ckpt_timer(notifd_timer *t, void *ud) {
  (void)t;
  notif_ws *s = ud;
  if (s->ckpt_busy) return;
  nw_job *j = calloc(1, sizeof *j);
  if (j) nw_job_start(s, j, ckpt_work, ckpt_done, ckpt_release, &s->ckpt_busy);
}

int inbox_start(notif_ws *s) {
  if (!s->store) return 0;
  s->q_expect = s->store->ops->next_id ? s->store->ops->next_id(s->store) : -1;
  s->q_max_inflight = s->q_expect < 0 ? 1 : INFLIGHT_SQLITE;
  if (s->mongo) setup_submit(s);
  else events_start(s);
  if (s->api->timer_start(s->self, s->purge_ms, s->purge_ms, on_purge_timer, s,
                          &s->purge_timer) < 0)
    s->api->log(s->self, NOTIFD_LOG_WARN, "inbox: cannot start the retention timer");
  if (s->store->ops->checkpoint &&
      s->api->timer_start(s->self, CHECKPOINT_MS, CHECKPOINT_MS, on_ckpt_timer, s,
                          &s->ckpt_timer) < 0)
    s->api->log(s->self, NOTIFD_LOG_WARN, "inbox: cannot start the checkpoint timer");
  return 0;
}

void inbox_destroy(notif_ws *s) {
  while (s->jobs) {
    nw_job *j = s->jobs;
    job_unlink(j);
    j->release(j);
  }
  while (s->q_ready) {
    batch_job *b = s->q_ready;
    s->q_ready = b->next_ready;
    batch_release(&b->base);
  }
  while (s->q_head) {
    notif_item *it = s->q_head;
    s->q_head = it->qnext;
    item_free(it);
  }
  s->q_tail = NULL;
  events_destroy(s);
  if (s->store) s->store->ops->close(s->store);
  s->store = NULL;
}
