/* The change relay: moves captured changes from the store to the bus.
 *
 * One cycle at a time, in one of two modes:
 *
 * Catch-up (at start, after a failure, and always for MongoDB): fetch up to
 * relay_batch unpublished changes (worker), produce them in order (loop),
 * and once every produce callback reported, confirm the acknowledged ones in
 * the store (worker): the outbox rows (SQLite) or outbox collection records
 * (MongoDB) are deleted only after the bus accepted them.
 *
 * Live (a store with group commit - the SQLite outbox, the MongoDB outbox
 * collection - once a fetch found the outbox drained): the insert batches
 * hand their committed change records over
 * (cp_relay_committed) and they are produced at once, nothing is read back.
 * Up to RELAY_LIVE_INFLIGHT batches may wait for the bus's acknowledgement
 * together (a Kafka acknowledgement takes milliseconds; the bus keeps the
 * order of a partition), so a commit never waits for the previous batch's
 * acknowledgement.  The outbox rows of acknowledged records are deleted by
 * the next insert batch's transaction (cp_relay_take_deletes), or by a
 * delete-only job when no batch comes within RELAY_DELETE_MS.  A produce
 * error drops back to catch-up (once the batches in flight reported), which
 * publishes from the outbox.
 *
 * Anything not confirmed - a produce error, a crash or kill -9 at any point
 * - is still in the outbox and is published again by a later catch-up cycle
 * or the next start, so delivery is at-least-once and consumers dedupe by
 * record key.  Order: records are produced in commit order; a failed record
 * is retried after later ones of the same batch went out.
 *
 * Wake-ups: a commit in this process (kick), the start, a backoff timer
 * after failures, and in poll mode a periodic timer (for records written
 * by other processes).  A live relay in poll mode sweeps (one catch-up
 * cycle, then live again) at most every RELAY_SWEEP_MS and only when
 * nothing is waiting or in flight, so records other writers left in the
 * outbox go out too, without holding up its own.
 *
 * A catch-up cycle never sleeps while a backlog remains: a fetch that came
 * back full starts the next one as soon as its records are confirmed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_internal.h"

/* Confirmed outbox rows wait this long for an insert batch to delete them
 * (SQLite: the delete rides in the batch's transaction).  MongoDB deletes
 * in a command of its own, at most every RELAY_DELETE_MONGO_MS: on
 * FerretDB every command costs about a millisecond of CPU, and records
 * acknowledged but not yet deleted only matter after a crash (published
 * again; consumers dedupe by key). */
#define RELAY_DELETE_MS 10
#define RELAY_DELETE_MONGO_MS 200
/* Committed changes kept in memory while catching up; beyond, they are
 * dropped and read back from the outbox instead. */
#define RELAY_QUEUE_MAX 65536
/* Live batches produced and not yet acknowledged at a time. */
#define RELAY_LIVE_INFLIGHT 8
/* Poll mode, live: the least time between two sweeps of the outbox. */
#define RELAY_SWEEP_MS 5000

typedef struct relay_batch relay_batch;

typedef struct item_ctx {
  relay_batch *b;
  size_t i;
} item_ctx;

struct relay_batch {
  cp_relay *r;
  cp_change *items;
  size_t n;
  size_t outstanding; /* produce callbacks still to come */
  item_ctx *ctx;
  int live;           /* taken from the live queue (no confirm job) */
  relay_batch *prev, *next; /* live batches in flight */
  int short_fetch;    /* catch-up: the fetch found fewer than relay_batch rows */
  unsigned drops;     /* r->q_drops when the fetch started */
};

