/* HTTP API of chat_persistence.
 *
 *   POST /chat/persist, POST /chat/messages      store a ChatMessage
 *   GET  /chat/messages/{message_id}             one stored message
 *   GET  /chat/streams/{stream_id}/messages      history, newest first
 *   (conversations and read marks: cp_state.c)
 *
 * Handlers validate on the loop and run the store on the worker pool; the
 * request is answered from the job's completion. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pc_buf.h"
#include "chat_extjson.h"
#include "chat_json.h"
#include "chat_model.h"
#include "pc_stream_id.h"
#include "chat_time.h"
#include "cp_internal.h"

#define JSON_CT "application/json; charset=utf-8"

static void count(cp_plugin *pl, const char *result) {
  const char *v[] = {result};
  pl->api->metric_add(pl->m.requests, v, 1);
}

void cp_observe_store(cp_plugin *pl, const char *op, int64_t t0) {
  const char *v[] = {op};
  pl->api->metric_observe(pl->m.store_seconds, v, cp_elapsed_s(t0));
}

static void respond_message(cp_plugin *pl, notifd_req *req, int status, const chat_message *m) {
  pc_buf b;
  pc_buf_init(&b);
  if (chat_message_gojson(m, &b) < 0) {
    pc_buf_free(&b);
    pl->api->respond_error(req, 500, "failed to serialize message");
    return;
  }
#ifdef CHAT_PERSISTENCE_BUILD_HEADER
  /* Test builds (tests/plugins/swap) mark the messages they answer. */
  pl->api->resp_header(req, "X-Chat-Persistence-Build", CHAT_PERSISTENCE_BUILD_HEADER);
#endif
  pl->api->respond(req, status, JSON_CT, b.data, b.len);
  pc_buf_free(&b);
}

static void respond_bind_error(cp_plugin *pl, notifd_req *req, int rc, pc_buf *err) {
  if (rc == CHAT_BIND_NOMEM || err->oom) {
    count(pl, "error");
    pl->api->respond_error(req, 500, "out of memory");
  } else {
    count(pl, "invalid");
    pl->api->respond_error(req, 400, err->data ? err->data : "invalid message");
  }
}

/* ---- POST ---- */

typedef struct post_job {
  cp_job base;
  struct post_job *qnext; /* group commit queue */
  notifd_req *req;
  chat_message msg;   /* the request; after the insert, what is stored */
  chat_message want;  /* the request as sent, to judge an existing id */
  int rc;
  int64_t t0;
  char err[256];
} post_job;

static void post_work(cp_job *j) {
  post_job *pj = (post_job *)j;
  cp_store *s = j->pl->store;
  pj->rc = s->ops->insert(s, &pj->msg, pj->err, sizeof pj->err);
}

static void post_release(cp_job *j) {
  post_job *pj = (post_job *)j;
  chat_message_free(&pj->msg);
  chat_message_free(&pj->want);
  free(pj);
}

static int same_message(const chat_message *a, const chat_message *b) {
  return a->content_len == b->content_len &&
         memcmp(a->content, b->content, a->content_len) == 0 && strcmp(a->stream_id, b->stream_id) == 0 &&
         strcmp(a->sender_id, b->sender_id) == 0 && strcmp(a->receiver_id, b->receiver_id) == 0;
}

