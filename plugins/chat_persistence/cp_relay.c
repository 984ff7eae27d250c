/* The change relay: moves captured changes from the store to the bus.
 *
 * One cycle at a time: fetch up to relay_batch unpublished changes (worker),
 * produce them in order (loop), and once every produce callback reported,
 * confirm the acknowledged ones in the store (worker): the outbox rows are
 * deleted (SQLite) or the documents marked _published (MongoDB) only after
 * the bus accepted them.  Anything not confirmed - a produce error, a crash
 * or kill -9 at any point - is published again by a later cycle or the next
 * start, so delivery is at-least-once and consumers dedupe by record key.
 * Order: records are produced in commit order; a failed record is retried
 * after later ones of the same batch went out.
 *
 * Wake-ups: a commit in this process (kick), the start, a backoff timer
 * after failures, and in poll mode a periodic timer (for documents written
 * by other processes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_internal.h"

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
};

struct cp_relay {
  cp_plugin *pl;
  int busy;             /* a fetch / produce / confirm cycle is under way */
  int kicked;           /* a kick arrived during the cycle */
  int failing;          /* last cycle failed (log state changes only) */
  notifd_timer *timer;  /* pending delay or backoff */
  notifd_timer *poll;   /* poll mode */
  relay_batch *producing;
};

typedef struct fetch_job {
  cp_job base;
  cp_relay *r;
  cp_change *items;
  size_t n;
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

static void fetch_now(cp_relay *r);

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
  if (!r->busy) fetch_now(r);
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
  if (again || r->kicked) fetch_now(r);
}

/* ---- confirm ---- */

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

static void confirm_done(cp_job *j) {
  confirm_job *cj = (confirm_job *)j;
  cp_relay *r = cj->b->r;
  int failed = cj->any_failed;
  if (cj->rc < 0) {
    r->pl->api->metric_add(r->pl->m.relay_errors, NULL, 1);
    note_failure(r, "marking published changes", cj->err);
    failed = 1;
  }
  confirm_release(j);
  cycle_end(r, failed, !failed);
}

static void batch_complete(relay_batch *b) {
  cp_relay *r = b->r;
  cp_plugin *pl = r->pl;
  r->producing = NULL;
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

static void produce_batch(cp_relay *r, cp_change *items, size_t n) {
  cp_plugin *pl = r->pl;
  relay_batch *b = calloc(1, sizeof *b);
  item_ctx *ctx = calloc(n, sizeof *ctx);
  if (!b || !ctx) {
    free(b);
    free(ctx);
    cp_changes_free(items, n);
    cycle_end(r, 1, 0);
    return;
  }
  b->r = r;
  b->items = items;
  b->n = n;
  b->ctx = ctx;
  b->outstanding = n + 1; /* +1 until the loop below finished */
  r->producing = b;
  for (size_t i = 0; i < n; i++) {
    ctx[i].b = b;
    ctx[i].i = i;
    int rc = pl->api->bus_produce(pl->self, pl->change_topic, items[i].key, items[i].key_len,
                                  items[i].value, items[i].value_len, NULL, on_produced, &ctx[i]);
    if (rc < 0) {
      items[i].status = rc;
      b->outstanding--;
    }
  }
  if (--b->outstanding == 0) batch_complete(b);
}

/* ---- fetch ---- */

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
  fj->items = NULL;
  fj->n = 0;
  fetch_release(j);
  if (n == 0) {
    cp_changes_free(items, 0);
    cycle_end(r, 0, 0);
    return;
  }
  produce_batch(r, items, n);
}

static void fetch_now(cp_relay *r) {
  fetch_job *fj = calloc(1, sizeof *fj);
  if (!fj) {
    arm(r, r->pl->relay_retry_ms);
    return;
  }
  fj->r = r;
  fj->base.work = fetch_work;
  fj->base.done = fetch_done;
  fj->base.release = fetch_release;
  r->busy = 1;
  r->kicked = 0;
  if (cp_job_submit(r->pl, &fj->base) < 0) {
    fetch_release(&fj->base);
    r->busy = 0;
  }
}

/* ---- public ---- */

void cp_relay_kick(cp_relay *r) {
  if (r->busy) {
    r->kicked = 1;
    return;
  }
  if (r->timer) return; /* a delay or backoff is pending; it fetches */
  if (r->pl->relay_delay_ms > 0)
    arm(r, r->pl->relay_delay_ms);
  else
    fetch_now(r);
}

static void on_poll(notifd_timer *t, void *ud) {
  (void)t;
  cp_relay_kick(ud);
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
  *out = r;
  return 0;
}

/* At destroy: the host already stopped our timers and dropped pending
 * produce callbacks (unconfirmed changes are published after restart). */
void cp_relay_free(cp_relay *r) {
  if (!r) return;
  batch_free(r->producing);
  free(r);
}