struct cp_relay {
  cp_plugin *pl;
  int busy;             /* a catch-up cycle is under way */
  int kicked;           /* a kick arrived during the cycle */
  int inflight;         /* live batches waiting for the bus */
  int failing;          /* last cycle failed (log state changes only) */
  notifd_timer *timer;  /* pending delay or backoff */
  notifd_timer *poll;   /* poll mode */
  relay_batch *producing; /* catch-up batch being produced */
  relay_batch *live_batches; /* live batches in flight (linked by next) */
  /* live mode */
  int can_live;         /* the store hands committed changes over */
  int live;
  cp_change *q;         /* committed, not yet produced: q[qhead .. qhead+qn) */
  size_t qhead, qn, qcap;
  unsigned q_drops;     /* times the queue overflowed */
  int64_t fetched_max;  /* highest outbox seq a catch-up fetch returned */
  int64_t *del;         /* acknowledged, outbox rows not yet deleted */
  size_t ndel, capdel;
  int deleting;         /* a delete-only job is in flight */
  int dels_in_batches;  /* insert batches delete acknowledged rows (SQLite) */
  int live_failed;      /* a live batch failed: catch up after the others */
  notifd_timer *del_timer;
  int64_t last_sweep_ns; /* poll mode, live: the last sweep */
};

typedef struct fetch_job {
  cp_job base;
  cp_relay *r;
  cp_change *items;
  size_t n;
  unsigned drops;
  int rc;
  char err[256];
} fetch_job;

typedef struct confirm_job {
  cp_job base;
  relay_batch *b;
  int rc;
  int any_failed;
  char err[256];
} confirm_job;

typedef struct delete_job {
  cp_job base;
  cp_relay *r;
  int64_t *seqs;
  size_t n;
  int rc;
  int then_fetch;  /* part of a catch-up cycle: fetch next */
  char err[256];
} delete_job;

static void cycle_now(cp_relay *r);
static void fetch_now(cp_relay *r);
static void live_pump(cp_relay *r);

static void batch_free(relay_batch *b) {
  if (!b) return;
  cp_changes_free(b->items, b->n);
  free(b->ctx);
  free(b);
}

static void on_timer(notifd_timer *t, void *ud) {
  cp_relay *r = ud;
  r->pl->api->timer_stop(t); /* one-shot: freed when this callback returns */
  r->timer = NULL;
  if (r->live) live_pump(r);
  else if (!r->busy) cycle_now(r);
}

static void arm(cp_relay *r, int64_t ms) {
  if (r->timer) return;
  if (r->pl->api->timer_start(r->pl->self, ms, 0, on_timer, r, &r->timer) < 0) r->timer = NULL;
}

static void note_failure(cp_relay *r, const char *what, const char *err) {
  cp_plugin *pl = r->pl;
  if (!r->failing)
    pl->api->log(pl->self, NOTIFD_LOG_WARN, "change relay: %s failed (%s); retrying every %lld ms",
                 what, err, (long long)pl->relay_retry_ms);
  r->failing = 1;
}

/* End of a cycle. */
static void cycle_end(cp_relay *r, int failed, int again) {
  r->busy = 0;
  if (failed) {
    arm(r, r->pl->relay_retry_ms);
    return;
  }
  if (r->failing) r->pl->api->log(r->pl->self, NOTIFD_LOG_INFO, "change relay: recovered");
  r->failing = 0;
  if (r->live) live_pump(r);
  else if (again || r->kicked) cycle_now(r);
}

/* ---- the live queue ---- */

static void q_clear(cp_relay *r) {
  cp_changes_free(r->q, r->qhead + r->qn); /* items before qhead are already zeroed */
  r->q = NULL;
  r->qhead = r->qn = r->qcap = 0;
}

/* Back to catch-up: the outbox holds everything not yet deleted. */
static void go_catch_up(cp_relay *r) {
  r->live = 0;
  q_clear(r);
}

void cp_relay_committed(cp_relay *r, cp_change *items, size_t n) {
  if (!r || !r->can_live) return;
  size_t add = 0;
  for (size_t i = 0; i < n; i++) add += items[i].key != NULL;
  if (!add) return;
  if (r->qn + add > RELAY_QUEUE_MAX) { /* read them back from the outbox instead */
    r->q_drops++;
    q_clear(r);
    r->live = 0;
    return;
  }
  if (r->qhead && r->qhead + r->qn + add > r->qcap) { /* compact */
    memmove(r->q, r->q + r->qhead, r->qn * sizeof *r->q);
    r->qhead = 0;
  }
  if (r->qn + add > r->qcap) {
    size_t cap = r->qcap ? r->qcap : 64;
    while (cap < r->qn + add) cap *= 2;
    cp_change *v = realloc(r->q, cap * sizeof *v);
    if (!v) {
      r->q_drops++;
      q_clear(r);
      r->live = 0;
      return;
    }
    r->q = v;
    r->qcap = cap;
  }
  for (size_t i = 0; i < n; i++) {
    if (!items[i].key) continue;
    r->q[r->qhead + r->qn++] = items[i];
    memset(&items[i], 0, sizeof items[i]); /* moved */
  }
}