/* Answers the POST from the store's result; 1 if a message was created. */
static int post_answer(cp_plugin *pl, post_job *pj) {
  int created = 0;
  cp_observe_store(pl, "insert", pj->t0);
  if (pj->rc == 0 && pj->err[0]) /* stored; the conversation update failed */
    pl->api->log(pl->self, NOTIFD_LOG_WARN, "message %s: %s", pj->msg.message_id, pj->err);
  if (pj->rc < 0) {
    pl->api->log(pl->self, NOTIFD_LOG_ERROR, "storing message %s failed: %s", pj->msg.message_id,
                 pj->err);
    count(pl, "error");
    pl->api->respond_error(pj->req, 500, "failed to save message");
  } else if (pj->rc == 1) {
    /* Idempotent retry of the same message; a different message under a
     * taken id is a conflict, not an overwrite. */
    if (same_message(&pj->msg, &pj->want)) {
      count(pl, "existing");
      respond_message(pl, pj->req, 200, &pj->msg);
    } else {
      count(pl, "conflict");
      pl->api->respond_error(pj->req, 409, "message_id already exists with different content");
    }
  } else {
    count(pl, "created");
    char loc[600];
    if (strlen(pj->msg.message_id) < 512 && strspn(pj->msg.message_id,
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~") ==
        strlen(pj->msg.message_id)) {
      snprintf(loc, sizeof loc, "/chat/messages/%s", pj->msg.message_id);
      pl->api->resp_header(pj->req, "Location", loc);
    }
    respond_message(pl, pj->req, 201, &pj->msg);
    created = 1;
  }
  return created;
}

static void post_done(cp_job *j) {
  cp_plugin *pl = j->pl;
  if (post_answer(pl, (post_job *)j) && pl->relay) cp_relay_kick(pl->relay);
  post_release(j);
}

/* ---- group commit ----
 *
 * With a store that has insert_batch (SQLite, MongoDB), POSTs do not each
 * take a worker and a transaction: they queue on the loop, and one batch
 * job at a time stores everything queued so far in one transaction (SQLite)
 * or in one insert_many and a few bulk writes (MongoDB), so under load one
 * fsync or round trip covers many messages and an idle server still
 * commits a lone message at once.  Answers go out in arrival order after
 * the commit, while the next batch commits. */

#define CP_BATCH_MAX 512

typedef struct batch_job {
  cp_job base;
  post_job **items;
  chat_message **msgs;
  int *rcs;
  cp_change *changes; /* committed change records, for the relay */
  size_t n;
  int64_t *dels;      /* published outbox rows deleted in the same transaction */
  size_t ndel;
  int rc;
  char err[256];
} batch_job;

static void batch_work(cp_job *j) {
  batch_job *bj = (batch_job *)j;
  cp_store *s = j->pl->store;
  bj->rc = s->ops->insert_batch(s, bj->msgs, bj->rcs, bj->n, bj->changes, bj->dels, bj->ndel,
                                bj->err, sizeof bj->err);
  if (bj->rc < 0)
    for (size_t i = 0; i < bj->n; i++) bj->rcs[i] = -1;
}

static void batch_free(batch_job *bj) {
  free(bj->items);
  free(bj->msgs);
  free(bj->rcs);
  cp_changes_free(bj->changes, bj->n);
  free(bj->dels);
  free(bj);
}

static void batch_release(cp_job *j) {
  batch_job *bj = (batch_job *)j;
  for (size_t i = 0; i < bj->n; i++) post_release(&bj->items[i]->base);
  batch_free(bj);
}

static void batch_submit(cp_plugin *pl);

static void batch_done(cp_job *j) {
  batch_job *bj = (batch_job *)j;
  cp_plugin *pl = j->pl;
  int created = 0;
  /* The next batch commits on a worker while this one is answered: under
   * load answering a few hundred POSTs takes milliseconds of loop time,
   * which would otherwise leave the store idle. */
  pl->ins_busy = 0;
  if (pl->ins_head) batch_submit(pl);
  if (bj->rc < 0) {
    cp_relay_deletes_failed(j->pl->relay, bj->dels, bj->ndel);
    bj->dels = NULL;
  } else {
    if (bj->err[0]) /* stored; a conversation update or a change record failed */
      pl->api->log(pl->self, NOTIFD_LOG_WARN, "insert batch of %zu: %s", bj->n, bj->err);
    cp_relay_committed(j->pl->relay, bj->changes, bj->n);
  }
  if (bj->rc >= 0 && pl->store->ops->conv_apply) cp_conv_queue(pl, bj->msgs, bj->rcs, bj->n);
  for (size_t i = 0; i < bj->n; i++) {
    post_job *pj = bj->items[i];
    pj->rc = bj->rcs[i];
    if (pj->rc < 0) snprintf(pj->err, sizeof pj->err, "%s", bj->err);
    created |= post_answer(pl, pj);
    post_release(&pj->base);
  }
  batch_free(bj);
  if (created && pl->relay) cp_relay_kick(pl->relay);
}

/* Takes up to CP_BATCH_MAX queued POSTs into one job. */
static void batch_submit(cp_plugin *pl) {
  size_t n = 0;
  for (post_job *p = pl->ins_head; p && n < CP_BATCH_MAX; p = p->qnext) n++;
  batch_job *bj = calloc(1, sizeof *bj);
  if (bj) {
    bj->items = calloc(n, sizeof *bj->items);
    bj->msgs = calloc(n, sizeof *bj->msgs);
    bj->rcs = calloc(n, sizeof *bj->rcs);
    bj->changes = calloc(n, sizeof *bj->changes);
  }
  int ok = bj && bj->items && bj->msgs && bj->rcs && bj->changes;
  for (size_t i = 0; i < n; i++) {
    post_job *pj = pl->ins_head;
    pl->ins_head = pj->qnext;
    if (!pl->ins_head) pl->ins_tail = NULL;
    pj->qnext = NULL;
    if (ok) {
      bj->items[i] = pj;
      bj->msgs[i] = &pj->msg;
    } else {
      count(pl, "error");
      pl->api->respond_error(pj->req, 500, "out of memory");
      post_release(&pj->base);
    }
  }
  if (!ok) {
    if (bj) batch_free(bj);
    return;
  }
  bj->n = n;
  cp_relay_take_deletes(pl->relay, &bj->dels, &bj->ndel);
  bj->base.work = batch_work;
  bj->base.done = batch_done;
  bj->base.release = batch_release;
  pl->ins_busy = 1;
  if (cp_job_submit(pl, &bj->base) < 0) {
    pl->ins_busy = 0;
    cp_relay_deletes_failed(pl->relay, bj->dels, bj->ndel);
    bj->dels = NULL;
    for (size_t i = 0; i < n; i++) {
      count(pl, "error");
      pl->api->respond_error(bj->items[i]->req, 503, "server is shutting down");
    }
    batch_release(&bj->base);
  }
}

static void batch_enqueue(cp_plugin *pl, post_job *pj) {
  pj->base.pl = pl;
  pj->qnext = NULL;
  if (pl->ins_tail) pl->ins_tail->qnext = pj;
  else pl->ins_head = pj;
  pl->ins_tail = pj;
  if (!pl->ins_busy) batch_submit(pl);
}

/* ---- conversation state after the answer (stores with conv_apply) ----
 *
 * The MongoDB store has no transaction to put a message and its
 * conversation updates in, and on FerretDB those updates cost more than
 * the insert: they run after the POSTs are answered, one job at a time
 * over everything inserted meanwhile (under load one job covers many
 * batches; the updates per conversation do not grow with its messages).
 * Under load (a job that covered CONV_BUSY messages or more) the next job
 * starts CONV_PAUSE_MS after the last one, so each covers more messages
 * for the same number of updates (one or two per conversation), unless a
 * read is waiting.  A conversation list or a read mark waits for the job
 * that covers the messages answered before it arrived, so a client reads
 * its own writes. */

#define CONV_BUSY 64
#define CONV_PAUSE_MS 200

typedef struct cp_conv_waiter {
  struct cp_conv_waiter *next;
  notifd_req *req;
  cp_job *job;
  uint64_t gen; /* runs once conv_done_gen reaches it */
} cp_conv_waiter;

typedef struct conv_apply_job {
  cp_job base;
  chat_message *msgs;
  chat_message **ptrs;
  size_t n;
  uint64_t gen;
  int rc;
  char err[256];
} conv_apply_job;

static void conv_apply_work(cp_job *j) {
  conv_apply_job *cj = (conv_apply_job *)j;
  cp_store *s = j->pl->store;
  cj->rc = s->ops->conv_apply(s, cj->ptrs, cj->n, cj->err, sizeof cj->err);
}

static void conv_apply_release(cp_job *j) {
  conv_apply_job *cj = (conv_apply_job *)j;
  for (size_t i = 0; i < cj->n; i++) chat_message_free(&cj->msgs[i]);
  free(cj->msgs);
  free(cj->ptrs);
  free(cj);
}

static void conv_submit(cp_plugin *pl);

/* Runs the parked reads whose messages are covered now. */
static void conv_wake(cp_plugin *pl) {
  cp_conv_waiter **pp = &pl->conv_waiters;
  while (*pp) {
    cp_conv_waiter *w = *pp;
    if (w->gen > pl->conv_done_gen) {
      pp = &w->next;
      continue;
    }
    *pp = w->next;
    cp_job_submit_or_503(pl, w->req, w->job);
    free(w);
  }
}

static void on_conv_timer(notifd_timer *t, void *ud) {
  cp_plugin *pl = ud;
  pl->api->timer_stop(t);
  pl->conv_timer = NULL;
  if (!pl->conv_busy && pl->conv_n) conv_submit(pl);
}

static void conv_apply_done(cp_job *j) {
  conv_apply_job *cj = (conv_apply_job *)j;
  cp_plugin *pl = j->pl;
  size_t n = cj->n;
  pl->conv_busy = 0;
  if (cj->rc < 0)
    pl->api->log(pl->self, NOTIFD_LOG_WARN, "conversation state of %zu messages: %s", cj->n,
                 cj->err);
  if (cj->gen > pl->conv_done_gen) pl->conv_done_gen = cj->gen;
  conv_apply_release(j);
  conv_wake(pl);
  if (!pl->conv_n || pl->conv_timer) return;
  if (n < CONV_BUSY || pl->conv_waiters ||
      pl->api->timer_start(pl->self, CONV_PAUSE_MS, 0, on_conv_timer, pl, &pl->conv_timer) < 0) {
    pl->conv_timer = NULL;
    conv_submit(pl);
  }
}

static void conv_submit(cp_plugin *pl) {
  conv_apply_job *cj = calloc(1, sizeof *cj);
  chat_message **ptrs = calloc(pl->conv_n ? pl->conv_n : 1, sizeof *ptrs);
  if (!cj || !ptrs) {
    free(cj);
    free(ptrs);
    return; /* tried again after the next batch */
  }
  cj->msgs = pl->conv_q;
  cj->n = pl->conv_n;
  cj->ptrs = ptrs;
  for (size_t i = 0; i < cj->n; i++) ptrs[i] = &cj->msgs[i];
  cj->gen = pl->conv_queued_gen;
  pl->conv_q = NULL;
  pl->conv_n = pl->conv_cap = 0;
  cj->base.work = conv_apply_work;
  cj->base.done = conv_apply_done;
  cj->base.release = conv_apply_release;
  pl->conv_busy = 1;
  if (cp_job_submit(pl, &cj->base) < 0) { /* shutting down */
    pl->conv_busy = 0;
    conv_apply_release(&cj->base);
  }
}

void cp_conv_queue(cp_plugin *pl, chat_message *const *m, const int *rc, size_t n) {
  size_t add = 0;
  for (size_t i = 0; i < n; i++) add += rc[i] == 0;
  if (!add) return;
  if (pl->conv_n + add > pl->conv_cap) {
    size_t cap = pl->conv_cap ? pl->conv_cap : 256;
    while (cap < pl->conv_n + add) cap *= 2;
    chat_message *v = realloc(pl->conv_q, cap * sizeof *v);
    if (!v) {
      pl->api->log(pl->self, NOTIFD_LOG_WARN,
                   "conversation state of %zu messages skipped: out of memory", add);
      return;
    }
    pl->conv_q = v;
    pl->conv_cap = cap;
  }
  for (size_t i = 0; i < n; i++) {
    if (rc[i] != 0) continue;
    chat_message *d = &pl->conv_q[pl->conv_n];
    chat_message_init(d);
    if (chat_message_copy(d, m[i]) == 0) pl->conv_n++;
  }
  pl->conv_queued_gen++;
  if (!pl->conv_busy && !pl->conv_timer && pl->conv_n) conv_submit(pl);
}

void cp_submit_after_conv(cp_plugin *pl, notifd_req *req, cp_job *j) {
  if (pl->conv_done_gen >= pl->conv_queued_gen) {
    cp_job_submit_or_503(pl, req, j);
    return;
  }
  cp_conv_waiter *w = calloc(1, sizeof *w);
  if (!w) {
    cp_job_submit_or_503(pl, req, j); /* reads what is there */
    return;
  }
  w->req = req;
  w->job = j;
  w->gen = pl->conv_queued_gen;
  w->next = pl->conv_waiters;
  pl->conv_waiters = w;
  if (pl->conv_timer && !pl->conv_busy) { /* a read waits: no pause */
    pl->api->timer_stop(pl->conv_timer);
    pl->conv_timer = NULL;
    conv_submit(pl);
  }
}

void cp_conv_drop(cp_plugin *pl) {
  for (size_t i = 0; i < pl->conv_n; i++) chat_message_free(&pl->conv_q[i]);
  free(pl->conv_q);
  pl->conv_q = NULL;
  pl->conv_n = pl->conv_cap = 0;
  while (pl->conv_waiters) {
    cp_conv_waiter *w = pl->conv_waiters;
    pl->conv_waiters = w->next;
    w->job->pl = pl;
    w->job->release(w->job);
    free(w);
  }
}

void cp_http_drop_queued(cp_plugin *pl) {
  while (pl->ins_head) {
    post_job *pj = pl->ins_head;
    pl->ins_head = pj->qnext;
    post_release(&pj->base);
  }
  pl->ins_tail = NULL;
}

static void on_post(notifd_req *req, void *ud) {
  cp_plugin *pl = ud;
  const notifd_api *api = pl->api;
  /* The common body binds without jansson; anything else (and every error
   * answer) takes the host's parse and chat_message_bind. */
  size_t len = 0;
  const void *raw = api->req_body(req, &len);
  chat_message fast;
  int bound = raw && chat_message_bind_fast(raw, len, &fast);
  /* The body is read here with JSON_ALLOW_NUL: Go stores "\u0000" in a
   * message's content.  What this reading refuses the host's refuses too,
   * and answers 400 with its own text. */
  json_t *body = NULL;
  if (!bound && !(body = json_loadb(raw ? raw : "", len,
                                    JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL,
                                    NULL))) {
    if (api->req_json_or_400(req)) api->respond_error(req, 400, "invalid JSON");
    count(pl, "invalid");
    return;
  }
  post_job *pj = calloc(1, sizeof *pj);
  if (!pj) {
    if (bound) chat_message_free(&fast);
    json_decref(body);
    count(pl, "error");
    api->respond_error(req, 500, "out of memory");
    return;
  }
  chat_message_init(&pj->want);
  pc_buf err;
  pc_buf_init(&err);
  int rc = CHAT_BIND_OK;
  if (bound) pj->msg = fast;
  else rc = chat_message_bind(body, &pj->msg, &err);
  json_decref(body);
  if (rc == CHAT_BIND_OK) {
    chat_limits lim = {(size_t)pl->max_content_bytes, (size_t)pl->max_id_bytes,
                       pl->verify_stream_id};
    rc = chat_message_check(&pj->msg, &lim, &err);
  }
  if (rc != CHAT_BIND_OK) {
    respond_bind_error(pl, req, rc, &err);
    pc_buf_free(&err);
    post_release(&pj->base);
    return;
  }
  pc_buf_free(&err);
  const char *sub = api->req_auth_subject(req);
  if (pl->auth == NOTIFD_AUTH_TOKEN && (!sub || strcmp(sub, pj->msg.sender_id) != 0)) {
    count(pl, "forbidden");
    api->respond_error(req, 403, "sender_id must be the authenticated user");
    post_release(&pj->base);
    return;
  }
  if (!*pj->msg.message_id) {
    char oid[CHAT_OID_HEX_LEN + 1];
    chat_oid_next(&pl->oids, chat_time_now_ms(), oid);
    free(pj->msg.message_id);
    pj->msg.message_id = strdup(oid);
    pj->msg.id_is_oid = 1;
  }
  if (!pj->msg.message_id || chat_message_copy(&pj->want, &pj->msg) < 0) {
    count(pl, "error");
    api->respond_error(req, 500, "out of memory");
    post_release(&pj->base);
    return;
  }
  pj->req = req;
  pj->t0 = pc_mono_ns();
  pj->base.work = post_work;
  pj->base.done = post_done;
  pj->base.release = post_release;
  if (pl->store->ops->insert_batch) {
    batch_enqueue(pl, pj);
    return;
  }
  if (cp_job_submit(pl, &pj->base) < 0) {
    count(pl, "error");
    api->respond_error(req, 503, "server is shutting down");
    post_release(&pj->base);
  }
}

/* ---- GET one message ---- */

typedef struct get_job {
  cp_job base;
  notifd_req *req;
  char *id;
  char *subject; /* token auth: the caller must take part in the message */
  chat_message msg;
  int rc;
  int64_t t0;
  char err[256];
} get_job;

static void get_work(cp_job *j) {
  get_job *gj = (get_job *)j;
  cp_store *s = j->pl->store;
  gj->rc = s->ops->get(s, gj->id, &gj->msg, gj->err, sizeof gj->err);
}

static void get_release(cp_job *j) {
  get_job *gj = (get_job *)j;
  chat_message_free(&gj->msg);
  free(gj->id);
  free(gj->subject);
  free(gj);
}

static void get_done(cp_job *j) {
  get_job *gj = (get_job *)j;
  cp_plugin *pl = j->pl;
  cp_observe_store(pl, "get", gj->t0);
  if (gj->rc < 0) {
    pl->api->log(pl->self, NOTIFD_LOG_ERROR, "reading message %s failed: %s", gj->id, gj->err);
    pl->api->respond_error(gj->req, 500, "failed to read message");
  } else if (gj->rc == 0 || (gj->subject && strcmp(gj->subject, gj->msg.sender_id) != 0 &&
                             strcmp(gj->subject, gj->msg.receiver_id) != 0)) {
    pl->api->respond_error(gj->req, 404, "message not found");
  } else {
    respond_message(pl, gj->req, 200, &gj->msg);
  }
  get_release(j);
}

static void on_get_message(notifd_req *req, void *ud) {
  cp_plugin *pl = ud;
  const notifd_api *api = pl->api;
  const char *id = api->req_param(req, "message_id");
  if (!id || !*id || strlen(id) > (size_t)pl->max_id_bytes) {
    api->respond_error(req, 404, "message not found");
    return;
  }
  get_job *gj = calloc(1, sizeof *gj);
  const char *sub = api->req_auth_subject(req);
  if (gj) {
    chat_message_init(&gj->msg);
    gj->id = strdup(id);
    if (pl->auth == NOTIFD_AUTH_TOKEN) gj->subject = strdup(sub ? sub : "");
  }
  if (!gj || !gj->id || (pl->auth == NOTIFD_AUTH_TOKEN && !gj->subject)) {
    if (gj) get_release(&gj->base);
    api->respond_error(req, 500, "out of memory");
    return;
  }
  gj->req = req;
  gj->t0 = pc_mono_ns();
  gj->base.work = get_work;
  gj->base.done = get_done;
  gj->base.release = get_release;
  cp_job_submit_or_503(pl, req, &gj->base);
}

/* ---- GET history ---- */

typedef struct hist_job {
  cp_job base;
  notifd_req *req;
  char *stream_id;
  cp_cursor before, after;
  size_t limit;
  cp_page page;
  int rc;
  int64_t t0;
  char err[256];
} hist_job;

static void hist_work(cp_job *j) {
  hist_job *hj = (hist_job *)j;
  cp_store *s = j->pl->store;
  hj->rc = s->ops->history(s, hj->stream_id, &hj->before, &hj->after, hj->limit, &hj->page,
                           hj->err, sizeof hj->err);
}

static void hist_release(cp_job *j) {
  hist_job *hj = (hist_job *)j;
  free(hj->stream_id);
  cp_cursor_free(&hj->before);
  cp_cursor_free(&hj->after);
  cp_page_free(&hj->page);
  free(hj);
}

static void hist_done(cp_job *j) {
  hist_job *hj = (hist_job *)j;
  cp_plugin *pl = j->pl;
  cp_observe_store(pl, "history", hj->t0);
  if (hj->rc < 0) {
    pl->api->log(pl->self, NOTIFD_LOG_ERROR, "history of %s failed: %s", hj->stream_id, hj->err);
    pl->api->respond_error(hj->req, 500, "failed to read history");
    hist_release(j);
    return;
  }
  pc_buf b;
  pc_buf_init(&b);
  pc_buf_puts(&b, "{\"messages\":[");
  int bad = 0;
  for (size_t i = 0; i < hj->page.n && !bad; i++) {
    if (i) pc_buf_putc(&b, ',');
    bad = chat_message_gojson(&hj->page.msgs[i], &b) < 0;
  }
  pc_buf_puts(&b, "],\"next_before\":");
  if (hj->page.next.kind != CP_CUR_NONE) {
    char *tok = cp_cursor_format(&hj->page.next);
    if (tok) chat_json_str(&b, tok, strlen(tok), CHAT_JSON_GO);
    else bad = 1;
    free(tok);
  } else {
    pc_buf_puts(&b, "null");
  }
  pc_buf_putc(&b, '}');
  if (bad || b.oom)
    pl->api->respond_error(hj->req, 500, "failed to serialize history");
  else
    pl->api->respond(hj->req, 200, JSON_CT, b.data, b.len);
  pc_buf_free(&b);
  hist_release(j);
}

size_t cp_parse_limit(cp_plugin *pl, const char *s) {
  if (!s || !*s) return (size_t)pl->history_default_limit;
  int64_t v;
  if (chat_parse_int64(s, &v) < 0 || v < 1) return 0;
  return v > pl->history_max_limit ? (size_t)pl->history_max_limit : (size_t)v;
}

const char *cp_acting_user(cp_plugin *pl, notifd_req *req, const char *given) {
  const notifd_api *api = pl->api;
  if (given && (!*given || strlen(given) > (size_t)pl->max_id_bytes)) {
    api->respond_error(req, 400, "user_id: must be a non-empty id");
    return NULL;
  }
  if (pl->auth == NOTIFD_AUTH_TOKEN) {
    const char *sub = api->req_auth_subject(req);
    if (!sub || (given && strcmp(given, sub) != 0)) {
      api->respond_error(req, 403, "user_id must be the authenticated user");
      return NULL;
    }
    return sub;
  }
  if (!given) api->respond_error(req, 400, "user_id: required");
  return given;
}

static void on_history(notifd_req *req, void *ud) {
  cp_plugin *pl = ud;
  const notifd_api *api = pl->api;
  const char *stream = api->req_param(req, "stream_id");
  if (!stream || !*stream || strlen(stream) > (size_t)pl->max_id_bytes) {
    api->respond_error(req, 400, "stream_id: required");
    return;
  }
  if (pl->auth == NOTIFD_AUTH_TOKEN) {
    /* Same rules as every user route: a user_id, if given, is the caller. */
    if (!cp_acting_user(pl, req, api->req_query(req, "user_id"))) return;
    const char *sub = api->req_auth_subject(req), *peer = api->req_query(req, "peer_id");
    char want[PC_STREAM_ID_LEN + 1];
    if (!peer || !*peer) {
      api->respond_error(req, 400, "peer_id: required with token authentication");
      return;
    }
    if (!sub || pc_stream_id(sub, strlen(sub), peer, strlen(peer), want) < 0 ||
        strcmp(want, stream) != 0) {
      api->respond_error(req, 403, "not a participant of this stream");
      return;
    }
  }
  size_t limit = cp_parse_limit(pl, api->req_query(req, "limit"));
  if (!limit) {
    api->respond_error(req, 400, "limit: expected a positive integer");
    return;
  }
  hist_job *hj = calloc(1, sizeof *hj);
  if (!hj) {
    api->respond_error(req, 500, "out of memory");
    return;
  }
  const char *names[] = {"before", "after"};
  cp_cursor *curs[] = {&hj->before, &hj->after};
  for (int i = 0; i < 2; i++) {
    const char *v = api->req_query(req, names[i]);
    if (v && *v && cp_cursor_parse(v, curs[i]) < 0) {
      char msg[96];
      snprintf(msg, sizeof msg, "%s: expected a cursor from next_before or an RFC 3339 time",
               names[i]);
      api->respond_error(req, 400, msg);
      hist_release(&hj->base);
      return;
    }
  }
  hj->stream_id = strdup(stream);
  if (!hj->stream_id) {
    api->respond_error(req, 500, "out of memory");
    hist_release(&hj->base);
    return;
  }
  hj->limit = limit;
  hj->req = req;
  hj->t0 = pc_mono_ns();
  hj->base.work = hist_work;
  hj->base.done = hist_done;
  hj->base.release = hist_release;
  cp_job_submit_or_503(pl, req, &hj->base);
}

int cp_http_register(cp_plugin *pl) {
  const notifd_api *api = pl->api;
  /* Room for the content limit even if every byte arrives as \uXXXX. */
  notifd_route_opts post = {sizeof post, pl->auth, (uint64_t)pl->max_content_bytes * 6 + 65536};
  notifd_route_opts get = {sizeof get, pl->auth, 0};
  int rc = api->http_route(pl->self, "POST", "/chat/persist", on_post, pl, &post);
  if (rc == 0) rc = api->http_route(pl->self, "POST", "/chat/messages", on_post, pl, &post);
  if (rc == 0)
    rc = api->http_route(pl->self, "GET", "/chat/messages/{message_id}", on_get_message, pl, &get);
  if (rc == 0)
    rc = api->http_route(pl->self, "GET", "/chat/streams/{stream_id}/messages", on_history, pl,
                         &get);
  if (rc == 0) rc = cp_state_register(pl);
  return rc;
}