/* ---- deletes of acknowledged outbox rows (live mode) ---- */

static void delete_release(cp_job *j) {
  delete_job *dj = (delete_job *)j;
  free(dj->seqs);
  free(dj);
}

static int del_add(cp_relay *r, const int64_t *seqs, size_t n) {
  if (r->ndel + n > r->capdel) {
    size_t cap = r->capdel ? r->capdel : 256;
    while (cap < r->ndel + n) cap *= 2;
    int64_t *v = realloc(r->del, cap * sizeof *v);
    if (!v) return -1; /* the rows stay; the next start publishes them again */
    r->del = v;
    r->capdel = cap;
  }
  memcpy(r->del + r->ndel, seqs, n * sizeof *seqs);
  r->ndel += n;
  return 0;
}

static int take_deletes(cp_relay *r, int64_t **seqs, size_t *n) {
  *seqs = NULL;
  *n = 0;
  if (!r || !r->ndel) return 0;
  *seqs = r->del;
  *n = r->ndel;
  r->del = NULL;
  r->ndel = r->capdel = 0;
  return 1;
}

int cp_relay_take_deletes(cp_relay *r, int64_t **seqs, size_t *n) {
  if (r && !r->dels_in_batches) {
    *seqs = NULL;
    *n = 0;
    return 0;
  }
  return take_deletes(r, seqs, n);
}

void cp_relay_deletes_failed(cp_relay *r, int64_t *seqs, size_t n) {
  if (r && n) del_add(r, seqs, n);
  free(seqs);
}

static void delete_work(cp_job *j) {
  delete_job *dj = (delete_job *)j;
  cp_store *s = j->pl->store;
  dj->rc = s->ops->insert_batch(s, NULL, NULL, 0, NULL, dj->seqs, dj->n, dj->err, sizeof dj->err);
}

static void delete_done(cp_job *j) {
  delete_job *dj = (delete_job *)j;
  cp_relay *r = dj->r;
  int then_fetch = dj->then_fetch;
  r->deleting = 0;
  if (dj->rc < 0) {
    r->pl->api->metric_add(r->pl->m.relay_errors, NULL, 1);
    note_failure(r, "deleting published changes", dj->err);
    cp_relay_deletes_failed(r, dj->seqs, dj->n);
    dj->seqs = NULL;
    delete_release(j);
    if (then_fetch) cycle_end(r, 1, 0);
    return;
  }
  delete_release(j);
  if (then_fetch) fetch_now(r);
  else if (r->kicked && !r->busy) cycle_now(r);
}

/* Submits the pending deletes; 0, or < 0 when nothing was submitted. */
static int delete_submit(cp_relay *r, int then_fetch) {
  if (!r->ndel || r->deleting) return -1;
  delete_job *dj = calloc(1, sizeof *dj);
  if (!dj) return -1;
  dj->r = r;
  dj->then_fetch = then_fetch;
  take_deletes(r, &dj->seqs, &dj->n);
  dj->base.work = delete_work;
  dj->base.done = delete_done;
  dj->base.release = delete_release;
  r->deleting = 1;
  if (cp_job_submit(r->pl, &dj->base) < 0) {
    r->deleting = 0;
    cp_relay_deletes_failed(r, dj->seqs, dj->n);
    free(dj);
    return -1;
  }
  return 0;
}

static void on_del_timer(notifd_timer *t, void *ud) {
  cp_relay *r = ud;
  r->pl->api->timer_stop(t);
  r->del_timer = NULL;
  delete_submit(r, 0);
}

/* Acknowledged live records: their rows go with the next insert batch, or
 * alone if none comes soon. */
static void deletes_pending(cp_relay *r) {
  if (!r->ndel || r->del_timer) return;
  if (r->pl->api->timer_start(r->pl->self,
                              r->dels_in_batches ? RELAY_DELETE_MS : RELAY_DELETE_MONGO_MS, 0,
                              on_del_timer, r, &r->del_timer) < 0)
    r->del_timer = NULL;
}

/* ---- confirm (catch-up) ---- */

static void confirm_work(cp_job *j) {
  confirm_job *cj = (confirm_job *)j;
  cp_store *s = j->pl->store;
  cj->rc = s->ops->changes_done(s, cj->b->items, cj->b->n, cj->err, sizeof cj->err);
}

static void confirm_release(cp_job *j) {
  confirm_job *cj = (confirm_job *)j;
  batch_free(cj->b);
  free(cj);
}

/* A catch-up cycle that found the outbox drained (and no committed change
 * was dropped meanwhile) switches to live: what was committed after the
 * fetch's snapshot is in the queue; what it returned is published. */
static void maybe_go_live(cp_relay *r, int short_fetch, unsigned drops) {
  if (!r->can_live || r->live || !short_fetch || drops != r->q_drops) return;
  while (r->qn && r->q[r->qhead].seq <= r->fetched_max) {
    cp_change *c = &r->q[r->qhead];
    free(c->doc_id);
    free(c->key);
    free(c->value);
    memset(c, 0, sizeof *c);
    r->qhead++;
    r->qn--;
  }
  r->live = 1;
}

static void confirm_done(cp_job *j) {
  confirm_job *cj = (confirm_job *)j;
  cp_relay *r = cj->b->r;
  int failed = cj->any_failed;
  if (cj->rc < 0) {
    r->pl->api->metric_add(r->pl->m.relay_errors, NULL, 1);
    note_failure(r, "marking published changes", cj->err);
    failed = 1;
  }
  int short_fetch = cj->b->short_fetch;
  unsigned drops = cj->b->drops;
  confirm_release(j);
  if (!failed) maybe_go_live(r, short_fetch, drops);
  cycle_end(r, failed, !failed && !short_fetch);
}

static void batch_complete(relay_batch *b) {
  cp_relay *r = b->r;
  cp_plugin *pl = r->pl;
  if (b->live) {
    if (b->prev) b->prev->next = b->next;
    else r->live_batches = b->next;
    if (b->next) b->next->prev = b->prev;
    r->inflight--;
  } else {
    r->producing = NULL;
  }
  size_t ok = 0;
  int32_t first_err = 0;
  for (size_t i = 0; i < b->n; i++) {
    if (b->items[i].status == 0) ok++;
    else if (!first_err) first_err = b->items[i].status;
  }
  if (ok) pl->api->metric_add(pl->m.published, NULL, (double)ok);
  if (ok < b->n) {
    pl->api->metric_add(pl->m.publish_errors, NULL, (double)(b->n - ok));
    char why[64];
    snprintf(why, sizeof why, "bus error %d", (int)first_err);
    note_failure(r, "publishing", why);
  }
  if (b->live) {
    /* Rows of acknowledged records are deleted later; failed ones stay in
     * the outbox, which catch-up reads once every live batch reported. */
    for (size_t i = 0; i < b->n; i++)
      if (b->items[i].status == 0) del_add(r, &b->items[i].seq, 1);
    if (ok < b->n) {
      go_catch_up(r);
      r->live_failed = 1;
    }
    batch_free(b);
    deletes_pending(r);
    if (r->live) {
      live_pump(r);
    } else if (!r->inflight && !r->busy) {
      int failed = r->live_failed;
      r->live_failed = 0;
      cycle_end(r, failed, 1);
    }
    return;
  }
  if (ok == 0) {
    batch_free(b);
    cycle_end(r, 1, 0);
    return;
  }
  confirm_job *cj = calloc(1, sizeof *cj);
  if (!cj) {
    batch_free(b);
    cycle_end(r, 1, 0);
    return;
  }
  cj->b = b;
  cj->any_failed = ok < b->n;
  cj->base.work = confirm_work;
  cj->base.done = confirm_done;
  cj->base.release = confirm_release;
  if (cp_job_submit(pl, &cj->base) < 0) {
    confirm_release(&cj->base);
    r->busy = 0; /* shutting down: the next start publishes again */
  }
}

/* ---- produce ---- */

static void on_produced(int32_t status, void *ud) {
  item_ctx *c = ud;
  relay_batch *b = c->b;
  b->items[c->i].status = status;
  if (--b->outstanding == 0) batch_complete(b);
}

static void produce_batch(cp_relay *r, relay_batch *b) {
  cp_plugin *pl = r->pl;
  size_t n = b->n;
  cp_change *items = b->items;
  b->r = r;
  b->ctx = calloc(n ? n : 1, sizeof *b->ctx);
  if (!b->ctx) {
    int live = b->live;
    batch_free(b);
    if (live) { /* the items are still in the outbox */
      go_catch_up(r);
      if (!r->inflight && !r->busy) cycle_end(r, 1, 0);
      else r->live_failed = 1;
      return;
    }
    cycle_end(r, 1, 0);
    return;
  }
  b->outstanding = n + 1; /* +1 until the loop below finished */
  if (b->live) {
    b->prev = NULL;
    b->next = r->live_batches;
    if (r->live_batches) r->live_batches->prev = b;
    r->live_batches = b;
    r->inflight++;
  } else {
    r->producing = b;
  }
  for (size_t i = 0; i < n; i++) {
    b->ctx[i].b = b;
    b->ctx[i].i = i;
    int rc = pl->api->bus_produce(pl->self, pl->change_topic, items[i].key, items[i].key_len,
                                  items[i].value, items[i].value_len, NULL, on_produced,
                                  &b->ctx[i]);
    if (rc < 0) {
      items[i].status = rc;
      b->outstanding--;
    }
  }
  if (--b->outstanding == 0) batch_complete(b);
}

/* ---- fetch (catch-up) ---- */

static void fetch_work(cp_job *j) {
  fetch_job *fj = (fetch_job *)j;
  cp_store *s = j->pl->store;
  fj->rc = s->ops->changes_fetch(s, (size_t)j->pl->relay_batch, &fj->items, &fj->n, fj->err,
                                 sizeof fj->err);
}

static void fetch_release(cp_job *j) {
  fetch_job *fj = (fetch_job *)j;
  cp_changes_free(fj->items, fj->n);
  free(fj);
}

static void fetch_done(cp_job *j) {
  fetch_job *fj = (fetch_job *)j;
  cp_relay *r = fj->r;
  if (fj->rc < 0) {
    r->pl->api->metric_add(r->pl->m.relay_errors, NULL, 1);
    note_failure(r, "reading unpublished changes", fj->err);
    fetch_release(j);
    cycle_end(r, 1, 0);
    return;
  }
  cp_change *items = fj->items;
  size_t n = fj->n;
  unsigned drops = fj->drops;
  fj->items = NULL;
  fj->n = 0;
  fetch_release(j);
  if (n == 0) {
    cp_changes_free(items, 0);
    maybe_go_live(r, 1, drops);
    cycle_end(r, 0, 0);
    return;
  }
  /* SQLite fetches in seq order; MongoDB in time order, own records with
   * their seq and other writers' with 0. */
  for (size_t i = 0; i < n; i++)
    if (items[i].seq > r->fetched_max) r->fetched_max = items[i].seq;
  relay_batch *b = calloc(1, sizeof *b);
  if (!b) {
    cp_changes_free(items, n);
    cycle_end(r, 1, 0);
    return;
  }
  b->items = items;
  b->n = n;
  b->short_fetch = n < (size_t)r->pl->relay_batch;
  b->drops = drops;
  produce_batch(r, b);
}

static void fetch_now(cp_relay *r) {
  fetch_job *fj = calloc(1, sizeof *fj);
  if (!fj) {
    cycle_end(r, 1, 0);
    return;
  }
  fj->r = r;
  fj->drops = r->q_drops;
  fj->base.work = fetch_work;
  fj->base.done = fetch_done;
  fj->base.release = fetch_release;
  if (cp_job_submit(r->pl, &fj->base) < 0) {
    fetch_release(&fj->base);
    r->busy = 0;
  }
}

/* ---- cycles ---- */

static void live_now(cp_relay *r) {
  size_t n = r->qn < (size_t)r->pl->relay_batch ? r->qn : (size_t)r->pl->relay_batch;
  relay_batch *b = calloc(1, sizeof *b);
  cp_change *items = b ? calloc(n, sizeof *items) : NULL;
  if (!b || !items) {
    free(b);
    go_catch_up(r);
    if (!r->inflight) cycle_end(r, 1, 0);
    else r->live_failed = 1;
    return;
  }
  memcpy(items, r->q + r->qhead, n * sizeof *items);
  memset(r->q + r->qhead, 0, n * sizeof *items);
  r->qhead += n;
  r->qn -= n;
  if (!r->qn) r->qhead = 0;
  b->items = items;
  b->n = n;
  b->live = 1;
  produce_batch(r, b);
}

/* Produces what was committed, as long as the bus keeps up. */
static void live_pump(cp_relay *r) {
  while (r->live && r->qn && r->inflight < RELAY_LIVE_INFLIGHT) live_now(r);
}

/* A catch-up cycle. */
static void cycle_now(cp_relay *r) {
  if (r->live) {
    live_pump(r);
    return;
  }
  r->busy = 1;
  r->kicked = 0;
  /* Catch-up reads the outbox: live batches must have reported and rows
   * already published must be gone first, or they would go out twice. */
  if (r->inflight || r->deleting) {
    r->busy = 0;
    r->kicked = 1; /* delete_done comes back */
    return;
  }
  if (r->ndel) {
    if (delete_submit(r, 1) < 0) cycle_end(r, 1, 0);
    return;
  }
  fetch_now(r);
}

/* ---- public ---- */

void cp_relay_kick(cp_relay *r) {
  if (r->busy) {
    r->kicked = 1;
    return;
  }
  if (r->timer) return; /* a delay or backoff is pending; it cycles */
  if (r->pl->relay_delay_ms > 0)
    arm(r, r->pl->relay_delay_ms);
  else if (r->live)
    live_pump(r);
  else
    cycle_now(r);
}

static void on_poll(notifd_timer *t, void *ud) {
  (void)t;
  cp_relay *r = ud;
  if (r->live) {
    int64_t now = pc_mono_ns();
    if (r->qn || r->inflight || r->busy || r->deleting || r->ndel || r->timer ||
        now - r->last_sweep_ns < (int64_t)RELAY_SWEEP_MS * 1000000)
      return;
    r->last_sweep_ns = now;
    go_catch_up(r);
    cycle_now(r);
    return;
  }
  cp_relay_kick(r);
}

void cp_relay_start(cp_relay *r) {
  cp_plugin *pl = r->pl;
  if (pl->relay_mode == CP_RELAY_POLL &&
      pl->api->timer_start(pl->self, pl->relay_poll_ms, pl->relay_poll_ms, on_poll, r,
                           &r->poll) < 0)
    pl->api->log(pl->self, NOTIFD_LOG_ERROR, "change relay: cannot start the poll timer");
  /* Whatever a previous run left unconfirmed goes out first. */
  cp_relay_kick(r);
}

int cp_relay_new(cp_plugin *pl, cp_relay **out) {
  cp_relay *r = calloc(1, sizeof *r);
  if (!r) return NOTIFD_ENOMEM;
  r->pl = pl;
  r->can_live = pl->relay_mode != CP_RELAY_NONE && pl->store->ops->insert_batch != NULL &&
                pl->store->ops->changes_fetch != NULL;
  r->dels_in_batches = !pl->mongo;
  r->last_sweep_ns = pc_mono_ns();
  *out = r;
  return 0;
}

/* At destroy: the host already stopped our timers and dropped pending
 * produce callbacks (unconfirmed changes are published after restart). */
void cp_relay_free(cp_relay *r) {
  if (!r) return;
  batch_free(r->producing);
  while (r->live_batches) {
    relay_batch *n = r->live_batches->next;
    batch_free(r->live_batches);
    r->live_batches = n;
  }
  q_clear(r);
  free(r->del);
  free(r);
}
